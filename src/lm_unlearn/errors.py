"""Errors a user can act on. The CLI prints these without a traceback."""


class UnlearnError(Exception):
    """Base class: the message says what was wrong, where, and what to do."""


class ConfigError(UnlearnError):
    pass


class DataError(UnlearnError):
    pass


class ModelError(UnlearnError):
    pass
