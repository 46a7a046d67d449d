"""Helpers (no tests): small run directories in the on-disk format of augbench.rundir."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

T0 = 1_700_000_000.0


def write_run(root: Path, name: str, *, benchmark: str = "bench", method: str = "none", seed: int = 0,
              hparams: dict[str, Any] | None = None, settings: dict[str, Any] | None = None,
              val_acc: tuple[float, ...] = (0.5,), test: dict[str, Any] | None = None, state: str = "done",
              reason: str = "boom", extra_lines: tuple[str, ...] = (), old: bool = True) -> Path:
    """A run directory; `test` None writes no test record; `state` done/failed/none (no status)."""
    hparams = hparams or {}
    settings = settings or {}
    d = root / name
    d.mkdir(parents=True)
    run_id = f"{name.replace('/', '-')}"
    (d / "config.json").write_text(json.dumps({
        "run_id": run_id, "identity": {"benchmark": benchmark, "method": method, "seed": seed,
                                       "settings": settings, "hparams": hparams},
        "benchmark": benchmark, "method": method, "seed": seed, "settings": settings, "hparams": hparams}))
    head = {"run_id": run_id, "benchmark": benchmark, "method": method, "seed": seed}
    lines = [json.dumps({**head, "step": e + 1, "epoch": e, "split": "val", "time": T0 + e,
                         "metrics": {"acc": a, "entropy": 1.0 + e}}) for e, a in enumerate(val_acc)]
    if test is not None:
        lines.append(json.dumps({**head, "step": len(val_acc), "epoch": len(val_acc), "split": "test",
                                 "time": T0 + 100, "metrics": {"best_epoch": len(val_acc) - 1, **test}}))
    (d / "records.jsonl").write_text("\n".join(lines + list(extra_lines)) + "\n")
    if state == "done":
        (d / "status.json").write_text(json.dumps({"state": "done", "metrics": test or {}}))
    elif state == "failed":
        (d / "status.json").write_text(json.dumps({"state": "failed", "reason": reason, "traceback": "..."}))
    if old:
        for f in d.iterdir():
            os.utime(f, (T0, T0))
    return d
