"""Errors that reach the user as one line (the CLI prints them and exits with status 2).

Raise these for bad input only; a bug should keep its traceback.
"""


class AugbenchError(ValueError):
    """Base class: a problem with what the user asked for, explained in one line."""


class ConfigError(AugbenchError):
    """Unknown or invalid benchmark, method, setting or hyperparameter."""


class DataError(AugbenchError):
    """A dataset path is missing or does not have the expected layout."""


class TrainingDiverged(AugbenchError):
    """The training loss became NaN or infinite: the run stops, failed, with the step it happened at."""
