"""Grid files: a sweep as data (TOML), expanded into validated runs.

A grid names benchmarks, methods with hyperparameter values, seeds and the SLURM resources of
each benchmark. A list value is an axis (cartesian product); `cases` lists values that vary
together (Table E.1's (Hmin, Hmax) intervals are pairs, not a product)::

    name = "table1"
    paper = "Table 1"
    benchmark = "tinyimagenet-crop"        # or a list: an axis
    seeds = 10                             # 0..9, or an explicit list [0, 3, 7]

    [settings]                             # benchmark settings of every entry
    "eval.tta_views" = 50

    [resources]                            # SLURM options of every benchmark ...
    time = "24:00:00"
    gpus = 1
    [resources.tinyimagenet-crop]          # ... and of one benchmark (wins)
    mem = "32G"

    [[runs]]
    method = "random-crop"
    hparams = { scale_min = [0.05, 0.1, 0.2] }           # three runs per seed

    [[runs]]
    method = "instaaug"
    label = "instaaug (E.1)"
    hparams = { parameterization = "lrp" }
    cases = [{ h_min = 0.0, h_max = 0.5 }, { h_min = 0.5, h_max = 1.0 }]

Keys of `cases` and of `--set` are routed by `augbench.overrides`, as for `augbench run --set`:
dotted names are benchmark settings, other names (or `method.NAME`) the hyperparameters of
every method that declares them, `METHOD:NAME` one method's. A hyperparameter that is
itself a list takes a list of lists (`layers = [[2, 3]]` is one value, not an axis). The value
`"{seed}"` stands for the run's seed, for settings that must vary with it (Table 4 draws its
training lightings per repeat: `"data.lighting_seed" = "{seed}"`).

Runs are ordered seed-major (all configurations of the first seed, then the next), so a sweep
that is stopped half-way has complete tables for its first seeds; identical runs reached twice
(two entries giving the same resolved configuration) run once.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib import resources as importlib_resources
from pathlib import Path
from typing import Any

from augbench.errors import ConfigError
from augbench.overrides import Routed, check_hparams, route
from augbench.precheck import check_grid
from augbench.rundir import RunConfig
from augbench.safeload import loads_toml

GRID_SUFFIX = ".toml"
TOP_KEYS = ("name", "description", "paper", "benchmark", "seeds", "settings", "resources", "runs")
ENTRY_KEYS = ("method", "benchmark", "seeds", "label", "settings", "hparams", "cases")
SEED_PLACEHOLDER = "{seed}"  # a value replaced by each run's seed
DEFAULT_RESOURCE_KEY = ""  # `Grid.resources` key of the options shared by every benchmark


# --------------------------------------------------------------------------------- resources
GRID_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")  # names files under the sweep root and SLURM jobs
_MEM_RE = re.compile(r"^\d+[KMGT]?$", re.IGNORECASE)


def parse_time_minutes(value: int | str) -> int:
    """SLURM time limits (`MM`, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM`, `D-HH:MM:SS`) in minutes, rounded up."""
    if isinstance(value, bool):
        raise ConfigError(f"resources.time: expected minutes or a SLURM time such as '12:00:00', got {value!r}")
    if isinstance(value, int):
        if value <= 0:
            raise ConfigError(f"resources.time: must be positive, got {value}")
        return value
    text = str(value).strip()
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text)
    if m is None:
        raise ConfigError(f"resources.time: {value!r} is not a SLURM time (MM, HH:MM:SS or D-HH:MM:SS)")
    days, a, b, c = m.groups()
    parts = [int(x) for x in (a, b, c) if x is not None]
    if days is not None:  # D-HH, D-HH:MM, D-HH:MM:SS
        parts += [0] * (3 - len(parts))
        seconds = int(days) * 86400 + parts[0] * 3600 + parts[1] * 60 + parts[2]
    elif len(parts) == 1:  # MM
        seconds = parts[0] * 60
    elif len(parts) == 2:  # MM:SS
        seconds = parts[0] * 60 + parts[1]
    else:  # HH:MM:SS
        seconds = parts[0] * 3600 + parts[1] * 60 + parts[2]
    if seconds <= 0:
        raise ConfigError(f"resources.time: must be positive, got {value!r}")
    return -(-seconds // 60)


@dataclass(frozen=True)
class Resources:
    """SLURM options of a job; None means "not set" (the cluster's or submitit's default).

    `time_min` is also what submitit's requeue logic measures a time-out against, so it must
    be the real limit. `extra` passes further `#SBATCH` options verbatim
    (submitit's `slurm_additional_parameters`).
    """

    partition: str | None = None
    gpus: int | None = None
    cpus: int | None = None
    mem: str | None = None
    time_min: int | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    array_parallelism: int | None = None
    extra: tuple[tuple[str, Any], ...] = ()
    tasks: int | None = None  # tasks per node: one data-parallel training process per GPU

    KEYS = ("partition", "gpus", "cpus", "mem", "time", "account", "qos", "constraint",
            "array_parallelism", "extra", "tasks")

    @classmethod
    def parse(cls, table: Mapping[str, Any], where: str = "resources") -> Resources:
        """Validate a `[resources]` table (or command-line options) into Resources."""
        values: dict[str, Any] = {}
        for key, value in table.items():
            if value is None:
                continue
            if key not in cls.KEYS:
                raise ConfigError(f"{where}: unknown SLURM option {key!r}; valid: {', '.join(cls.KEYS)}")
            if key in ("partition", "account", "qos", "constraint"):
                values[key] = str(value)
            elif key in ("gpus", "cpus", "array_parallelism", "tasks"):
                if isinstance(value, bool) or not isinstance(value, int) and not str(value).isdigit():
                    raise ConfigError(f"{where}.{key}: expected a whole number, got {value!r}")
                if int(value) < (0 if key == "gpus" else 1):
                    raise ConfigError(f"{where}.{key}: {value!r} is too small")
                values[key] = int(value)
            elif key == "mem":
                text = str(value).strip()
                if isinstance(value, bool) or not _MEM_RE.match(text):
                    raise ConfigError(f"{where}.mem: expected megabytes or a size such as '16G', got {value!r}")
                values["mem"] = text.upper()
            elif key == "time":
                values["time_min"] = parse_time_minutes(value)
            elif key == "extra":
                if not isinstance(value, Mapping):
                    raise ConfigError(f"{where}.extra: expected a table of #SBATCH options, got {value!r}")
                values["extra"] = tuple(sorted((str(k), v) for k, v in value.items()))
        return cls(**values)

    def merged(self, other: Resources) -> Resources:
        """These options updated with every option `other` sets."""
        updates = {k: getattr(other, k) for k in self.__dataclass_fields__ if getattr(other, k) not in (None, ())}
        if other.extra and self.extra:
            updates["extra"] = tuple(sorted({**dict(self.extra), **dict(other.extra)}.items()))
        return replace(self, **updates)

    def submitit_parameters(self) -> dict[str, Any]:
        """Arguments of `AutoExecutor.update_parameters` for the slurm cluster."""
        params: dict[str, Any] = {"slurm_partition": self.partition, "gpus_per_node": self.gpus,
                                  "cpus_per_task": self.cpus, "slurm_mem": self.mem, "timeout_min": self.time_min,
                                  "slurm_account": self.account, "slurm_qos": self.qos,
                                  "slurm_constraint": self.constraint,
                                  "slurm_array_parallelism": self.array_parallelism, "tasks_per_node": self.tasks}
        if self.extra:
            params["slurm_additional_parameters"] = dict(self.extra)
        return {k: v for k, v in params.items() if v is not None}

    def describe(self) -> str:
        parts = [f"{k}={getattr(self, k)}" for k in self.__dataclass_fields__ if getattr(self, k) not in (None, ())]
        return ", ".join(parts) or "(cluster defaults)"


# --------------------------------------------------------------------------------- the grid
@dataclass(frozen=True)
class Entry:
    """One `[[runs]]` block: a method, its axes and cases, on one or more benchmarks."""

    index: int
    method: str
    benchmarks: tuple[str, ...]
    seeds: tuple[int, ...]
    label: str
    axes: tuple[tuple[str, tuple[Any, ...]], ...]  # name -> values (settings and hparams together)
    cases: tuple[dict[str, Any], ...] = ({},)


@dataclass(frozen=True)
class GridPoint:
    """One run before validation: what `augbench.runs.resolve` receives."""

    benchmark: str
    method: str
    seed: int
    overrides: dict[str, Any]
    label: str
    entry: int
    variant: str = ""  # the values of the entry's axes and cases that vary, e.g. "max_angle=15.0"


@dataclass(frozen=True)
class PlannedRun:
    """A validated run of a grid."""

    config: RunConfig
    label: str
    variant: str = ""

    @property
    def run_id(self) -> str:
        return self.config.run_id


@dataclass
class Expansion:
    """The runs of a grid; entries whose method or benchmark is not registered, if skipped."""

    runs: list[PlannedRun] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    duplicates: int = 0


@dataclass(frozen=True)
class Grid:
    """A parsed grid file: entries, and SLURM resources shared and per benchmark."""

    name: str
    entries: tuple[Entry, ...]
    description: str = ""
    paper: str = ""
    path: Path | None = None
    resources: Mapping[str, Resources] = field(default_factory=dict)

    def resources_for(self, benchmark: str) -> Resources:
        """The grid-wide options updated with the benchmark's own table."""
        base = self.resources.get(DEFAULT_RESOURCE_KEY, Resources())
        own = self.resources.get(benchmark)
        return base.merged(own) if own is not None else base

    def points(self, overrides: Mapping[str, Any] | None = None, seeds: Iterable[int] | None = None,
               declared: Callable[[str], frozenset[str] | None] | None = None) -> list[GridPoint]:
        """Every (benchmark, method, seed, overrides) of the grid, seed-major, not yet validated.

        `overrides` are `--set` pairs: dotted names reach every run, others the runs whose
        method declares them (an error when no method of the grid does). `declared(method)`:
        the names `--set` may give a method, None if unknown (default: from the registry).
        """
        declared = declared or _declared_hparams
        routed = route(overrides or {})
        _check_cli_hparams(self, routed, declared)
        out: list[tuple[int, int, GridPoint]] = []
        for entry in self.entries:
            entry_seeds = tuple(seeds) if seeds is not None else entry.seeds
            names = [name for name, _ in entry.axes]
            combos = list(itertools.product(*(values for _, values in entry.axes)))
            varying = [name for name, values in entry.axes if len(values) > 1]
            if len(entry.cases) > 1:
                varying += [k for k in dict.fromkeys(k for c in entry.cases for k in c) if k not in varying]
            extra = routed.for_method(entry.method, declared(entry.method))
            settings = routed.settings
            for bench in entry.benchmarks:
                for combo in combos:
                    for case in entry.cases:
                        ov = {**dict(zip(names, combo)), **case, **settings, **extra}
                        for s_rank, seed in enumerate(entry_seeds):
                            point_ov = {k: seed if v == SEED_PLACEHOLDER else v for k, v in ov.items()}
                            variant = " ".join(f"{k}={point_ov[k]}" for k in varying if k in point_ov)
                            out.append((s_rank, len(out), GridPoint(bench, entry.method, seed, point_ov,
                                                                    entry.label, entry.index, variant)))
        out.sort(key=lambda t: (t[0], t[1]))
        return [p for _, _, p in out]

    def expand(self, overrides: Mapping[str, Any] | None = None, seeds: Iterable[int] | None = None,
               *, skip_unregistered: bool = False) -> Expansion:
        """Validate every point into a `RunConfig`; the first invalid one is a one-line ConfigError.

        With `skip_unregistered`, entries whose method or benchmark is not registered (yet) are
        listed in `Expansion.skipped` instead of failing; other errors still raise.
        """
        check_grid(self, overrides, seeds, skip_unregistered)  # names from the catalog: errors before torch loads
        from augbench.benchmarks import BENCHMARKS  # torch: parsing a grid needs no registry, expanding it does
        from augbench.methods import METHODS
        from augbench.runs import resolve

        exp = Expansion()
        seen: set[str] = set()
        skipped: set[tuple[int, str]] = set()
        for point in self.points(overrides, seeds):
            missing = [f"method {point.method!r}"] if point.method not in METHODS else []
            if point.benchmark not in BENCHMARKS:
                missing.append(f"benchmark {point.benchmark!r}")
            if missing and skip_unregistered:
                skipped.add((point.entry, f"{self.name}: runs[{point.entry}] ({point.label}) on "
                                          f"{point.benchmark}: {' and '.join(missing)} not registered"))
                continue
            try:
                cfg = resolve(point.benchmark, point.method, point.seed, point.overrides)
            except ConfigError as exc:
                raise self.point_error(point, exc) from None
            if cfg.run_id in seen:
                exp.duplicates += 1
                continue
            seen.add(cfg.run_id)
            exp.runs.append(PlannedRun(cfg, point.label, point.variant))
        exp.skipped = [msg for _, msg in sorted(skipped)]
        return exp


    def point_error(self, point: GridPoint, exc: ConfigError) -> ConfigError:
        """A point's error, saying which entry of which grid on which benchmark it comes from."""
        return ConfigError(f"{self.name}: runs[{point.entry}] ({point.label}) on {point.benchmark}: {exc}")


def _declared_hparams(method: str) -> frozenset[str] | None:
    """The names `--set` may give the method, or None when it is not registered (expand reports it)."""
    from augbench.methods import METHODS, get_method  # torch: only to check an entry's method

    return get_method(method).settable() if method in METHODS else None


def _check_cli_hparams(grid: Grid, routed: Routed, declared_by: Callable[[str], frozenset[str] | None]) -> None:
    """`--set` hyperparameters by the one rule (`overrides.check_hparams`) over the grid's methods."""
    declared: dict[str, set[str]] = {}
    for entry in grid.entries:
        names = declared_by(entry.method)
        if names is None:
            return  # an unregistered method might declare it; expand reports the method
        declared.setdefault(entry.method, set()).update(names)
    check_hparams(routed, declared, f"grid {grid.name}")


# --------------------------------------------------------------------------------- parsing
def _seeds(value: Any, where: str) -> tuple[int, ...]:
    if isinstance(value, bool):
        raise ConfigError(f"{where}.seeds: expected a count or a list of integers, got {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise ConfigError(f"{where}.seeds: the count must be at least 1, got {value}")
        return tuple(range(value))
    if isinstance(value, list) and value and all(isinstance(s, int) and not isinstance(s, bool) for s in value):
        if len(set(value)) != len(value):
            raise ConfigError(f"{where}.seeds: repeated seeds in {value}")
        return tuple(value)
    raise ConfigError(f"{where}.seeds: expected a count or a non-empty list of integers, got {value!r}")


def _scalar(value: Any, where: str) -> Any:
    if isinstance(value, dict):
        raise ConfigError(f"{where}: values must be numbers, strings, booleans or lists, got a table")
    return value


def _axes(table: Any, where: str, dotted: bool) -> list[tuple[str, tuple[Any, ...]]]:
    """`settings`/`hparams` tables: a scalar is one value, a list an axis."""
    if table is None:
        return []
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table, got {table!r}")
    out = []
    for key, value in table.items():
        if dotted and "." not in key:
            raise ConfigError(f"{where}: {key!r} is not a benchmark setting (those are dotted, e.g. 'train.epochs'); "
                              f"put method hyperparameters under hparams")
        if not dotted and "." in key:
            raise ConfigError(f"{where}: {key!r} looks like a benchmark setting; put it under settings")
        values = value if isinstance(value, list) else [value]
        if not values:
            raise ConfigError(f"{where}.{key}: an empty list gives no runs")
        out.append((key, tuple(_scalar(v, f"{where}.{key}") for v in values)))
    return out


def _benchmarks(value: Any, where: str) -> tuple[str, ...]:
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, str) and v for v in values):
        raise ConfigError(f"{where}.benchmark: expected a benchmark name or a list of names, got {value!r}")
    return tuple(values)


def parse_grid(data: Mapping[str, Any], name: str, path: Path | None = None) -> Grid:
    """A grid from the parsed TOML document; every structural mistake is a one-line ConfigError."""
    unknown = sorted(set(data) - set(TOP_KEYS))
    if unknown:
        raise ConfigError(f"{name}: unknown key {unknown[0]!r}; valid: {', '.join(TOP_KEYS)}")
    name = str(data.get("name", name))
    if not GRID_NAME.fullmatch(name):
        raise ConfigError(f"grid name {name!r}: use letters, digits, '.', '_' and '-' (it names files and jobs)")
    top_bench = data.get("benchmark")
    top_seeds = _seeds(data["seeds"], name) if "seeds" in data else (0,)
    top_settings = _axes(data.get("settings"), f"{name}.settings", dotted=True)
    runs = data.get("runs")
    if not isinstance(runs, list) or not runs:
        raise ConfigError(f"{name}: no [[runs]] entries (each names a method, e.g. [[runs]] method = \"none\")")
    entries = []
    for i, block in enumerate(runs):
        where = f"{name}.runs[{i}]"
        if not isinstance(block, dict):
            raise ConfigError(f"{where}: expected a table")
        bad = sorted(set(block) - set(ENTRY_KEYS))
        if bad:
            raise ConfigError(f"{where}: unknown key {bad[0]!r}; valid: {', '.join(ENTRY_KEYS)}")
        method = block.get("method")
        if not isinstance(method, str) or not method:
            raise ConfigError(f"{where}: 'method' (a method name) is required")
        bench = block.get("benchmark", top_bench)
        if bench is None:
            raise ConfigError(f"{where}: no benchmark (set 'benchmark' at the top of the grid or in the entry)")
        settings = dict(top_settings)
        settings.update(_axes(block.get("settings"), f"{where}.settings", dotted=True))
        hparams = _axes(block.get("hparams"), f"{where}.hparams", dotted=False)
        cases = block.get("cases", [{}])
        if not isinstance(cases, list) or not cases or not all(isinstance(c, dict) for c in cases):
            raise ConfigError(
                f"{where}.cases: expected a non-empty list of tables, e.g. [{{h_min = 0.0, h_max = 0.5}}]"
            )
        for c in cases:
            for key, value in c.items():
                if isinstance(value, (list, dict)):
                    raise ConfigError(f"{where}.cases: {key} = {value!r}: each case gives one value per name")
        axis_names = {k for k, _ in settings.items()} | {k for k, _ in hparams}
        for c in cases:
            clash = sorted(axis_names & set(c))
            if clash:
                raise ConfigError(f"{where}: {clash[0]!r} is set both in cases and in settings/hparams")
        label = str(block.get("label", method))
        entries.append(Entry(i, method, _benchmarks(bench, where),
                             _seeds(block["seeds"], where) if "seeds" in block else top_seeds,
                             label, tuple(settings.items()) + tuple(hparams), tuple(dict(c) for c in cases)))
    resources: dict[str, Resources] = {}
    table = data.get("resources", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{name}.resources: expected a table")
    shared = {k: v for k, v in table.items() if not isinstance(v, dict) or k == "extra"}
    resources[DEFAULT_RESOURCE_KEY] = Resources.parse(shared, f"{name}.resources")
    for key, value in table.items():
        if isinstance(value, dict) and key != "extra":
            resources[key] = Resources.parse(value, f"{name}.resources.{key}")
    return Grid(name, tuple(entries), str(data.get("description", "")), str(data.get("paper", "")), path, resources)


# --------------------------------------------------------------------------------- files
def grids_dir() -> Path:
    """Where the shipped grids live (`augbench/benchmarks/grids/`)."""
    # found from the top package: importing augbench.benchmarks would load torch to read a text file
    return Path(str(importlib_resources.files("augbench") / "benchmarks" / "grids"))


def list_grids() -> list[str]:
    """Names of the shipped grids."""
    folder = grids_dir()
    return sorted(p.stem for p in folder.glob(f"*{GRID_SUFFIX}")) if folder.is_dir() else []


def find_grid(name_or_path: str | Path) -> Path:
    """A grid file: an existing path, or the name of a shipped grid."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = grids_dir() / f"{path.name}{'' if path.name.endswith(GRID_SUFFIX) else GRID_SUFFIX}"
    if str(name_or_path) == path.name and shipped.is_file():
        return shipped
    raise ConfigError(f"no grid file {str(name_or_path)!r}; shipped grids: {', '.join(list_grids()) or '(none)'}")


def load_grid(name_or_path: str | Path) -> Grid:
    """Read and check a grid file (TOML) by path or shipped name."""
    path = find_grid(name_or_path)
    try:
        data = loads_toml(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start}); grid files are TOML in UTF-8") from None
    except ValueError as exc:  # a syntax error, or nesting too deep (`augbench.safeload`)
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    except OSError as exc:
        raise ConfigError(f"{path}: unreadable ({exc.strerror})") from None
    return parse_grid(data, path.stem, path)
