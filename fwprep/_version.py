"""The installed version of fwprep."""

__version__ = "0.1.0"
