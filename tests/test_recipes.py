"""docs/recipes.md states every paper grid's defaults: its augbench column must be what the grids resolve to.

Each section names a grid ("(grid `table1`, ..."); each table row a key (a benchmark setting,
`grid.seeds`, or `LABELS / NAME`: a hyperparameter of the grid's runs with those labels) and
the augbench value (`` `v` ``, or `` `None` → `v` `` for a value the method derives). A silent
change of a default, or a new paper grid without a section, fails here.
"""

from __future__ import annotations

import ast
import math
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from augbench.methods import MethodContext, create_method
from augbench.runs import resolve
from augbench.sweep.grid import Grid, PlannedRun, list_grids, load_grid

DOC = Path(__file__).resolve().parents[1] / "docs" / "recipes.md"
# (num_classes, image_shape) of each paper benchmark, for the values InstaAug derives at build time
SHAPES = {"tinyimagenet-crop": (200, (3, 64, 64)), "tinyimagenet-contrastive": (200, (3, 64, 64)),
          "imagenet-tta": (1000, (3, 224, 224)), "rawfoot-color": (68, (3, 64, 64)),
          "glyphs-rotation": (4, (3, 32, 32))}
# hyperparameter -> what the built InstaAug uses for it
DERIVED = {"lr": lambda m: m.phi_lr, "lambda0": lambda m: m.lambda0, "h_min": lambda m: m.h_min,
           "h_max": lambda m: m.h_max, "lrp_layers": lambda m: m.distribution.layers,
           "lrp_prior": lambda m: m.distribution.prior, "lrp_max_outside": lambda m: m.distribution.max_outside}
SECTION = re.compile(r"^#{2,3} .*\(grid `([^`]+)`")
REQUIRED = ("model.name", "train.epochs", "train.val_fraction", "grid.seeds")


def _paper_grids() -> list[str]:
    """The grids that reproduce a paper table or figure (they name it in `paper`)."""
    return sorted(name for name in list_grids() if load_grid(name).paper)


def _sections() -> dict[str, list[tuple[str, str, str]]]:
    """grid -> [(setting, key, augbench cell)] from the document's tables."""
    out: dict[str, list[tuple[str, str, str]]] = {}
    grid = None
    for line in DOC.read_text().splitlines():
        if line.startswith("#"):
            m = SECTION.match(line)
            grid = m.group(1) if m else None
            if grid is not None:
                assert grid not in out, f"two sections for grid {grid}"
                out[grid] = []
            continue
        if grid is None or not line.startswith("| ") or line.startswith("| Setting |"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == 6, f"{grid}: a row needs 6 cells: {line}"
        out[grid].append((cells[0], cells[1].strip("`"), cells[4]))
    return out


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


@cache
def _grid(name: str) -> tuple[Grid, tuple[PlannedRun, ...]]:
    grid = load_grid(name)
    return grid, tuple(grid.expand(seeds=[0]).runs)


def _derived(run: PlannedRun, name: str) -> Any:
    cfg = run.config
    assert cfg.method == "instaaug" and name in DERIVED, f"no derived value of {cfg.method} / {name}"
    num_classes, shape = SHAPES[cfg.benchmark]
    m = create_method("instaaug", MethodContext(num_classes, shape, frozenset({"crop", "rotation", "color"})),
                      **cfg.hparams)
    return DERIVED[name](m)


def _check(grid_name: str, setting: str, key: str, cell: str) -> None:
    grid, runs = _grid(grid_name)
    shown = [_value(v) for v in re.findall(r"`([^`]*)`", cell)]
    derived = "→" in cell
    assert len(shown) == (2 if derived else 1), f"{grid_name} {setting}: bad augbench cell {cell!r}"
    where = f"docs/recipes.md, grid {grid_name}, {setting} ({key})"
    if key == "grid.seeds":
        counts = {len(e.seeds) for e in grid.entries}
        assert counts == {shown[0]}, f"{where}: the grid runs {counts} seeds"
        return
    if " / " in key:
        labels, name = key.rsplit(" / ", 1)
        wanted = [label.strip() for label in labels.split(",")]
        chosen = [r for r in runs if r.label in wanted]
        missing = set(wanted) - {r.label for r in chosen}
        assert not missing, f"{where}: no runs labelled {sorted(missing)}"
        resolved = _distinct([r.config.hparams[name] for r in chosen])
    else:
        chosen = list(runs)
        resolved = _distinct([r.config.settings[key] for r in chosen])
    assert _same(resolved, shown[0]), f"{where}: the grid resolves {resolved!r}, the document says {shown[0]!r}"
    if derived:
        actual = _distinct([_derived(r, key.rsplit(" / ", 1)[1]) for r in chosen])
        assert _same(actual, shown[1]), f"{where}: InstaAug uses {actual!r}, the document says {shown[1]!r}"


def test_every_paper_grid_has_a_section_with_the_core_settings():
    sections = _sections()
    assert set(sections) == set(_paper_grids())
    for grid_name, rows in sections.items():
        keys = {key for _, key, _ in rows}
        required = REQUIRED if grid_name != "figure7_random_color" else REQUIRED[1:]  # a baseline's sweep
        assert not set(required) - keys, f"{grid_name}: no row for {sorted(set(required) - keys)}"
        _, runs = _grid(grid_name)
        insta = {r.label for r in runs if r.config.method == "instaaug"}
        with_lr = {label.strip() for _, key, _ in rows if key.endswith(" / lr")
                   for label in key.rsplit(" / ", 1)[0].split(",")}
        assert insta <= with_lr, f"{grid_name}: phi's learning rate of {sorted(insta - with_lr)} is not stated"


@pytest.mark.parametrize("grid_name", _paper_grids())
def test_the_documented_defaults_are_the_resolved_ones(grid_name):
    rows = _sections().get(grid_name, [])
    assert rows, f"docs/recipes.md has no section for grid {grid_name}"
    for setting, key, cell in rows:
        _check(grid_name, setting, key, cell)


NEWER = ("## The methods that followed the paper", "## The per-sample magnitude methods")


FOLDER = "## The folder benchmarks: InstaAug's defaults from a rule"


def _newer_rows(titles: tuple[str, ...] = NEWER) -> list[tuple[str, str, str]]:
    """(setting, key, augbench cell) of sections keyed by benchmark (default: the methods that followed the paper)."""
    lines = DOC.read_text().splitlines()
    rows = []
    for title in titles:
        start = next(i for i, line in enumerate(lines) if line.startswith(title))
        for line in lines[start + 1:]:
            if line.startswith("#"):
                break
            if line.startswith("| ") and not line.startswith("| Setting |"):
                cells = [c.strip() for c in line.strip().strip("|").split("|")]
                assert len(cells) == 5, f"{title}: a row needs 5 cells: {line}"
                rows.append((cells[0], cells[1].strip("`"), cells[3]))
    return rows


def test_the_newer_methods_documented_defaults_are_the_resolved_ones():
    rows = _newer_rows()
    assert {key.split(" / ")[1] for _, key, _ in rows} == {"flowinv", "madaug", "teachaugment", "entaugment",
                                                           "adaaugment", "sra"}
    for setting, key, cell in rows:
        benchmark, method, name = key.split(" / ")
        (shown,) = [_value(v) for v in re.findall(r"`([^`]*)`", cell)]
        resolved = resolve(benchmark, method).hparams[name]
        assert _same(resolved, shown), f"docs/recipes.md, {setting} ({key}): resolves {resolved!r}, says {shown!r}"


def test_the_folder_rule_s_documented_defaults_are_the_resolved_ones():
    """The folder benchmarks' InstaAug defaults, from the rule, as docs/recipes.md states them."""
    rows = _newer_rows((FOLDER,))
    assert {key.split(" / ")[0] for _, key, _ in rows} == {"imagefolder-rotation", "imagefolder-color",
                                                          "imagefolder-crop", "fashion-mnist-crop"}
    for setting, key, cell in rows:
        benchmark, method, name = key.split(" / ")
        (shown,) = [_value(v) for v in re.findall(r"`([^`]*)`", cell)]
        cfg = resolve(benchmark, "instaaug")
        resolved = cfg.settings[name] if method == "settings" else cfg.hparams[name]
        assert _same(resolved, shown), f"docs/recipes.md, {setting} ({key}): resolves {resolved!r}, says {shown!r}"
