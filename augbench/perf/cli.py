"""The `augbench bench` subcommand: run the measurements, write the CSV, print the table and targets."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from augbench.errors import ConfigError
from augbench.log import logger
from augbench.outpaths import check_file
from augbench.overrides import parse_sets, route
from augbench.perf.configs import CONFIGS, MEASURES
from augbench.precheck import check_names
from augbench.threads import apply_threads


def cmd_bench(args: argparse.Namespace) -> int:
    if args.ops:  # --ops names op cases, not methods: the catalog does not check them
        return _cmd_ops(args)
    routed = route(parse_sets(args.set))
    check_file(args.out, "output file", "--out")
    if args.figure:
        check_file(args.figure, "figure", "--figure")
    methods = [t.strip() for item in args.methods or [] for t in item.split(",") if t.strip()]
    check_names("methods", methods)  # from the catalog: a typo fails before torch loads
    check_names("benchmarks", [args.benchmark] if args.benchmark else [])
    # torch and pandas: only `bench` itself needs them, not the parser of every command
    from augbench.perf.bench import run_bench
    from augbench.perf.report import format_report

    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"--threads must be at least 1, got {args.threads}")
        apply_threads(args.threads)
    measures = [m.strip() for m in args.measure.split(",") if m.strip()]
    df = run_bench(args.config, args.methods, device=args.device, benchmark=args.benchmark, settings=routed.settings,
                   method_hparams=routed.per_method, hparams=routed.hparams, reps=args.reps, warmup=args.warmup,
                   tta_views=args.tta_views, tta_batch=args.tta_batch, measures=measures, min_time=args.min_time,
                   memory=not args.no_memory, seed=args.seed, clock=args.clock, compare_public=args.compare_public,
                   log=(lambda msg: None) if args.quiet else None)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False)
    print(format_report(df))
    logger.info(f"wrote {out}")
    if args.figure:
        from augbench.perf.figure import save_step_figure  # matplotlib: only with --figure

        logger.info(f"wrote {save_step_figure(df, args.figure)}")
    return 1 if (df["status"] == "failed").any() else 0


def _parse_sizes(text: str) -> list[tuple[int, int]]:
    """"224x32,32x128" -> [(224, 32), (32, 128)]: image side x batch."""
    sizes = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        side, _, batch = item.partition("x")
        if not (side.isdigit() and batch.isdigit()):
            raise ConfigError(f"--sizes: {item!r} is not SIDExBATCH (e.g. 224x32)")
        sizes.append((int(side), int(batch)))
    return sizes


def _cmd_ops(args: argparse.Namespace) -> int:
    """`bench --ops`: the per-op table against kornia and torchvision's per-image loop."""
    out = Path(args.out if args.out_given else "results/perf-ops.csv")
    check_file(out, "output file", "--out")  # before minutes of timing
    from augbench.device import resolve_device
    from augbench.perf.ops import SIZES, format_ops, run_op_bench

    if args.threads is not None:
        if args.threads < 1:
            raise ConfigError(f"--threads must be at least 1, got {args.threads}")
        apply_threads(args.threads)
    device = resolve_device(args.device)  # a GPU asked for that is not there is a one-line error
    sizes = _parse_sizes(args.sizes) if args.sizes else list(SIZES)
    clock = args.clock if args.clock_given else ("process" if device.type == "cpu" else "wall")
    df = run_op_bench(sizes, device=device, reps=args.reps, min_time=args.min_time, clock=clock, seed=args.seed,
                      cases=args.methods, log=(lambda msg: None) if args.quiet else None)
    out.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(out, index=False)
    print(format_ops(df))
    logger.info(f"wrote {out}")
    return 0


class _Given(argparse.Action):
    """Stores the value and records that it was given (`--ops` picks other defaults for what was not)."""

    def __call__(self, parser: Any, namespace: argparse.Namespace, values: Any, option_string: Any = None) -> None:
        setattr(namespace, self.dest, values)
        setattr(namespace, f"{self.dest}_given", True)


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "bench", help="time each method: augmentation, training step, test-time augmentation, peak memory",
        description="Measure every registered method (or --methods) whose family fits the config, in one "
                    "process on the same batches, with the trainer's own training step. Figures are medians "
                    "over --reps repetitions after --warmup calls, absolute and relative to none and "
                    "random-crop (always measured). Exit status 1 if a method failed.")
    p.add_argument("--config", default="embedded", choices=sorted(CONFIGS),
                   help="; ".join(f"{c.name}: {c.description}" for c in CONFIGS.values()))
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--methods", nargs="+", metavar="NAME",
                   help="methods or shell patterns (default: every registered method)")
    p.add_argument("--benchmark", help="take family, settings and method defaults from this benchmark instead "
                                       "(e.g. texture-color to time colour methods); the data stay synthetic")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="benchmark setting for every method (model.width=0.5, run.channels_last=true), a "
                        "hyperparameter for every method that declares it (h_min=3.0), or METHOD:HPARAM=VALUE "
                        "for one method (adaaug:ops=lrp)")
    p.add_argument("--reps", type=int, default=5, help="timed repetitions per method and measure (default 5)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls first (default 2)")
    p.add_argument("--tta-views", type=int, help="test-time views (default: the benchmark's eval.tta_views)")
    p.add_argument("--tta-batch", type=int, help="images per test-time call (default: the training batch size)")
    p.add_argument("--measure", default=",".join(MEASURES), help=f"subset of {','.join(MEASURES)}")
    p.add_argument("--min-time", type=float, default=0.05,
                   help="seconds a repetition lasts at least: short calls are repeated (default 0.05)")
    p.add_argument("--no-memory", action="store_true",
                   help="skip the two extra untimed calls per measure that record peak memory")
    p.add_argument("--threads", type=int, help="CPU threads of torch (default: torch's own choice)")
    p.add_argument("--clock", default="wall", choices=("wall", "process"), action=_Given,
                   help="what times count: wall (default) or process (this process's CPU time, all threads; CPU "
                        "only): on a machine other jobs share, 1-thread process times leave their time out")
    p.add_argument("--compare-public", action="store_true",
                   help="also time InstaAug's training step as the public code runs it (two classifier passes, "
                        "the second in eval mode through the classifier) on the same network and batches; "
                        "column step_x_public: augbench's InstaAug step over it")
    p.add_argument("--figure", metavar="PATH", help="also draw the step time per method (and system) into PATH (.png)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results/perf.csv", action=_Given,
                   help="CSV of every figure (default results/perf.csv; with --ops results/perf-ops.csv)")
    p.add_argument("--ops", action="store_true",
                   help="instead: images/s of each batched per-sample op (crops, RandAugment, TrivialAugment, "
                        "AutoAugment, Fast AutoAugment, rotation, colour) beside kornia's (when installed) and "
                        "torchvision v2 applied per image; --methods picks ops, --reps rounds; CPU clock: process")
    p.add_argument("--sizes", metavar="SIDExBATCH,...", help="with --ops: image sizes and batches "
                                                             "(default 224x32,32x128)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    p.set_defaults(func=cmd_bench, clock_given=False, out_given=False)
