"""A small chaos matrix in CI (scripts/chaos.py: python scripts/chaos.py runs the full one).

Runs killed with SIGKILL at a random time and inside their checkpoint, records and final
writes, then damaged (a torn record line, a truncated checkpoint, config.json deleted), must
end bit-identical to an uninterrupted run when started again.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "chaos.py"


def _chaos():
    spec = importlib.util.spec_from_file_location("augbench_chaos", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_killed_and_damaged_runs_end_identical_to_an_uninterrupted_run(tmp_path):
    chaos = _chaos()
    Plan = chaos.Plan
    plans = [
        # between two steps, after a checkpoint: the torn last record is one the newest checkpoint counts
        Plan("instaaug-lrp", 1, "after", ("checkpoint.pt", 4), delay=0.0, damage="tear records.jsonl", cut=0.3),
        # half a checkpoint on disk, then the whole last one truncated too
        Plan("instaaug-lrp", 2, "inside", ("checkpoint.pt", 5), damage="truncate checkpoint.pt", cut=0.5),
        # inside the final weights' write, and the run's config.json gone
        Plan("random-crop", 1, "inside", ("final_weights.pt", 1), damage="delete config.json"),
    ]
    lines: list[str] = []
    outcomes = chaos.run_matrix([], 0, 0, tmp_path, plans=plans, say=lines.append)
    report = "\n".join(lines)
    assert [o.killed for o in outcomes] == [True] * len(plans), report
    assert all(o.identical for o in outcomes), report
