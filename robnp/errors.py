"""Exceptions raised by robnp.

Every error robnp raises on purpose derives from :class:`RobnpError`, so a caller
(the command line above all) can catch one type and turn it into a one-line message.
"""


class RobnpError(Exception):
    """Base class of every error robnp raises deliberately."""


class ConfigError(RobnpError, ValueError):
    """A parameter or configuration value is outside its allowed range."""


class DataError(RobnpError, ValueError):
    """Input arrays or tables have the wrong shape, dtype, or content."""


class ModelFileError(RobnpError, OSError):
    """A saved model file is missing, truncated, or inconsistent."""


class TrainingDivergedError(RobnpError, FloatingPointError):
    """Training produced a non-finite loss."""


class StoreError(RobnpError):
    """A results store is unreadable or belongs to a different configuration."""


class WorkerError(RobnpError):
    """A worker process running study tasks died."""
