"""Declared, typed settings: method hyperparameters and benchmark settings alike.

Everything a user can set is declared with a default, a type and a valid range, so a config is
validated before any run starts and a typo is an error, never a silent default.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from json import JSONDecodeError
from typing import Any

from augbench.errors import ConfigError
from augbench.safeload import NestingTooDeep, loads_json

_BOOL_TRUE = {"1", "true", "yes", "on"}
_BOOL_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class HParam:
    """One declared setting.

    `identity=False` keeps a setting out of the run's identity hash: paths, devices and
    bookkeeping change where a run lives or how fast it goes, never its result.
    """

    default: Any
    type: type = float
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] | None = None
    help: str = ""
    identity: bool = True
    nullable: bool = False
    is_list: bool = False
    finite: bool = True  # floats: refuse nan and +-inf (a NaN learning rate "trains" to a NaN loss)

    def coerce(self, name: str, value: Any) -> Any:
        """Convert `value` (possibly a command-line string) and check it against the declaration."""
        spelled_none = isinstance(value, str) and self.type is not str and value.lower() in ("none", "null")
        if value is None or spelled_none:
            if self.nullable or self.default is None:
                return None
            raise ConfigError(f"{name}: None is not allowed ({self.describe()})")
        if self.is_list:
            if isinstance(value, str):
                text = value.strip()
                if text.startswith("["):
                    try:
                        value = loads_json(text)
                    except (JSONDecodeError, NestingTooDeep) as exc:
                        raise ConfigError(f"{name}: cannot parse list {value!r} ({exc.msg})") from None
                else:
                    value = [v for v in text.split(",") if v.strip()]
            if not isinstance(value, (list, tuple)):
                value = [value]
            return [self._scalar(name, v) for v in value]
        return self._scalar(name, value)

    def _scalar(self, name: str, value: Any) -> Any:
        kind = self.type
        try:
            if kind is bool:
                if isinstance(value, str):
                    low = value.strip().lower()
                    if low not in _BOOL_TRUE | _BOOL_FALSE:
                        raise ValueError(value)
                    value = low in _BOOL_TRUE
                elif not isinstance(value, (bool, int)):
                    raise ValueError(value)
                value = bool(value)
            elif kind is int:
                if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                    raise ValueError(value)
                value = int(str(value).strip()) if isinstance(value, str) else int(value)
            elif kind is float:
                if isinstance(value, bool):
                    raise ValueError(value)
                value = float(value)
            elif kind is str:
                value = str(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"{name}: expected {kind.__name__}, got {value!r} ({self.describe()})"
            ) from None
        if kind is float and self.finite and not math.isfinite(value):
            raise ConfigError(f"{name}: {value!r} is not a finite number ({self.describe()})")
        if self.choices is not None and value not in self.choices:
            raise ConfigError(
                f"{name}: {value!r} is not one of {', '.join(map(repr, self.choices))}"
            )
        if self.low is not None and value < self.low:
            raise ConfigError(f"{name}: {value!r} is below the minimum {self.low} ({self.describe()})")
        if self.high is not None and value > self.high:
            raise ConfigError(f"{name}: {value!r} is above the maximum {self.high} ({self.describe()})")
        return value

    def describe(self) -> str:
        """Short human description: type, range or choices, default."""
        kind = f"list of {self.type.__name__}" if self.is_list else self.type.__name__
        parts = [kind]
        if self.choices is not None:
            parts.append("one of " + "|".join(map(str, self.choices)))
        elif self.low is not None or self.high is not None:
            lo = "-inf" if self.low is None else f"{self.low:g}"
            hi = "inf" if self.high is None else f"{self.high:g}"
            parts.append(f"in [{lo}, {hi}]")
        parts.append(f"default {self.default!r}")
        return ", ".join(parts)


@dataclass
class Spec:
    """A named group of declared settings (a method's hyperparameters, a benchmark's settings)."""

    owner: str
    params: Mapping[str, HParam] = field(default_factory=dict)

    def resolve(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults updated with `overrides`, every value validated; unknown names are an error."""
        overrides = dict(overrides or {})
        unknown = sorted(set(overrides) - set(self.params))
        if unknown:
            valid = ", ".join(sorted(self.params)) or "(none)"
            raise ConfigError(f"{self.owner}: unknown setting {unknown[0]!r}; valid: {valid}")
        out = {}
        for name, hp in self.params.items():
            value = overrides.get(name, hp.default)
            out[name] = hp.coerce(f"{self.owner}.{name}", value)
        return out

    def identity_items(self, resolved: Mapping[str, Any]) -> dict[str, Any]:
        """The resolved values that determine a run's result."""
        return {k: v for k, v in resolved.items() if self.params[k].identity}
