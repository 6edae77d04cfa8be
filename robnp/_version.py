"""The single place that states robnp's version."""

__version__ = "0.1.0"
