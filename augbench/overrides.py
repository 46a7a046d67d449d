"""`--set KEY=VALUE`: the one routing rule every command uses (run, sweep launch, bench, demo).

    data.root=/data        dotted key: a benchmark setting (data.*, model.*, train.*, eval.*, run.*)
    h_min=3.0              bare name: a hyperparameter of the method (of every method that declares it)
    method.h_min=3.0       the same, spelled out
    instaaug:h_min=3.0     a hyperparameter of that method only (grids and benches with several methods)
    variant=input-free     a named variant of the method (`AugmentationMethod.variants`): its preset
                           hyperparameters, under the other overrides

A hyperparameter reaches every method that declares it, and one that reaches no method is an
error: the one rule `check_hparams` applies to a run, a grid and a bench alike. Values stay
strings here; the declarations (`augbench.hparams`) convert and validate them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from augbench.errors import ConfigError, did_you_mean

#: The name that chooses a method's named variant (`--set variant=input-free`).
VARIANT = "variant"


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
    hint = did_you_mean(key, settings + hparams)
    return ConfigError(f"unknown setting {key!r} for {where}{hint}; benchmark settings: {', '.join(settings)}; "
                       f"method hyperparameters: {', '.join(hparams) or '(none)'}")


def check_hparams(routed: Routed, declared: Mapping[str, Collection[str]], where: str,
                  settings: Collection[str] | None = None) -> None:
    """The one rule for hyperparameters in `--set`, for a run, a grid or a bench.

    `declared`: each method the overrides may reach -> the names it accepts
    (`AugmentationMethod.settable`). A bare name must be accepted by at least one of them (it
    then reaches every one that accepts it); METHOD:NAME must name one of them, which must
    accept NAME. `settings`, given for a single run, adds its benchmark's settings to the
    error's list of valid keys.
    """
    every = sorted(set().union(*map(set, declared.values()))) if declared else []
    for name in routed.hparams:
        if name not in every:
            if settings is not None:
                raise unknown_key_error(name, settings, every, where)
            raise ConfigError(f"--set {name}: no method of {where} declares it; valid: {', '.join(every) or '(none)'}")
    for method, names in routed.per_method.items():
        if method not in declared:
            first = next(iter(names))
            if settings is not None:  # a single run
                raise ConfigError(f"--set {method}:{first}: this run's method is {next(iter(declared))}, not {method}")
            raise ConfigError(f"--set {method}:{first}: {where} has no method {method}; its methods: "
                              f"{', '.join(sorted(declared))}")
        accepted = sorted(declared[method])
        for name in names:
            if name not in accepted:
                if settings is not None:
                    raise unknown_key_error(f"{method}:{name}", settings, accepted, where)
                raise ConfigError(f"--set {method}:{name}: unknown setting {name!r} for method {method}; "
                                  f"valid: {', '.join(accepted) or '(none)'}")


def check_variant(method: str, name: str, variants: Collection[str]) -> None:
    """Refuse a variant name `method` does not have (`variants`: its names), naming a close match."""
    if name in variants:
        return
    if not variants:
        raise ConfigError(f"method {method} has no named variants; set its hyperparameters instead")
    raise ConfigError(f"method {method}: unknown variant {name!r}{did_you_mean(name, variants)}; "
                      f"valid: {', '.join(sorted(variants))}")


def split_overrides(overrides: Mapping[str, Any], bench_params: Iterable[str], method: str,
                    method_params: Iterable[str], where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(benchmark settings, method hyperparameters) of one run; any key that reaches neither is an error."""
    bench_params, method_params = set(bench_params), set(method_params)
    routed = route(overrides)
    for key in routed.settings:
        if key not in bench_params:
            raise unknown_key_error(key, bench_params, method_params, where)
    check_hparams(routed, {method: method_params}, where, settings=bench_params)
    return dict(routed.settings), routed.for_method(method)
