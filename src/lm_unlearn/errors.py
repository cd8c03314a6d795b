"""Errors a user can act on. The CLI prints these without a traceback."""


class UnlearnError(Exception):
    """Base class: the message says what was wrong, where, and what to do."""


class ConfigError(UnlearnError):
    pass


class DataError(UnlearnError):
    pass


class ModelError(UnlearnError):
    pass


def describe_os_error(exc: OSError) -> str:
    """One line for a failed file operation: the file and the system's reason."""
    where = exc.filename if exc.filename is not None else "a file operation"
    return f"{where}: {exc.strerror or exc}"
