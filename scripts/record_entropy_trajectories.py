"""Record InstaAug's validation-entropy trajectories from real training runs (a test fixture).

    python scripts/record_entropy_trajectories.py [--out tests/data/entropy_trajectories.json] [--root DIR]

Trains InstaAug on the embedded benchmarks (dynamic and fixed lambda) and writes each epoch's
mean validation entropy (and each HSV part's on the colour benchmark) per run.
tests/test_instaaug_schedule.py feeds these sequences to augbench's dynamic lambda and to a
transcription of the public InstaAug scheduler and requires the same decision at every check.
Deterministic on one machine type; about an hour on a busy 2-core CPU.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from augbench.log import configure, logger
from augbench.rundir import read_records
from augbench.runs import execute, resolve

#: (benchmark, seeds, overrides): InstaAug's dynamic lambda as each stand-in sets it, and fixed
#: lambdas whose entropies drift freely (what the rule must follow when it is far off). Smaller
#: training sets keep the runs short; the records hold each epoch's validation entropy, the
#: sequence the public rule reads (8 checks per epoch only make lambda react within epochs).
SHORT = {"data.n_train": 600, "train.val_checks": 8}
RUNS: list[tuple[str, list[int], dict[str, Any]]] = [
    ("glyphs-rotation", [0], {}),
    ("clutter-crop", [0], SHORT),
    ("clutter-crop", [0], {**SHORT, "lambda_rule": "fixed", "lambda0": 0.02}),
    ("clutter-crop", [0], {**SHORT, "lambda_rule": "fixed", "lambda0": 0.5}),
    ("texture-color", [0], {"data.n_train_per_class": 60, "train.val_checks": 8}),
]


def record(root: Path) -> list[dict[str, Any]]:
    """One entry per run and entropy key: the benchmark, overrides, seed, key and the sequence."""
    out = []
    for benchmark, seeds, overrides in RUNS:
        for seed in seeds:
            cfg = resolve(benchmark, "instaaug", seed, {"run.progress": False, **overrides})
            run_dir = root / cfg.run_id
            execute(cfg, run_dir)
            records = [r for r in read_records(run_dir / "records.jsonl").records if r.get("split") == "val"]
            keys = sorted({k for r in records for k in r["metrics"] if k == "entropy" or k.startswith("entropy_")})
            for key in keys:
                seq = [r["metrics"][key] for r in records if key in r["metrics"]]
                out.append({"benchmark": benchmark, "overrides": overrides, "seed": seed, "key": key,
                            "entropy": seq})
            logger.info("%s %s seed %d: %d checks", benchmark, overrides, seed, len(records))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("tests/data/entropy_trajectories.json"))
    parser.add_argument("--root", type=Path, default=None, help="run directories (default: a temporary folder)")
    args = parser.parse_args()
    configure()
    with tempfile.TemporaryDirectory() as tmp:
        trajectories = record(args.root or Path(tmp))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"recorded_by": "scripts/record_entropy_trajectories.py", "trajectories": trajectories},
                      indent=1) + "\n"
    if not args.out.exists() or args.out.read_text() != text:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
