"""docs/recipes.md's three columns, each against its source: the paper, the public code, augbench.

Every section of the document is a table of settings, one row each, with a key the test reads:
the grids' sections ("(grid `table1`, ..."), the embedded stand-ins', the folder benchmarks',
the newer methods' and the per-sample magnitude methods'.

- augbench column: what `resolve` gives (grid sections: every run of the grid; the others:
  `BENCHMARK / METHOD / HYPERPARAMETER`, `BENCHMARK / SETTING` or `BENCHMARK / settings / SETTING`).
  A silent change of a default, or a new paper grid without a section, fails here.
- paper column: augbench/data/paper_recipes.json, the values quoted from the paper with the
  section or table they come from; a row stating a value must have an entry and the cell must
  show its value, a row saying "—" must have none.
- public-code column: augbench/data/public_recipes.json says which transcribed values of the
  public code (augbench/data/public_configs/*.json: repository, commit, file, field) a row
  states; the cell must show each of them, and every referenced value must exist. The folder
  benchmarks' column "Paper (public code)" is checked as public code. The magnitude methods'
  section has no transcription yet (UNTRANSCRIBED): only its augbench column is checked.
"""

from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

import augbench
from augbench.methods import MethodContext, create_method
from augbench.runs import resolve
from augbench.sweep.grid import Grid, PlannedRun, list_grids, load_grid

DOC = Path(__file__).resolve().parents[1] / "docs" / "recipes.md"
DATA = Path(augbench.__file__).parent / "data"
# (num_classes, image_shape) of each paper benchmark, for the values InstaAug derives at build time
SHAPES = {"tinyimagenet-crop": (200, (3, 64, 64)), "tinyimagenet-contrastive": (200, (3, 64, 64)),
          "imagenet-tta": (1000, (3, 224, 224)), "rawfoot-color": (68, (3, 64, 64)),
          "glyphs-rotation": (4, (3, 32, 32))}
# hyperparameter -> what the built InstaAug uses for it
DERIVED = {"lr": lambda m: m.phi_lr, "lambda0": lambda m: m.lambda0, "h_min": lambda m: m.h_min,
           "h_max": lambda m: m.h_max, "lrp_layers": lambda m: m.distribution.layers,
           "lrp_prior": lambda m: m.distribution.prior, "lrp_max_outside": lambda m: m.distribution.max_outside}
GRID_SECTION = re.compile(r"^#{2,3} .*\(grid `([^`]+)`")
OTHER_SECTIONS = {"## The embedded stand-ins": "stand-ins", "## The folder benchmarks": "folder",
                  "## The methods that followed the paper": "newer", "## The per-sample magnitude methods": "magnitude"}
#: sections of 5 cells: Setting | Key | Their public code (or the paper's) | augbench | Why
FIVE_CELLS = ("folder", "newer", "magnitude")
#: sections whose public column is not yet transcribed in augbench/data/public_configs/
UNTRANSCRIBED = ("magnitude",)
REQUIRED = ("model.name", "train.epochs", "train.val_fraction", "grid.seeds")
NUMBER = re.compile(r"(?<![A-WYZa-wyz0-9_.])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")  # "x0.9" is 0.9


@dataclass(frozen=True)
class Row:
    section: str
    setting: str
    key: str
    paper: str | None  # None: the section has no paper column of its own (FIVE_CELLS)
    public: str
    augbench: str

    @property
    def where(self) -> str:
        return f"docs/recipes.md, {self.section}, {self.setting} ({self.key})"


@cache
def _rows() -> dict[str, tuple[Row, ...]]:
    """section -> its rows. Grid sections and the stand-ins': Setting | Key | Paper | Public code |
    augbench | Why; FIVE_CELLS: Setting | Key | Their public code | augbench | Why."""
    out: dict[str, list[Row]] = {}
    section = None
    for line in DOC.read_text().splitlines():
        if line.startswith("#"):
            m = GRID_SECTION.match(line)
            section = m.group(1) if m else next((v for k, v in OTHER_SECTIONS.items() if line.startswith(k)), None)
            if section is not None:
                assert section not in out, f"two sections for {section}"
                out[section] = []
            continue
        if section is None or not line.startswith("| ") or line.startswith("| Setting |"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if section in FIVE_CELLS:
            assert len(cells) == 5, f"{section}: a row needs 5 cells: {line}"
            out[section].append(Row(section, cells[0], cells[1].strip("`"), None, cells[2], cells[3]))
        else:
            assert len(cells) == 6, f"{section}: a row needs 6 cells: {line}"
            out[section].append(Row(section, cells[0], cells[1].strip("`"), cells[2], cells[3], cells[4]))
    return {k: tuple(v) for k, v in out.items()}


def _all_rows() -> list[Row]:
    return [row for rows in _rows().values() for row in rows]


def _value(text: str) -> Any:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool) or a is None or b is None:
        return a is b or a == b and type(a) is type(b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def _distinct(values: list[Any]) -> Any:
    """One value when every run agrees, else the values in order of first appearance (a sweep)."""
    seen: list[Any] = []
    for v in values:
        if not any(_same(v, s) for s in seen):
            seen.append(v)
    return seen[0] if len(seen) == 1 else seen


# ----------------------------------------------------------------------------- the augbench column
@cache
def _grid(name: str) -> tuple[Grid, tuple[PlannedRun, ...]]:
    grid = load_grid(name)
    return grid, tuple(grid.expand(seeds=[0]).runs)


def _paper_grids() -> list[str]:
    """The grids that reproduce a paper table or figure (they name it in `paper`)."""
    return sorted(name for name in list_grids() if load_grid(name).paper)


def _derived(cfg: Any, name: str) -> Any:
    assert cfg.method == "instaaug" and name in DERIVED, f"no derived value of {cfg.method} / {name}"
    num_classes, shape = SHAPES[cfg.benchmark]
    m = create_method("instaaug", MethodContext(num_classes, shape, frozenset({"crop", "rotation", "color"})),
                      **cfg.hparams)
    return DERIVED[name](m)


def _resolved(row: Row) -> tuple[Any, list[Any]]:
    """The resolved value of the row's key, and the configurations it comes from."""
    if row.section in OTHER_SECTIONS.values():
        parts = row.key.split(" / ")
        assert len(parts) in (2, 3), f"{row.where}: key must be BENCHMARK / [METHOD /] NAME"
        if len(parts) == 2 or parts[1] == "settings":
            cfg = resolve(parts[0], "none")
            return cfg.settings[parts[-1]], [cfg]
        cfg = resolve(parts[0], parts[1])
        return cfg.hparams[parts[2]], [cfg]
    grid, runs = _grid(row.section)
    if row.key == "grid.seeds":
        counts = {len(e.seeds) for e in grid.entries}
        assert len(counts) == 1, f"{row.where}: the grid's entries run {counts} seeds"
        return counts.pop(), []
    if " / " in row.key:
        labels, name = row.key.rsplit(" / ", 1)
        wanted = [label.strip() for label in labels.split(",")]
        chosen = [r for r in runs if r.label in wanted]
        missing = set(wanted) - {r.label for r in chosen}
        assert not missing, f"{row.where}: no runs labelled {sorted(missing)}"
        return _distinct([r.config.hparams[name] for r in chosen]), [r.config for r in chosen]
    return _distinct([r.config.settings[row.key] for r in runs]), [r.config for r in runs]


def _check_augbench(row: Row) -> None:
    shown = [_value(v) for v in re.findall(r"`([^`]*)`", row.augbench)]
    derived = "→" in row.augbench
    assert len(shown) == (2 if derived else 1), f"{row.where}: bad augbench cell {row.augbench!r}"
    resolved, configs = _resolved(row)
    assert _same(resolved, shown[0]), f"{row.where}: resolves {resolved!r}, the document says {shown[0]!r}"
    if derived:
        actual = _distinct([_derived(cfg, row.key.rsplit(" / ", 1)[1]) for cfg in configs])
        assert _same(actual, shown[1]), f"{row.where}: InstaAug uses {actual!r}, the document says {shown[1]!r}"


def test_every_paper_grid_has_a_section_with_the_core_settings():
    sections = _rows()
    assert set(sections) - set(OTHER_SECTIONS.values()) == set(_paper_grids())
    for grid_name in _paper_grids():
        rows = sections[grid_name]
        keys = {row.key for row in rows}
        required = REQUIRED if grid_name != "figure7_random_color" else REQUIRED[1:]  # a baseline's sweep
        assert not set(required) - keys, f"{grid_name}: no row for {sorted(set(required) - keys)}"
        _, runs = _grid(grid_name)
        insta = {r.label for r in runs if r.config.method == "instaaug"}
        with_lr = {label.strip() for row in rows if row.key.endswith(" / lr")
                   for label in row.key.rsplit(" / ", 1)[0].split(",")}
        assert insta <= with_lr, f"{grid_name}: phi's learning rate of {sorted(insta - with_lr)} is not stated"


@pytest.mark.parametrize("section", [*_paper_grids(), *OTHER_SECTIONS.values()])
def test_the_augbench_column_is_what_resolve_gives(section):
    rows = _rows().get(section, ())
    assert rows, f"docs/recipes.md has no section {section}"
    for row in rows:
        _check_augbench(row)


@pytest.mark.parametrize(("section", "position", "expected"), [
    ("newer", 1, {"flowinv", "madaug", "teachaugment"}),
    ("magnitude", 1, {"entaugment", "adaaugment", "sra"}),
    ("folder", 0, {"imagefolder-rotation", "imagefolder-color", "imagefolder-crop", "fashion-mnist-crop"}),
])
def test_the_keyed_sections_cover_each_of_theirs(section, position, expected):
    assert {row.key.split(" / ")[position] for row in _rows()[section]} == expected


# ----------------------------------------------------------------------------- paper and public code
PAPER = json.loads((DATA / "paper_recipes.json").read_text())
PUBLIC = json.loads((DATA / "public_recipes.json").read_text())
CONFIGS = {p.stem: json.loads(p.read_text()) for p in sorted((DATA / "public_configs").glob("*.json"))}


def _stated(cell: str) -> bool:
    """Whether a paper or public cell states something ("—", possibly with a remark, states nothing)."""
    return not cell.startswith("—")


def _shows(cell: str, value: Any, shown: str | None = None) -> bool:
    """Whether `cell` shows `value`: the text `shown` when given (needed for booleans), a number
    among the cell's numbers, a string as a (case-insensitive) part, a list element by element."""
    if shown is not None:
        return shown.lower() in cell.lower()
    if isinstance(value, bool):
        raise AssertionError(f"a boolean needs the text that shows it: {value!r} in {cell!r}")
    if isinstance(value, (int, float)):
        return any(math.isclose(float(n), value, rel_tol=1e-9, abs_tol=1e-12) for n in NUMBER.findall(cell))
    if isinstance(value, str):
        return value.lower() in cell.lower()
    if isinstance(value, list):
        return all(_shows(cell, v) for v in value)
    raise AssertionError(f"cannot show {value!r}")


def _entries(source: dict[str, Any], column: str) -> dict[tuple[str, str], Any]:
    out = {}
    for section, keys in source["rows"].items():
        assert section in _rows(), f"{column} data: no section {section} in docs/recipes.md"
        for key, entry in keys.items():
            out[section, key] = entry
    return out


def _public_value(ref: dict[str, str]) -> Any:
    config = CONFIGS[ref["repo"]]
    sources = config["sources"]
    assert ref["file"] in sources, f"public data: {ref['repo']} has no transcription of {ref['file']}"
    assert ref["field"] in sources[ref["file"]], f"public data: {ref['file']} has no field {ref['field']}"
    return sources[ref["file"]][ref["field"]]


def test_public_transcriptions_name_their_repository_and_commit():
    assert set(CONFIGS) == {"instaaug", "flowinv", "madaug", "teachaugment", "adaaug"}
    for name, config in CONFIGS.items():
        assert re.fullmatch(r"[\w.-]+/[\w.-]+", config["repository"]), name
        assert re.fullmatch(r"[0-9a-f]{40}", config["commit"]), name
        assert config["sources"] and all(isinstance(v, dict) and v for v in config["sources"].values()), name


def test_the_paper_column_is_the_quoted_paper():
    entries = _entries(PAPER, "paper")
    rows = {(r.section, r.key): r for r in _all_rows() if r.paper is not None}
    assert not set(entries) - set(rows), f"paper data without a row: {sorted(set(entries) - set(rows))}"
    for (section, key), row in rows.items():
        assert row.paper is not None
        entry = entries.get((section, key))
        if not _stated(row.paper):
            assert entry is None, f"{row.where}: the paper states nothing, the data quotes {entry}"
            continue
        assert entry is not None, f"{row.where}: the paper column states {row.paper!r}; quote it in paper_recipes.json"
        assert entry["where"], f"{row.where}: say where the paper states it"
        assert _shows(row.paper, entry["value"], entry.get("shown")), \
            f"{row.where}: the paper column {row.paper!r} does not show the paper's {entry['value']!r}"


def test_the_public_code_column_is_the_transcribed_public_code():
    entries = _entries(PUBLIC, "public-code")
    rows = {(r.section, r.key): r for r in _all_rows() if r.section not in UNTRANSCRIBED}
    assert not set(entries) - set(rows), f"public data without a row: {sorted(set(entries) - set(rows))}"
    for (section, key), row in rows.items():
        entry = entries.get((section, key))
        if not _stated(row.public):
            assert entry is None, f"{row.where}: the public column states nothing, the data names {entry}"
            continue
        assert entry is not None, f"{row.where}: the public column states {row.public!r}; name its source in " \
                                  f"public_recipes.json"
        if "same_as" in entry:  # "as Table 1": that section's row of the same key
            assert (entry["same_as"], key) in entries, f"{row.where}: {entry['same_as']} has no public row {key}"
            continue
        assert entry["refs"], f"{row.where}: no source named"
        for ref in entry["refs"]:
            value = _public_value(ref)
            assert _shows(row.public, value, ref.get("shown")), \
                f"{row.where}: the public column {row.public!r} does not show {ref['file']} {ref['field']} = {value!r}"
