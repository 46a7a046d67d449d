"""Whole training epochs of one method, timed, and the run they extrapolate to.

    python -m augbench.perf.epochs --benchmark tinyimagenet-crop --method instaaug --device cuda --epochs 2

Synthetic images of the real dataset's size (Tiny-ImageNet: 100,000 training and 10,000 test
images of 64 x 64, 200 classes; the validation split is carved from training as in a run) go
through the trainer's own pieces: `Trainer._step` on every batch of an epoch (the function
`augbench run` calls), the end of an epoch (validation, schedules, model selection) and a
checkpoint, and the final test evaluation with test-time augmentation. The epochs timed are
the last of the benchmark's schedule, so every method is past its pretraining and warm-up
phases. The run's time is extrapolated as epochs x (training + validation + checkpoint) +
one final evaluation, and compared with a budget (one hour by default).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from augbench.device import device_name, resolve_device
from augbench.errors import AugbenchError, ConfigError
from augbench.log import configure, logger
from augbench.overrides import parse_sets, route
from augbench.perf.harness import synthetic_dataset
from augbench.perf.measure import synchronize
from augbench.runs import resolve
from augbench.settings import create_benchmark
from augbench.train.trainer import Trainer

#: (train images, test images, side, classes, channels) of the datasets whose size is known
REAL_SIZES: dict[str, tuple[int, int, int, int, int]] = {
    "tinyimagenet-crop": (100_000, 10_000, 64, 200, 3),
}


def time_epochs(benchmark: str, method: str, *, epochs: int = 2, device: str = "auto",
                overrides: Mapping[str, Any] | None = None, size: tuple[int, int, int, int, int] | None = None,
                seed: int = 0, log: Any = None) -> dict[str, Any]:
    """Time `epochs` training epochs, their validation and checkpoints, then the final evaluation.

    Returns the per-epoch seconds (train, val, checkpoint), the final evaluation's seconds, the
    run's configuration and the extrapolation to the benchmark's whole schedule.
    """
    log = log or logger.info
    if benchmark not in REAL_SIZES and size is None:
        raise ConfigError(f"epochs: no dataset size known for {benchmark!r}; give --size or use one of "
                          f"{', '.join(REAL_SIZES)}")
    n_train, n_test, side, classes, channels = size or REAL_SIZES[benchmark]
    dev = resolve_device(device)
    settings = {**(overrides or {}), "run.device": str(dev), "run.progress": False}
    cfg = resolve(benchmark, method, seed, settings)
    total = cfg.settings["train.epochs"]
    if epochs < 1 or epochs > total:
        raise ConfigError(f"epochs: --epochs must be between 1 and the schedule's {total}, got {epochs}")
    log(f"epochs: {n_train:,} + {n_test:,} synthetic {side}x{side} images, {classes} classes")
    data = synthetic_dataset(n_train, n_test, (channels, side, side), classes, seed)
    bench = create_benchmark(cfg.benchmark, cfg.settings)
    with tempfile.TemporaryDirectory(prefix="augbench-epochs-") as tmp:
        header = {"run_id": cfg.run_id, "benchmark": benchmark, "method": method, "seed": seed, "perf": True}
        t = Trainer(bench, method, cfg.hparams, seed, Path(tmp), header, dataset=data)
        t.epoch = total - epochs  # the last epochs: past every pretraining and warm-up phase
        rows = []
        for _ in range(epochs):
            train_s, steps = _train_epoch(t)
            start = time.perf_counter()
            t._end_epoch()
            synchronize(t.device)
            val_s = time.perf_counter() - start
            t.epoch += 1
            t.step_in_epoch = 0
            start = time.perf_counter()
            t.save()
            ckpt_s = time.perf_counter() - start
            rows.append({"epoch": t.epoch, "steps": steps, "train_s": train_s, "val_s": val_s, "checkpoint_s": ckpt_s})
            log(f"epochs: epoch {t.epoch}/{total}: train {train_s:.1f} s ({steps} steps, "
                f"{train_s / max(steps, 1) * 1e3:.1f} ms/step), validation {val_s:.1f} s, checkpoint {ckpt_s:.1f} s")
        start = time.perf_counter()
        final = t.task.evaluate(t.model, t.method, t.test_split, t.device, final=True).metrics
        synchronize(t.device)
        final_s = time.perf_counter() - start
    per_epoch = sorted(r["train_s"] + r["val_s"] + r["checkpoint_s"] for r in rows)[len(rows) // 2]
    return {"benchmark": benchmark, "method": method, "device": str(dev), "device_name": device_name(dev),
            "torch": torch.__version__, "batch_size": cfg.settings["train.batch_size"], "side": side,
            "n_train": n_train, "n_test": n_test, "tta_views": cfg.settings["eval.tta_views"],
            "schedule_epochs": total, "epochs": rows, "final_eval_s": final_s,
            "tta_views_evaluated": final.get("tta_views_evaluated", 0.0),
            "extrapolated_s": total * per_epoch + final_s}


def _train_epoch(t: Trainer) -> tuple[float, int]:
    """One epoch of training steps as `Trainer.fit` takes them (statistics read back every step)."""
    t.model.train()
    t.method.train()
    t.method.begin_epoch(t.epoch)
    synchronize(t.device)
    start = time.perf_counter()
    steps = 0
    for idx, x_u8 in t._batches(t._order(t.epoch)):
        t._step(idx, x_u8)
        t.step_in_epoch += 1
        t.global_step += 1
        steps += 1
    synchronize(t.device)
    return time.perf_counter() - start, steps


def format_epochs(result: Mapping[str, Any], budget_s: float = 3600.0) -> str:
    """The lines `python -m augbench.perf.epochs` prints."""
    r = result
    lines = [f"{r['method']} on {r['benchmark']} ({r['n_train']:,} + {r['n_test']:,} synthetic {r['side']} px images, "
             f"batch {r['batch_size']}) on {r['device']} ({r['device_name']}), torch {r['torch']}"]
    for e in r["epochs"]:
        lines.append(f"  epoch {e['epoch']}/{r['schedule_epochs']}: train {e['train_s']:.1f} s ({e['steps']} steps, "
                     f"{e['train_s'] / max(e['steps'], 1) * 1e3:.1f} ms/step), validation {e['val_s']:.1f} s, "
                     f"checkpoint {e['checkpoint_s']:.1f} s")
    lines.append(f"  final evaluation with {r['tta_views']}-view test-time augmentation "
                 f"({r['tta_views_evaluated']:g} views run per image): {r['final_eval_s']:.1f} s")
    hours = r["extrapolated_s"] / 3600
    verdict = "within" if r["extrapolated_s"] <= budget_s else "over"
    lines.append(f"  extrapolated to {r['schedule_epochs']} epochs: {r['extrapolated_s']:.0f} s = {hours:.2f} h, "
                 f"{verdict} the budget of {budget_s / 3600:g} h")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m augbench.perf.epochs", description=__doc__.split("\n\n")[0])
    p.add_argument("--benchmark", default="tinyimagenet-crop")
    p.add_argument("--method", default="instaaug")
    p.add_argument("--epochs", type=int, default=2, help="epochs timed (the last of the schedule)")
    p.add_argument("--device", default="auto")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="benchmark setting or hyperparameter")
    p.add_argument("--size", metavar="TRAIN,TEST,SIDE,CLASSES",
                   help="synthetic data of this size instead of the real dataset's (3 channels)")
    p.add_argument("--budget-hours", type=float, default=1.0)
    args = p.parse_args(argv)
    configure()
    try:
        routed = route(parse_sets(args.set))
        overrides = {**routed.settings, **routed.hparams, **routed.per_method.get(args.method, {})}
        size = None
        if args.size:
            parts = args.size.split(",")
            if len(parts) != 4 or not all(v.isdigit() for v in parts):
                raise ConfigError(f"--size: {args.size!r} is not TRAIN,TEST,SIDE,CLASSES (e.g. 400,50,64,200)")
            n_train, n_test, side, classes = map(int, parts)
            size = (n_train, n_test, side, classes, 3)
        result = time_epochs(args.benchmark, args.method, epochs=args.epochs, device=args.device,
                             overrides=overrides, size=size)
    except AugbenchError as exc:
        logger.error(str(exc))
        return 2
    print(format_epochs(result, args.budget_hours * 3600))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
