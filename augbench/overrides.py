"""`--set KEY=VALUE`: the one routing rule every command uses (run, sweep launch, bench, demo).

    data.root=/data        dotted key: a benchmark setting (data.*, model.*, train.*, eval.*, run.*)
    h_min=3.0              bare name: a hyperparameter of the method (of every method that declares it)
    method.h_min=3.0       the same, spelled out
    instaaug:h_min=3.0     a hyperparameter of that method only (grids and benches with several methods)

Values stay strings here; the declarations (`augbench.hparams`) convert and validate them.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from augbench.errors import ConfigError


def parse_sets(items: Sequence[str] | None) -> dict[str, str]:
    """`KEY=VALUE` strings of the command line as a dict (later keys win)."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


@dataclass
class Routed:
    """Overrides split by destination, before any method or benchmark is known."""

    settings: dict[str, Any] = field(default_factory=dict)
    hparams: dict[str, Any] = field(default_factory=dict)  # for whichever method declares them
    per_method: dict[str, dict[str, Any]] = field(default_factory=dict)

    def for_method(self, method: str, declared: Iterable[str] | None = None) -> dict[str, Any]:
        """The hyperparameters that reach `method`: bare ones it declares (all if unknown), then its own."""
        names = None if declared is None else set(declared)
        shared = {k: v for k, v in self.hparams.items() if names is None or k in names}
        return {**shared, **self.per_method.get(method, {})}


def route(overrides: Mapping[str, Any]) -> Routed:
    """Split overrides by the syntax of their keys (see the module docstring)."""
    out = Routed()
    for key, value in overrides.items():
        method, sep, name = key.partition(":")
        if sep:
            if not method or not name or "." in name:
                raise ConfigError(f"--set {key}: expected METHOD:HPARAM=VALUE, e.g. instaaug:h_min=3.0")
            out.per_method.setdefault(method, {})[name] = value
        elif key.startswith("method."):
            out.hparams[key[len("method."):]] = value
        elif "." in key:
            out.settings[key] = value
        else:
            out.hparams[key] = value
    return out


def unknown_key_error(key: str, settings: Iterable[str], hparams: Iterable[str], where: str) -> ConfigError:
    """'unknown setting' with a did-you-mean and the valid keys grouped by destination."""
    settings, hparams = sorted(settings), sorted(hparams)
    close = difflib.get_close_matches(key, settings + hparams, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"unknown setting {key!r} for {where}{hint}; benchmark settings: {', '.join(settings)}; "
                       f"method hyperparameters: {', '.join(hparams) or '(none)'}")


def split_overrides(overrides: Mapping[str, Any], bench_params: Iterable[str], method: str,
                    method_params: Iterable[str], where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(benchmark settings, method hyperparameters) of one run; any key that reaches neither is an error."""
    bench_params, method_params = set(bench_params), set(method_params)
    routed = route(overrides)
    for key in routed.settings:
        if key not in bench_params:
            raise unknown_key_error(key, bench_params, method_params, where)
    for name in routed.hparams:
        if name not in method_params:
            raise unknown_key_error(name, bench_params, method_params, where)
    for other, names in routed.per_method.items():
        if other != method:
            raise ConfigError(f"--set {other}:{next(iter(names))}: this run's method is {method}, not {other}")
        for name in names:
            if name not in method_params:
                raise unknown_key_error(f"{other}:{name}", bench_params, method_params, where)
    return dict(routed.settings), routed.for_method(method)
