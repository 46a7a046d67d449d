"""Every record under a folder as one pandas DataFrame: the input of every table and figure.

One row per run and evaluation: each record line (train / val / test split at a step) becomes a
row carrying its run's identity columns (benchmark, method, derived variant, seed, `set.<name>`
for each identity setting, `hp.<name>` for each hyperparameter) and its metrics as columns.
A run without any readable record still gets one row (split empty), so failed and interrupted
runs stay visible. Partial sweeps are always collectable: unreadable or truncated files are
reported (one line each) and skipped, never fatal: one damaged run must not hide a sweep's others.

Each row also carries its run's provenance (`augbench.results.schema.PROVENANCE_COLUMNS`):
the software and device recorded in config.json's `versions`, the identity version, the
trainer's wall time (status.json), and, for a run of a sweep, the launch that last started it
with its grid file and hash (the run's attempts.jsonl; for sweeps launched before attempts
recorded it, the sweep root's manifest). The fixed columns and their dtypes are documented and
versioned in `augbench.results.schema`.

The variant and the benchmark's family come from config.json (`augbench.runs.resolve` writes
them), so results import no registry; run directories written before that derive the variant by
`LEGACY_VARIANT_RULES` from the family in the committed catalog. A finished run whose config.json
is gone is reported, not collected (re-running its command restores the file).

`state` is the run directory's own (`augbench.rundir.RunDir.state`): done / failed (status.json),
running (no status, a write within `running_within` seconds: the run's heartbeat) or stalled
(no status, nothing recent: killed, preempted or crashed without a traceback).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from augbench import rundir
from augbench.catalog_file import benchmark_entry
from augbench.errors import DataError
from augbench.log import logger
from augbench.results.schema import (
    IDENTITY_COLUMNS,
    PROVENANCE_COLUMNS,
    SCHEMA_VERSION,
    VERSION_KEYS,
    apply_dtypes,
)
from augbench.results.units import DERIVED_METRICS
from augbench.rundir import RunDir
from augbench.sweeproot import grid_copy, read_manifest, sweep_root_of

#: The variant labels of run directories (and bench rows) that do not record their variant,
#: as `AugmentationMethod.variant_name` gave them then; first matching rule wins: method ->
#: [(hyperparameter values, label)]. The key "@family" matches the benchmark's transformation
#: family (instaaug's parameterization None means "from the family": LRP on crop benchmarks).
LEGACY_VARIANT_RULES: dict[str, list[tuple[dict[str, Any], str]]] = {
    "instaaug": [({"conditioning": "input-free"}, "input-free"), ({"conditioning": "class"}, "class-specific"),
                 ({"parameterization": "lrp"}, "lrp"), ({"parameterization": None, "@family": "crop"}, "lrp"),
                 ({}, "uniform")],
    "adaaug": [({"ops": "lrp"}, "lrp")],
}

META_COLUMNS = list(IDENTITY_COLUMNS)
RUN_COLUMNS = list(PROVENANCE_COLUMNS)  # per run: provenance, wall time, schema version
SPLIT_ORDER = {"train": 0, "val": 1, "test": 2}


def derive_variant(method: str, hparams: Mapping[str, Any], family: str | None = None) -> str:
    """The paper's name for a configuration of `method` ("lrp", "input-free", ...), or "", by the legacy rules."""
    values = {**hparams, "@family": family}
    for match, label in LEGACY_VARIANT_RULES.get(method, []):
        if all(values.get(k) == v for k, v in match.items()):
            return label
    return ""


def family_of(benchmark: str) -> str | None:
    """A built-in benchmark's transformation family from the committed catalog (None: not built in)."""
    return benchmark_entry(benchmark).get("family")


def variant_of(config: Mapping[str, Any]) -> str:
    """The variant a run's config.json records; derived by the legacy rules where it records none."""
    name, method = config.get("variant"), config["method"]
    if isinstance(name, str):  # "lrp"; a full label ("instaaug (lrp)", or the method's own name) is read as that
        full = name.startswith(f"{method} (") and name.endswith(")")
        return name[len(method) + 2:-1] if full else "" if name == method else name
    family = config.get("family") if isinstance(config.get("family"), str) else family_of(config["benchmark"])
    return derive_variant(config["method"], config.get("hparams") or {}, family)


def _cell(value: Any) -> Any:
    """Hashable, CSV-stable values: lists and dicts become compact JSON."""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, sort_keys=True)
    return value


def _metric_value(value: Any) -> Any:
    """Metrics are numbers; a non-scalar metric is kept as JSON text rather than dropped."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return value
    return _cell(value)


def _metrics(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """Metric columns (with `units.DERIVED_METRICS`); a metric named like an identity column is kept as
    `metric.<name>`."""
    out = {}
    for k, v in metrics.items():
        key = f"metric.{k}" if k in META_COLUMNS or k in RUN_COLUMNS or k.startswith(("set.", "hp.")) else k
        out[key] = _metric_value(v)
    for name, (a, b) in DERIVED_METRICS.items():
        if name not in out and isinstance(out.get(a), (int, float)) and isinstance(out.get(b), (int, float)):
            out[name] = out[a] - out[b]
    return out


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def sweep_provenance(sweep_root: Path, report: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """Per run id of a sweep: the launch that last submitted it, its grid name, grid file and hash.

    For sweeps launched before runs recorded their launch in attempts.jsonl. The hash is the
    launch event's (the grid as launched); launches written before it was recorded hash the copy
    the launcher kept under ROOT/grids/.
    """
    manifest = read_manifest(sweep_root)
    for problem in manifest.problems:
        report(problem)
    launches = manifest.launches()
    out = {}
    for run_id, sub in manifest.submissions().items():
        launch = launches.get(sub.get("launch_id"), {})
        digest = launch.get("grid_sha256")
        if digest is None and launch.get("grid") and launch.get("grid_path"):
            digest = _sha256(grid_copy(sweep_root, str(launch.get("launch_id")), launch["grid"]))
        out[run_id] = {"launch_id": sub.get("launch_id"), "grid": launch.get("grid"),
                       "grid_file": launch.get("grid_path"), "grid_sha256": digest}
    return out


def _wall_time(status: Mapping[str, Any] | None, records: list[dict[str, Any]]) -> tuple[Any, Any]:
    """(seconds, source): the trainer's clock from status.json, else the span of the record times."""
    seconds = (status or {}).get("wall_time")
    if isinstance(seconds, (int, float)) and not isinstance(seconds, bool):
        return float(seconds), "trainer"
    times = [r["time"] for r in records if isinstance(r.get("time"), (int, float))]
    tests = [r["time"] for r in records if r.get("split") == "test" and isinstance(r.get("time"), (int, float))]
    if tests and len(times) > 1:
        return float(max(tests) - min(times)), "records"
    return None, None


def _provenance(config: Mapping[str, Any], sweep: Mapping[str, Any]) -> dict[str, Any]:
    found = config.get("versions")
    versions: Mapping[str, Any] = found if isinstance(found, dict) else {}
    out: dict[str, Any] = {col: versions.get(key) for key, col in VERSION_KEYS.items()}
    out["identity_version"] = (config.get("identity") or {}).get("version")
    out.update({k: sweep.get(k) for k in ("launch_id", "grid", "grid_file", "grid_sha256")})
    out["schema_version"] = SCHEMA_VERSION
    return out


def _sweep_of(run: RunDir, run_id: str, cache: dict[Path, dict[str, dict[str, Any]]],
              report: Callable[[str], None]) -> dict[str, Any]:
    """The launch that last started `run`: its latest attempt's, else its sweep root's manifest's, else {}."""
    attempts = run.attempts()
    for problem in attempts.problems:
        report(problem)
    launched = [a for a in attempts.records if a.get("launch_id")]
    if launched:
        return {k: launched[-1].get(k) for k in ("launch_id", "grid", "grid_file", "grid_sha256")}
    sweep_root = sweep_root_of(run.path)
    if sweep_root is None:
        return {}
    if sweep_root not in cache:
        cache[sweep_root] = sweep_provenance(sweep_root, report)
    return cache[sweep_root].get(run_id, {})


def _orphan(run: RunDir, report: Callable[[str], None]) -> None:
    """Report a run directory without a readable config.json (finished or not): never dropped silently."""
    if run.file(rundir.CONFIG).exists():
        report(f"{run.file(rundir.CONFIG)}: unreadable or not a run config, run skipped")
        return
    status = run.status() or {}
    first = run.first_record()
    who = (f" (run {first.get('run_id')}: {first.get('benchmark')} / {first.get('method')} / seed "
           f"{first.get('seed')})" if first else "")
    report(f"{run.path}: a {status.get('state', 'run')} run{who} without {rundir.CONFIG}, not collected; "
           f"re-run its command to restore {rundir.CONFIG}")


def _run_rows(root: Path, run: RunDir, report: Callable[[str], None], now: float,
              running_within: float, sweeps: dict[Path, dict[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    disk = run.state(now, running_within)
    config, status = disk.config, disk.status
    if config is None:  # (iter_run_dirs only yields folders that hold a config.json or a status.json)
        _orphan(run, report)
        return []
    for problem in disk.problems:
        report(problem)
    state = disk.state
    hparams = config.get("hparams") or {}
    settings = (config.get("identity") or {}).get("settings") or {}
    run_dir = run.path
    base: dict[str, Any] = {
        "benchmark": config["benchmark"], "method": config["method"],
        "variant": variant_of(config), "seed": config.get("seed"),
        "run_id": config["run_id"], "state": state.value,
        "reason": status.get("reason") if status and state == rundir.RunState.FAILED else None,
        "run_dir": run_dir.relative_to(root).as_posix() if run_dir != root else ".",
    }
    read = run.records()
    for problem in read.problems:
        report(problem)
    base["wall_time"], base["wall_time_source"] = _wall_time(status, read.records)
    base.update(_provenance(config, _sweep_of(run, config["run_id"], sweeps, report)))
    base.update({f"set.{k}": _cell(v) for k, v in settings.items()})
    base.update({f"hp.{k}": _cell(v) for k, v in hparams.items()})

    rows = []
    for r in read.records:
        if r.get("run_id", config["run_id"]) != config["run_id"]:
            report(f"{run_dir / rundir.RECORDS}: a record of run {r.get('run_id')} in run {config['run_id']}, skipped")
            continue
        metrics = r.get("metrics")
        if not isinstance(metrics, dict):
            report(f"{run_dir / rundir.RECORDS}: a record without metrics, skipped")
            continue
        row = {**base, "split": r.get("split"), "step": r.get("step"), "epoch": r.get("epoch"), "time": r.get("time")}
        row.update(_metrics(metrics))
        rows.append(row)
    if state == rundir.RunState.DONE and not any(r["split"] == "test" for r in rows):
        final = (status or {}).get("metrics")
        if isinstance(final, dict):  # status.json is written atomically, after the test record
            report(f"{run_dir}: no test record, final metrics taken from {rundir.STATUS}")
            rows.append({**base, "split": "test", "step": None, "epoch": None, "time": (status or {}).get("time"),
                         **_metrics(final)})
        else:
            report(f"{run_dir}: done but no test metrics anywhere")
    if not rows:
        rows.append({**base, "split": None, "step": None, "epoch": None, "time": None})
    return rows


def _order_columns(columns: Iterable[str]) -> list[str]:
    cols = set(columns)
    meta = [c for c in META_COLUMNS + RUN_COLUMNS if c in cols]
    sets = sorted(c for c in cols if c.startswith("set."))
    hps = sorted(c for c in cols if c.startswith("hp."))
    metrics = sorted(cols - set(meta) - set(sets) - set(hps))
    return meta + sets + hps + metrics


def collect(root: Path | str, *, report: Callable[[str], None] | None = None,
            running_within: float = rundir.ALIVE_SECONDS, now: float | None = None) -> pd.DataFrame:
    """All records of every run directory below `root` (see the module docstring for the layout).

    Rows are sorted by benchmark, method, variant, seed, run id, split (train, val, test) and step,
    columns by kind (identity, provenance, `set.*`, `hp.*`, metrics alphabetically), so the same
    files always give the same frame; fixed columns have the dtypes of `augbench.results.schema`.
    Problems go to `report` (default: one line on stderr each).
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"results folder {root} does not exist (expected a folder of run directories)")
    report = report or logger.info
    now = time.time() if now is None else now
    rows: list[dict[str, Any]] = []
    sweeps: dict[Path, dict[str, dict[str, Any]]] = {}
    for run in rundir.iter_run_dirs(root):
        rows.extend(_run_rows(root, run, report, now, running_within, sweeps))
    if not rows:
        return apply_dtypes(pd.DataFrame(columns=META_COLUMNS + RUN_COLUMNS))
    frame = pd.DataFrame(rows)
    frame = frame[_order_columns(frame.columns)]
    for col in frame.columns:  # integer columns stay integers despite missing values (seed, epochs, int settings)
        present = [r[col] for r in rows if r.get(col) is not None]
        if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
            frame[col] = frame[col].astype("Int64")
    order = frame["split"].map(lambda s: SPLIT_ORDER.get(s, 3) if isinstance(s, str) else 4)
    frame = frame.assign(_o=order).sort_values(
        ["benchmark", "method", "variant", "seed", "run_id", "_o", "step"], kind="stable", na_position="last")
    return apply_dtypes(frame.drop(columns="_o").reset_index(drop=True))


def _parquet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """Parquet holds one type per column: a column mixing types (a setting that is "auto" or a
    number) is stored as text, each value as `str` would write it (missing values stay missing)."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype != object:
            continue
        kinds = {type(v) for v in out[col] if v is not None and not (isinstance(v, float) and pd.isna(v))}
        if len(kinds) > 1 and not kinds <= {int, float}:
            out[col] = out[col].map(lambda v: v if v is None or (isinstance(v, float) and pd.isna(v)) else str(v))
    return out


def write_frame(frame: pd.DataFrame, path: Path | str) -> Path:
    """Save a collected frame: Parquet when the suffix asks for it and pyarrow is installed, else CSV."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            path = path.with_suffix(".csv")
            logger.warning(f"pyarrow is not installed: writing {path} instead")
        else:
            _parquet_safe(frame).to_parquet(path, index=False)
            return path
    frame.to_csv(path, index=False)
    return path


def runs(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per run: its identity columns, state, reason and provenance (metrics dropped)."""
    keep = [c for c in frame.columns if c in ("benchmark", "method", "variant", "seed", "run_id", "state", "reason",
                                              "run_dir", *RUN_COLUMNS) or c.startswith(("set.", "hp."))]
    return frame[keep].drop_duplicates("run_id").reset_index(drop=True)
