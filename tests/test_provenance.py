"""Provenance: what a run records about the code and machine that made it, the committed results'
provenance, and README's quoted figures against the committed results files."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pandas as pd
import pytest

from augbench import provenance
from augbench.results.claims import check_text, claims
from augbench.results.collect import collect, write_frame
from augbench.results.schema import read_frame

REPO = Path(__file__).resolve().parents[1]
GOLDEN_RUNS = Path(__file__).parent / "golden" / "runs"
COMMITTED = sorted(p for p in (REPO / "results").rglob("*") if p.name in ("results.csv", "results.parquet"))


def test_versions_record_code_machine_and_math_libraries():
    v = provenance.versions("cpu")
    for key in ("git_commit", "git_dirty", "source_sha256", "torch", "torchvision", "numpy", "device_name", "blas",
                "lapack", "onednn", "mkl", "cpu_capability", "cudnn", "deterministic", "threads", "fingerprint"):
        assert key in v, key
    assert v["device"] == "cpu" and v["cudnn"] is None and len(v["source_sha256"]) == 64
    assert v["fingerprint"] == provenance.fingerprint(v) == provenance.fingerprint(provenance.versions("cpu"))
    assert provenance.fingerprint({**v, "threads": v["threads"] + 1}) != v["fingerprint"]  # threads decide numbers
    assert provenance.fingerprint({**v, "platform": "another kernel"}) == v["fingerprint"]
    assert v["device_name"] in provenance.machine(v)


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=cwd, check=True,
                   capture_output=True)


def test_the_dirty_flag_is_about_the_package_source_only(tmp_path, monkeypatch):
    pkg, results = tmp_path / "augbench", tmp_path / "results"
    pkg.mkdir()
    results.mkdir()
    (pkg / "a.py").write_text("x = 1\n")
    (results / "results.csv").write_text("a\n")
    (tmp_path / ".gitignore").write_text("__pycache__/\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "init")
    monkeypatch.setattr(provenance, "PACKAGE", pkg)
    assert provenance.git_dirty() is False and provenance.git_commit()
    (results / "results.csv").write_text("b\n")  # regenerated results do not make the code dirty
    (pkg / "__pycache__").mkdir()
    (pkg / "__pycache__" / "a.pyc").write_bytes(b"\0")
    assert provenance.git_dirty() is False
    (pkg / "new.py").write_text("y = 2\n")  # an untracked module would be discovered: dirty
    assert provenance.git_dirty() is True
    (pkg / "new.py").unlink()
    (pkg / "a.py").write_text("x = 2\n")
    assert provenance.git_dirty() is True
    monkeypatch.setattr(provenance, "PACKAGE", tmp_path.parent)  # not a checkout
    assert provenance.git_dirty() is None or provenance.git_dirty() is False


def test_collected_tables_carry_the_fingerprint(tmp_path):
    frame = collect(GOLDEN_RUNS, report=lambda _: None, running_within=0)
    for col in ("source_sha256", "fingerprint", "numpy_version", "blas", "cpu_capability", "deterministic"):
        assert col in frame.columns, col
    path = write_frame(frame, tmp_path / "all.csv")
    assert list(read_frame(path).columns) == list(frame.columns)


@pytest.mark.parametrize("path", COMMITTED, ids=[p.relative_to(REPO).as_posix() for p in COMMITTED])
def test_committed_results_were_made_from_a_clean_commit(path):
    """Every run behind a committed results table names its commit, and that commit's package source
    had no uncommitted change (regenerate results from a clean commit when this fails)."""
    runs = read_frame(path, report=lambda _: None).drop_duplicates("run_id")
    assert not runs.empty
    missing = runs[runs["git_commit"].isna()]
    assert missing.empty, f"{len(missing)} runs of {path.name} record no commit"
    dirty = runs[runs["git_dirty"].fillna(True).astype(bool)]
    commits = sorted({str(c)[:12] for c in dirty["git_commit"]})
    assert dirty.empty, (f"{len(dirty)} of {len(runs)} runs behind {path.relative_to(REPO)} were made from a dirty "
                         f"tree (commits {', '.join(commits)}): regenerate them from a clean commit")
    unfingerprinted = runs[runs["fingerprint"].isna()]
    assert unfingerprinted.empty, f"{len(unfingerprinted)} runs record no fingerprint: regenerate them"


def test_committed_results_exist():
    assert COMMITTED, "no committed results.csv under results/"


def test_readme_figures_match_the_committed_results():
    text = (REPO / "README.md").read_text()
    assert len(claims(text)) >= 9  # the quoted demo figures are marked (see augbench/results/claims.py)
    assert check_text(text, REPO) == []


def test_a_claim_that_disagrees_with_its_file_is_reported(tmp_path):
    path = write_frame(collect(GOLDEN_RUNS / "glyphs", report=lambda _: None, running_within=0),
                       tmp_path / "results.csv")
    q = "results.csv glyphs-rotation"
    good = (f"covers <!--= {q} instaaug/uniform coverage mean -->82.5% (seed 0: "
            f"<!--= {q} instaaug/uniform coverage seed=0 -->80%), "
            f"<!--= {q} instaaug/uniform coverage verdict:random-rotation -->better than random rotation, "
            f"<!--= {q} instaaug/uniform coverage diff:random-rotation -->+32.5 points")
    assert len(claims(good)) == 4 and check_text(good, tmp_path) == [], check_text(good, tmp_path)
    bad = good.replace("82.5%", "79%").replace("-->better", "-->worse")
    problems = check_text(bad, tmp_path)
    assert len(problems) == 2 and "says 79, " in problems[0] and "says 'worse'" in problems[1]
    assert "no row 'flowinv'" in check_text(f"<!--= {q} flowinv coverage mean -->5", tmp_path)[0]
    assert pd.read_csv(path)["run_id"].nunique() == 6
