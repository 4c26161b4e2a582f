"""snn-lab: what depth does to the signal in random deep networks (SELU, ReLU, ...)."""

# Kept free of numpy imports so that `snn-lab --help` starts fast.
__version__ = "0.1.0"
