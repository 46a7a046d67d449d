"""`augbench reproduce PATH`: rerun recorded runs and compare their numbers with the record.

PATH is a results table written by `augbench collect --out` (or `augbench demo`'s results.csv),
or folders of run directories. Each chosen run is rebuilt from what was recorded (its
config.json, or the table's identity columns, refused unless they hash to the recorded run id),
trained again with the recorded device and thread count into a scratch root (never over the
recorded runs), collected, and compared metric by metric: the recorded value, the new one,
their difference, and whether the difference lies within the recorded seed spread of that
configuration (`SPREAD`: twice the standard deviation over its recorded seeds). The exit status
is 1 when a difference lies outside it.

Equal fingerprints (`augbench.provenance`) promise bit-identical numbers; another machine type
or fingerprint promises only agreement within the spread, and the report says which applies.
`--runs N` takes N runs, chosen deterministically: in order of benchmark, method, variant, seed
and run id, one benchmark after another in turn (the report names them).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from augbench import provenance
from augbench.errors import ConfigError
from augbench.log import logger
from augbench.outpaths import check_folder

SPREAD = 2.0  # a difference is within the seed spread when |new - recorded| <= SPREAD x std over seeds
SPREAD_NAME = f"{SPREAD:g} x the std over the configuration's recorded seeds"
ORDER = ("benchmark", "method", "variant", "seed", "run_id")
Say = Callable[[str], None]


@dataclass
class MetricCheck:
    """One metric of one rerun, in display units (percent for fraction metrics)."""

    metric: str
    recorded: float
    new: float
    spread: float  # SPREAD x std over the configuration's recorded seeds (NaN: one seed recorded)
    seeds: int

    @property
    def diff(self) -> float:
        return self.new - self.recorded

    @property
    def within(self) -> bool:
        if math.isnan(self.new):
            return False
        if math.isnan(self.spread):  # one recorded seed: no spread, only the same value agrees
            return self.diff == 0
        return abs(self.diff) <= self.spread + 1e-9


def _load(paths: Sequence[str], say: Say) -> Any:
    from augbench.results.leaderboard import collect_roots  # a command module: the parser stays light

    frame, _ = collect_roots(paths, say)
    if frame.empty:
        raise ConfigError(f"no runs recorded in {', '.join(paths)}")
    return frame


def choose(done: Any, count: int | None) -> Any:
    """`count` finished runs (all when None): sorted by `ORDER`, taken one benchmark after another in turn."""
    import pandas as pd  # a command module: the parser stays light

    done = done.sort_values(list(ORDER), kind="stable").reset_index(drop=True)
    if count is None or count >= len(done):
        return done
    queues = [list(g.index) for _, g in done.groupby("benchmark", sort=True)]
    picked: list[int] = []
    while len(picked) < count:
        for q in queues:
            if q and len(picked) < count:
                picked.append(q.pop(0))
    return pd.DataFrame(done.loc[sorted(picked)]).reset_index(drop=True)


def _config_key(row: Any, columns: Sequence[str]) -> str:
    return json.dumps([None if _missing(row[c]) else str(row[c]) for c in columns])


def _missing(value: Any) -> bool:
    import pandas as pd  # a command module: the parser stays light

    return value is None or (not isinstance(value, (str, list, dict)) and bool(pd.isna(value)))


def rebuild(row: Any, recorded_root: Path | None) -> Any:
    """The RunConfig of a recorded run: its config.json when the run directory is at hand, else its
    identity columns (`set.*`, `hp.*`), refused unless they hash to the recorded run id."""
    from augbench.rundir import RunConfig, RunDir  # a command module: the parser stays light
    from augbench.runs import resolve

    run_id = str(row["run_id"])
    if recorded_root is not None and not _missing(row.get("run_dir")):
        entry = RunDir(recorded_root / str(row["run_dir"])).config()
        if entry is not None and entry.get("run_id") == run_id:
            return RunConfig.from_json(entry, expect_id=run_id)
    overrides = {c.split(".", 1)[1]: row[c] for c in row.index
                 if c.startswith(("set.", "hp.")) and not _missing(row[c])}
    cfg = resolve(str(row["benchmark"]), str(row["method"]), int(row["seed"]), overrides)
    if cfg.run_id != run_id:
        raise ConfigError(f"run {run_id} ({row['benchmark']} / {row['method']} / seed {row['seed']}): its recorded "
                          f"configuration now hashes to {cfg.run_id}; augbench changed what decides this run since "
                          "it was recorded, so it cannot be rerun as recorded")
    return cfg


def _metrics(done: Any) -> list[str]:
    import pandas as pd  # a command module: the parser stays light

    from augbench.results.cells import BOOKKEEPING, NON_METRICS

    skip = set(BOOKKEEPING) | set(NON_METRICS)
    return [c for c in done.columns if c not in skip and not c.startswith(("set.", "hp.", "metric."))
            and pd.api.types.is_numeric_dtype(done[c]) and done[c].notna().any()]


def compare_run(recorded: Any, new: Any, same_config: Any, metrics: Sequence[str]) -> list[MetricCheck]:
    """Every metric the recorded run reports, against the rerun, with the configuration's seed spread."""
    from augbench.results.units import is_percent  # a command module: the parser stays light

    out = []
    for m in metrics:
        if _missing(recorded.get(m)):
            continue
        scale = 100.0 if is_percent(m) else 1.0
        values = same_config[m].dropna().astype(float) * scale
        std = float(values.std(ddof=1)) if len(values) > 1 else math.nan
        new_value = new.get(m) if new is not None else None
        new_number = math.nan if new_value is None or _missing(new_value) else float(new_value) * scale
        out.append(MetricCheck(m, float(recorded[m]) * scale, new_number, SPREAD * std, len(values)))
    return out


def _fmt(x: float) -> str:
    return "—" if math.isnan(x) else f"{x:.4f}".rstrip("0").rstrip(".") if abs(x) < 1e6 else f"{x:.4g}"


def render(checks: Sequence[MetricCheck]) -> str:
    """The comparison as aligned text: metric, recorded, new, difference, spread, verdict."""
    head = ("metric", "recorded", "new", "difference", "spread", "")
    rows = [head] + [(c.metric, _fmt(c.recorded), _fmt(c.new), "0" if c.diff == 0 else f"{c.diff:+.4g}",
                      f"±{_fmt(c.spread)} (n={c.seeds})" if not math.isnan(c.spread) else f"none (n={c.seeds})",
                      "identical" if c.diff == 0 else "within spread" if c.within else "OUTSIDE spread")
                     for c in checks]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  " + "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows)


def _versions_text(row: Any) -> tuple[str, str | None]:
    v = {k: (None if _missing(row.get(k)) else row.get(k)) for k in provenance.MACHINE_KEYS}
    finger = row.get("fingerprint")
    return provenance.machine(v), None if _missing(finger) else str(finger)


def reproduce(paths: Sequence[str], runs: int | None, root: Path | None, device: str | None, dry_run: bool,
              say: Say, out: Callable[[str], None] = print) -> int:
    """Rerun `runs` recorded runs of `paths` into `root` and print the comparison; 1 if a metric differs
    by more than the seed spread, else 0."""
    from augbench.results.collect import collect  # a command module: the parser stays light
    from augbench.results.selection import finished_runs
    from augbench.rundir import RunDir
    from augbench.runs import execute

    frame = _load(paths, say)
    done = finished_runs(frame)
    if done.empty:
        raise ConfigError(f"no finished runs in {', '.join(paths)}: nothing to reproduce")
    chosen = choose(done, runs)
    recorded_roots = [Path(p).resolve() for p in paths if Path(p).is_dir()]
    recorded_root = recorded_roots[0] if len(recorded_roots) == 1 and len(paths) == 1 else None
    if root is None:  # a dry run creates nothing
        root = Path(tempfile.gettempdir()) / "augbench-reproduce-<new>" if dry_run else Path(
            tempfile.mkdtemp(prefix="augbench-reproduce-"))
    root = root.resolve()
    for rec in recorded_roots:
        if root == rec or rec in root.parents or root in rec.parents:
            raise ConfigError(f"scratch root {root} overlaps the recorded runs in {rec}; choose another --root")
    how = "all of them" if len(chosen) == len(done) else (
        f"{len(chosen)} of {len(done)}: the first in order of {', '.join(ORDER)}, one benchmark after another")
    out(f"reproducing {len(chosen)} recorded run(s) ({how}) into {root}")
    config_cols = ["benchmark", "method", "variant"] + sorted(c for c in done.columns if c.startswith(("set.", "hp.")))
    keys = done.apply(lambda r: _config_key(r, config_cols), axis=1)
    metrics = _metrics(done)
    here = provenance.versions(device or "auto")
    outside = 0
    for _, row in chosen.iterrows():
        cfg = rebuild(row, recorded_root)
        run_dir = root / cfg.run_id
        threads = None if _missing(row.get("threads")) else int(row["threads"])
        run_device = device or (None if _missing(row.get("device")) else str(row["device"]))
        settings = dict(cfg.settings)
        if threads:
            settings["run.threads"] = threads  # the recorded thread count: part of the fingerprint
        if run_device:
            settings["run.device"] = run_device
        cfg = dataclasses.replace(cfg, settings=settings)  # run.* settings: the same identity
        was_machine, was_finger = _versions_text(row)
        out(f"\nrun {cfg.run_id}: {cfg.benchmark} / {cfg.method} / seed {cfg.seed} -> {run_dir}")
        out(f"  recorded on {was_machine}, fingerprint {was_finger or 'not recorded'}")
        if dry_run:
            continue
        execute(cfg, run_dir)
        versions = (RunDir(run_dir).config() or {}).get("versions") or here
        now_machine, now_finger = provenance.machine(versions), versions.get("fingerprint")
        out(f"  rerun on    {now_machine}, fingerprint {now_finger}")
        if now_machine != was_machine:
            out("  the machine type differs from the recorded one: expect differences within the seed spread")
        elif was_finger is None:
            out("  the record has no fingerprint: bit-identity cannot be expected; the spread decides")
        elif now_finger != was_finger:
            out("  the fingerprint differs from the recorded one (code, library or threads): expect differences "
                "within the seed spread")
        else:
            out("  same machine type and fingerprint: the numbers should be bit-identical")
        new = finished_runs(collect(run_dir, report=say, running_within=0))
        new_row = new.iloc[0] if not new.empty else None
        checks = compare_run(row, new_row, done[keys == keys[done["run_id"] == row["run_id"]].iloc[0]], metrics)
        out(render(checks))
        bad = [c for c in checks if not c.within]
        outside += len(bad)
        if was_finger is not None and now_finger == was_finger and any(c.diff != 0 for c in checks):
            out("  warning: same fingerprint but different numbers: the determinism contract is broken here")
    if dry_run:
        out("\n(dry run: nothing trained)")
        return 0
    verdict = (f"{outside} metric(s) differ by more than the recorded seed spread ({SPREAD_NAME})" if outside else
               f"every metric within the recorded seed spread ({SPREAD_NAME})")
    out(f"\n{verdict}; reruns kept in {root}")
    return 1 if outside else 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    if args.runs is not None and args.runs < 1:
        raise ConfigError(f"--runs must be at least 1, got {args.runs}")
    if args.root:
        check_folder(args.root, "scratch root", "--root")
    return reproduce(args.paths, args.runs, Path(args.root) if args.root else None, args.device, args.dry_run,
                     logger.info)


def register(subparsers: Any) -> None:
    """Add `augbench reproduce` to the `augbench` parser."""
    p = subparsers.add_parser("reproduce", help="rerun recorded runs and compare their numbers with the record")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="a results table (augbench collect --out, the demo's results.csv) or folders of runs")
    p.add_argument("--runs", type=int, default=None, metavar="N",
                   help="rerun N runs, chosen deterministically (default: all)")
    p.add_argument("--root", default=None,
                   help="scratch root for the reruns (default: a new temporary folder, named in the output)")
    p.add_argument("--device", default=None, help="train on this device instead of the recorded one")
    p.add_argument("--dry-run", action="store_true", help="say which runs would be rerun and where; train nothing")
    p.set_defaults(func=cmd_reproduce)
