"""`augbench demo` as a newcomer runs it: in a fresh clone, it writes outside the tracked tree and
says where, so `git status` stays clean; the committed results/ change only when named."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from augbench import demo

REPO = Path(__file__).resolve().parents[1]


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def _fresh_clone(dest: Path) -> Path:
    """A clone of this repository, with the working tree's uncommitted changes committed in it (so
    the code under test is the code here, and its `git status` starts clean)."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(REPO), str(dest)], check=True, capture_output=True)
    changed = _git("status", "--porcelain", "--untracked-files=all", cwd=REPO).splitlines()
    for line in changed:
        name = line[3:].split(" -> ")[-1].strip('"')
        src, dst = REPO / name, dest / name
        if src.is_file():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
        elif dst.exists() and not src.exists():
            dst.unlink()
    if _git("status", "--porcelain", cwd=dest).strip():
        _git("add", "-A", cwd=dest)
        _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "working tree", cwd=dest)
    assert _git("status", "--porcelain", cwd=dest) == ""
    return dest


def test_the_demo_writes_outside_the_tracked_tree_by_default():
    for defaults in (demo.QUICK, demo.FULL):
        for key in ("root", "out"):
            assert Path(defaults[key]).parts[0] == demo.DEMO_DIR
    assert f"/{demo.DEMO_DIR}/" in (REPO / ".gitignore").read_text().splitlines()


@pytest.mark.slow
def test_the_demo_in_a_fresh_clone_leaves_git_status_clean(tmp_path):
    clone = _fresh_clone(tmp_path / "clone")
    grid = tmp_path / "tiny.toml"  # outside the clone: the grid file itself must not dirty it
    grid.write_text('name = "tiny"\nseeds = 1\n[[runs]]\nbenchmark = "glyphs-rotation"\nmethod = "none"\n'
                    'settings = { "data.n_train" = 64, "data.n_test" = 32, "train.epochs" = 1, '
                    '"train.batch_size" = 16, "eval.tta_views" = 2 }\n')
    env = {**os.environ, "PYTHONPATH": str(clone), "AUGBENCH_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "augbench", "demo", "--grid", str(grid), "--seeds", "1",
                           "--max-parallel", "1"], cwd=clone, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    err = done.stderr.splitlines()
    where = f"{demo.DEMO_DIR}/results/"
    assert where in err[0] and where in err[-1] and "index.html" in err[-1]  # said at the start and the end
    assert (clone / demo.DEMO_DIR / "results" / "results.csv").is_file()
    assert (clone / demo.DEMO_DIR / "results" / "leaderboard" / "index.html").is_file()
    assert _git("status", "--porcelain", "--untracked-files=all", cwd=clone) == ""


def test_each_full_part_is_one_benchmark_with_its_own_none_baseline():
    """A part's tables compare against `none` in the same part (one commit), and no configuration
    is run by two parts but the baseline."""
    from augbench.sweep.grid import load_grid

    seen: dict[tuple[str, str, str], str] = {}
    for part, grid in demo.FULL_PARTS.items():
        runs = load_grid(grid).expand({}, seeds=range(demo.FULL["seeds"])).runs
        benchmarks = {r.config.benchmark for r in runs}
        assert len(benchmarks) == 1, f"{part}: {benchmarks}"
        assert {r.config.seed for r in runs if r.config.method == "none"} == set(range(demo.FULL["seeds"]))
        for r in runs:
            key = (r.config.benchmark, r.label, str(r.config.hparams))
            if r.config.method != "none":
                assert seen.setdefault(key, part) == part, f"{key} in parts {seen[key]} and {part}"


def test_full_parts_are_chosen_by_name_and_a_wrong_name_is_refused(capsys):
    from augbench.cli import main

    with pytest.raises(SystemExit):
        main(["demo", "--full", "crops"])
    err = capsys.readouterr().err
    assert "invalid choice: 'crops'" in err and "crop-learned" in err
    assert main(["demo", "--full", "--grid", "demo"]) == 2
    assert "--full runs its own grids" in capsys.readouterr().err
