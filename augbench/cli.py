"""The `augbench` command line: `list`, `run`, and the commands of the feature modules.

Bad input (unknown benchmark, method or setting, bad value, unreadable data) is one line on
stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from augbench import __version__, provenance
from augbench.catalog import listing, render
from augbench.distenv import is_follower
from augbench.errors import AugbenchError
from augbench.log import configure, logger
from augbench.overrides import parse_sets
from augbench.precheck import check_run
from augbench.rundir import RunDir, to_jsonable

# Modules that add subcommands: each defines `register(subparsers)`, setting `func` on its parser.
COMMAND_MODULES: list[str] = ["augbench.sweep.cli", "augbench.results.cli", "augbench.perf.cli", "augbench.demo",
                               "augbench.reproduce"]


def describe_run(trainer: Any) -> str:
    """What a run loaded, before it trains: data, sizes, device, threads, non-default hyperparameters."""
    import torch  # the trainer has loaded it already

    data = trainer.dataset
    c, h, w = data.image_shape
    val = len(trainer.val_split) if trainer.val_split is not None else 0
    changed = {k: v for k, v in trainer.method.hp.items() if v != trainer.method.hparams[k].default}
    lines = [f"  data     {trainer.bench.name}: {data.num_classes} classes, {c}x{h}x{w}, "
             f"{len(trainer.train_split)} train / {val} validation / {len(trainer.test_split)} test images",
             f"  compute  {trainer.device}, {torch.get_num_threads()} threads, {_count(trainer.epochs, 'epoch')} of "
             f"{_count(trainer.steps_per_epoch, 'step')}",
             f"  method   {trainer.method.name}" + (
                 f" ({', '.join(f'{k}={v}' for k, v in changed.items())})" if changed else " (defaults)"),
             f"  numbers  {provenance.DETERMINISM}"]
    return "\n".join(lines)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def format_metrics(metrics: Mapping[str, Any], arrows: bool = True) -> str:
    """The final metrics as a table: value, unit, and an arrow for the better direction; text metrics
    (a diagnosis) last. `arrows=False` uses "higher"/"lower" for a terminal that cannot show arrows."""
    from augbench.results.units import ARROWS, direction, format_value, unit

    words = {1: "higher", -1: "lower", 0: ""}
    numbers = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    texts = {k: v for k, v in metrics.items() if k not in numbers and v not in ("", None)}
    width = max((len(k) for k in metrics), default=0)
    rows = [(k, format_value(k, v), unit(k), (ARROWS if arrows else words)[direction(k)]) for k, v in numbers.items()]
    value_w = max((len(r[1]) for r in rows), default=0)
    unit_w = max((len(r[2]) for r in rows), default=0)
    lines = [f"{k:<{width}}  {v:>{value_w}} {u:<{unit_w}}  {a}".rstrip() for k, v, u, a in rows]
    lines += [f"{k:<{width}}  {v}" for k, v in texts.items()]
    if any(r[3] for r in rows):
        lines.append(f"({ARROWS[1]} higher is better, {ARROWS[-1]} lower is better)" if arrows
                     else "(higher/lower: the better direction)")
    return "\n".join(lines)


def _can_print(text: str) -> bool:
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def cmd_list(args: argparse.Namespace) -> int:
    print(*render(listing(), args.what, args.verbose), sep="\n")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    overrides = parse_sets(args.set)
    if args.device:
        overrides["run.device"] = args.device
    check_run(args.benchmark, args.method, overrides)  # names from the catalog: a typo fails before torch loads
    from augbench.runs import execute, resolve  # torch and every method

    cfg = resolve(args.benchmark, args.method, args.seed, overrides)
    if args.dry_run:
        print(describe_config(cfg))
        return 0
    out = Path(args.out) if args.out else Path("runs") / cfg.run_id
    what = f"run {cfg.run_id}: {cfg.benchmark} / {cfg.method} / seed {cfg.seed}"
    if RunDir(out).finished(cfg.run_id) is not None:
        logger.info(f"{what}: already done in {out}")
    metrics = execute(cfg, out, announce=lambda trainer: logger.info(f"{what} -> {out}\n{describe_run(trainer)}"))
    if is_follower(cfg.settings):  # another process of a data-parallel run: rank 0 prints the metrics
        return 0
    print(json.dumps(metrics, indent=1) if args.json else format_metrics(metrics, arrows=_can_print("\u2191\u2193")))
    if metrics.get("diagnosis"):
        from augbench.train.diagnosis import verdict

        flags = str(metrics["diagnosis"])
        logger.warning(f"{cfg.method} {verdict(flags.split(','))} ({flags}): {metrics.get('diagnosis_detail', '')}")
    return 0


def describe_config(cfg: Any) -> str:
    """The fully resolved configuration, as JSON; each hyperparameter's source is listed under "sources"."""
    from augbench.methods import get_method

    method_cls = get_method(cfg.method)
    bench_defaults = method_cls.recipes.get(cfg.benchmark, {})
    declared = method_cls.hparams
    sources = {k: "benchmark default" if k in bench_defaults and v == bench_defaults[k]
               else "method default" if v == declared[k].default else "set" for k, v in cfg.hparams.items()}
    for key, rule in method_cls.derived.items():  # values a rule made concrete from the schedule
        if cfg.hparams.get(rule) is not None:
            sources[key] = f"derived: {rule}={cfg.hparams[rule]} of the schedule"
    body = {k: v for k, v in cfg.to_json().items() if k != "identity"}  # the identity repeats settings and hparams
    return json.dumps({"run_id": cfg.run_id, **to_jsonable(body), "sources": sources}, indent=1)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="augbench", description="Benchmarks for learned data augmentation.")
    parser.add_argument("--version", action="version", version=f"augbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="methods with their hyperparameters, benchmarks, datasets")
    p.add_argument("what", nargs="?", default="all", choices=("all", "methods", "benchmarks", "datasets"))
    p.add_argument("-v", "--verbose", action="store_true",
                   help="every hyperparameter, benchmark setting and per-benchmark method default")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("run", help="train one method on one benchmark (resumes; prints final metrics)")
    p.add_argument("benchmark")
    p.add_argument("--method", required=True)
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="benchmark setting (train.epochs=5, data.root=...) or method hyperparameter")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", help="run directory (default: runs/<run id>)")
    p.add_argument("--device", help="shortcut for --set run.device=...")
    p.add_argument("--json", action="store_true", help="print metrics as JSON")
    p.add_argument("--dry-run", action="store_true",
                   help="print the fully resolved configuration (with benchmark-specific method defaults); run nothing")
    p.set_defaults(func=cmd_run)

    for mod in COMMAND_MODULES:
        importlib.import_module(mod).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure()
    try:
        return int(args.func(args) or 0)
    except AugbenchError as exc:
        logger.error(str(exc))
        return 2
    except KeyboardInterrupt:
        logger.warning("interrupted (finished results are kept; re-run to resume)")
        return 130
    except BrokenPipeError:  # `augbench list -v | head`: the reader left; say nothing
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
