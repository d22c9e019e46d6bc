"""tlcli: adapt foundation models to your own small data from the terminal."""

__version__ = "0.1.0"
