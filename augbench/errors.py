"""Errors that reach the user as one line (the CLI prints them and exits with status 2).

Raise these for bad input only; a bug should keep its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(name: str, valid: Iterable[str]) -> str:
    """" (did you mean 'x'?)" with the closest valid name, or "" when none is close: for one-line errors."""
    close = difflib.get_close_matches(name, list(valid), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def unknown_name(kind: str, name: str, valid: Iterable[str]) -> ConfigError:
    """"unknown <kind> 'x' (did you mean ...?); valid: ...": the one message for a name no registry holds."""
    valid = sorted(valid)
    return ConfigError(f"unknown {kind} {name!r}{did_you_mean(name, valid)}; valid: {', '.join(valid)}")


class AugbenchError(ValueError):
    """Base class: a problem with what the user asked for, explained in one line."""


class ConfigError(AugbenchError):
    """Unknown or invalid benchmark, method, setting or hyperparameter."""


class DataError(AugbenchError):
    """A dataset path is missing or does not have the expected layout."""


class TrainingDiverged(AugbenchError):
    """The training loss became NaN or infinite: the run stops, failed, with the step it happened at."""
