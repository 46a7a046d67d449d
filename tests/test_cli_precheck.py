"""A misspelt name or `--set` key fails from the catalog, before torch loads, with the full validation's message."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from augbench.catalog_file import committed
from augbench.sweep.grid import list_grids, load_grid

GRID = """benchmark = "clutter-crop"
seeds = 2
[[runs]]
method = "instaaug"
hparams = { variant = ["lrp", "unifrm"] }
"""


def _cases(tmp_path: Path) -> list[list[str]]:
    grid = tmp_path / "typo.toml"
    grid.write_text(GRID)
    root = str(tmp_path / "sweep")
    run = ["run", "glyphs-rotation", "--method", "instaaug", "--out", str(tmp_path / "run")]
    return [
        [*run, "--set", "h_mn=3"],  # a misspelt hyperparameter
        [*run, "--set", "train.epoch=3"],  # a misspelt setting
        [*run, "--set", "h_min"],  # no '='
        [*run, "--set", "variant=lrpp"],  # an unknown variant
        [*run, "--set", "instaug:h_min=3"],  # another method's hyperparameter
        ["run", "glyphs-rotation", "--method", "instaug"],
        ["run", "glyphs-rotaton", "--method", "instaaug"],
        ["sweep", "launch", str(grid), "--dry-run", "--root", root],
        ["sweep", "launch", "figure5", "--dry-run", "--root", root, "--set", "h_mn=2"],
        ["sweep", "launch", "figure5", "--dry-run", "--root", root, "--set", "train.epoch=2"],
        ["demo", "--root", root, "--out", str(tmp_path / "results"), "--set", "train.epoch=1"],
        ["demo", "--full", "--root", root, "--out", str(tmp_path / "results"), "--set", "train.epoch=1"],
        ["bench", "--methods", "instaug", "--out", str(tmp_path / "perf.csv")],
        ["bench", "--benchmark", "glyphs-rotaion", "--out", str(tmp_path / "perf.csv")],
    ]


def _in_a_fresh_process(cases: list[list[str]], registries: bool = False) -> list[dict]:
    """Each command's exit status and stderr in a process that starts as `augbench` does, and whether
    torch was imported by the time it answered. With `registries`, the method and benchmark
    registries are loaded first: the full validation answers (a plain process, unlike this one,
    holds no method a test registered)."""
    code = ("import contextlib, io, json, sys\nfrom augbench.cli import main\nout = []\n"
            + ("import augbench.benchmarks, augbench.methods\n" if registries else "")
            + f"for argv in {cases!r}:\n"
            "    err = io.StringIO()\n"
            "    with contextlib.redirect_stderr(err):\n"
            "        rc = main(argv)\n"
            "    out.append({'rc': rc, 'err': err.getvalue(), 'torch': 'torch' in sys.modules})\n"
            "print(json.dumps(out))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_name_and_syntax_errors_come_from_the_catalog_before_torch(tmp_path):
    cases = _cases(tmp_path)
    answers = _in_a_fresh_process(cases)
    full = _in_a_fresh_process(cases, registries=True)
    for argv, got, expected in zip(cases, answers, full):
        assert expected["rc"] == 2 and expected["torch"], argv  # the registries answered there
        assert got["rc"] == 2 and got["err"] == expected["err"], argv
        assert len(got["err"].strip().splitlines()) == 1, argv
        assert not got["torch"], f"torch was imported before {argv} was refused"
    hints = [a["err"] for a in answers if "did you mean" in a["err"]]
    assert len(hints) == len(cases) - 3  # all but the missing '=', the other method's name and the grid's --set
    assert not (tmp_path / "run").exists() and not (tmp_path / "sweep").exists()


def test_the_catalog_accepts_valid_names_and_every_shipped_grid():
    from augbench.precheck import CatalogNames

    names = CatalogNames(committed() or {})
    names.check_run("glyphs-rotation", "instaaug", {"h_min": "3", "variant": "uniform", "instaaug:lr": "0.1",
                                                    "method.h_max": "4", "train.epochs": "2"})
    for grid in list_grids():
        names.check_grid(load_grid(grid), {"train.epochs": "2"}, None)
