"""Training probe: dense stacks of the series' layers trained by SGD, statistics followed through training."""
