"""The errors cellkit raises, each naming the file or argument and what was expected."""


class CellkitError(Exception):
    """Base class of every error cellkit raises on purpose."""


class DataError(CellkitError, ValueError):
    """A data file or folder is missing, corrupt, or not of the expected shape or type."""


class HashMismatchError(DataError):
    """A file's SHA-256 differs from the registry's; the file is never used."""


class DataUnavailableError(CellkitError, ConnectionError):
    """A dataset is not present locally and cannot be downloaded."""
