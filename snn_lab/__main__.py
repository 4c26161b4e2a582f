"""python -m snn_lab."""

from snn_lab.cli import main

if __name__ == "__main__":
    main()
