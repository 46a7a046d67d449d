"""`augbench leaderboard`: the static site from collected runs: pages, links, provenance, determinism."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from augbench.cli import main
from augbench.results.collect import collect, write_frame
from augbench.results.leaderboard import build_site, collect_roots, leaderboard
from augbench.results.leaderboard.site import MARKER

GOLDEN_RUNS = Path(__file__).parent / "golden" / "runs"
LINK = re.compile(r'(?:href|src)="([^"]+)"')


def _quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    leaderboard([GOLDEN_RUNS], out, report=_quiet)
    return out


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_pages_for_every_benchmark_and_method(site):
    assert (site / "index.html").is_file() and (site / "assets" / "sort.js").is_file()
    index = (site / "index.html").read_text()
    for bench in ("glyphs-rotation", "rawfoot-color", "tinyimagenet-crop"):
        assert f'href="{bench}/index.html"' in index
    tin = (site / "tinyimagenet-crop" / "index.html").read_text()
    assert 'class="sortable" id="leaderboard"' in tin
    for page in ("none", "random-crop", "instaaug--lrp", "instaaug--input-free", "augerino", "adaaug"):
        assert f'href="{page}.html"' in tin and (site / "tinyimagenet-crop" / f"{page}.html").is_file()
    assert "<h2>Table 1: " in tin and "<h2>Table E.1: " in tin  # the paper's tables with our intervals
    assert "in CI" in tin and "66.02 ± 0.18" in tin  # paper number beside ours
    assert "figures/fig6-crops.png" in tin and "figures/E1-heatmap.png" in tin
    assert "figures/fig5-rotation.png" in (site / "glyphs-rotation" / "index.html").read_text()


def test_method_page_has_hyperparameters_runs_and_provenance(site):
    page = (site / "tinyimagenet-crop" / "random-crop.html").read_text()
    assert "scale_min=0.1 (best of 2 by validation)" in page
    assert "<dt>scale_min</dt><dd class=\"mono\">0.1</dd>" in page  # the chosen configuration's values
    frame = collect(GOLDEN_RUNS, report=_quiet, running_within=0)
    ids = frame[(frame["benchmark"] == "tinyimagenet-crop") & (frame["method"] == "random-crop")]["run_id"].unique()
    assert len(ids) == 4 and all(run_id in page for run_id in ids)  # every run, chosen or not
    env = page.split('id="environments"')[1]  # provenance per environment, not a column per run
    for label in ("fingerprint", "commit", "source dirty", "torch", "numpy", "BLAS", "oneDNN", "cuDNN", "threads"):
        assert f'<th scope="row">{label}</th>' in env, label
    assert '<a href="#environments">1</a>' in page
    assert "curves/random-crop.png" in page and (site / "tinyimagenet-crop" / "curves" / "random-crop.png").is_file()
    assert "figures/fig6-crops.png" in page  # the benchmark's figures on its method pages too
    failed = (site / "tinyimagenet-crop" / "augerino.html").read_text()
    assert "failed" in failed


def test_every_link_is_relative_and_resolves(site):
    for page in site.rglob("*.html"):
        text = page.read_text()
        assert "http://" not in text and "https://" not in text, page  # nothing from a CDN or a server
        for link in LINK.findall(text):
            if link.startswith("data:"):
                continue
            if link.startswith("#"):  # an anchor on the same page
                assert f'id="{link[1:]}"' in text, (page, link)
                continue
            assert not link.startswith("/") and "://" not in link, (page, link)
            assert (page.parent / link).resolve().is_file(), (page, link)


def test_rebuilding_changes_nothing_on_disk(site):
    before = {p: p.stat().st_mtime_ns for p in site.rglob("*") if p.is_file()}
    contents = _files(site)
    leaderboard([GOLDEN_RUNS], site, report=_quiet)
    assert _files(site) == contents
    assert {p: p.stat().st_mtime_ns for p in site.rglob("*") if p.is_file()} == before  # nothing rewritten


def test_stale_pages_are_removed_but_foreign_files_kept(tmp_path):
    frame, root = collect_roots([GOLDEN_RUNS], _quiet)
    out = tmp_path / "site"
    build_site(frame, root, out, report=_quiet, figures=False)
    (out / "notes.txt").write_text("mine")
    build_site(frame[frame["benchmark"] == "glyphs-rotation"], root, out, report=_quiet, figures=False)
    assert not (out / "tinyimagenet-crop").exists() or not any((out / "tinyimagenet-crop").rglob("*.html"))
    assert (out / "glyphs-rotation" / "index.html").is_file() and (out / "notes.txt").read_text() == "mine"
    assert "notes.txt" not in json.loads((out / MARKER).read_text())


def test_several_roots_and_collected_files(tmp_path):
    frame, common = collect_roots([GOLDEN_RUNS / "glyphs", GOLDEN_RUNS / "tin"], _quiet)
    assert common == GOLDEN_RUNS.resolve()
    assert set(frame["benchmark"]) == {"glyphs-rotation", "tinyimagenet-crop"}
    assert all(d.startswith(("glyphs/", "tin/")) for d in frame["run_dir"])
    twice, _ = collect_roots([GOLDEN_RUNS / "glyphs", GOLDEN_RUNS / "glyphs"], _quiet)
    assert twice["run_id"].nunique() == frame[frame["benchmark"] == "glyphs-rotation"]["run_id"].nunique()
    assert len(twice) == len(frame[frame["benchmark"] == "glyphs-rotation"])  # a run found twice counts once
    path = write_frame(collect(GOLDEN_RUNS / "raw", report=_quiet), tmp_path / "raw.parquet")
    from_file, _ = collect_roots([path], _quiet)
    assert set(from_file["benchmark"]) == {"rawfoot-color"}


def test_benchmark_page_shows_paired_comparisons_and_says_why_cells_are_empty(site):
    tin = (site / "tinyimagenet-crop" / "index.html").read_text()
    head = tin.split("</thead>")[0]
    assert "tta_acc (%) vs none (paired)" in head and "tta_acc (%) vs random-crop (paired)" in head
    row = tin.split('href="instaaug--lrp.html"')[1].split("</tr>")[0]
    assert '<span class="verdict better">better</span> <span class="nowrap">+10.83' in row and "P(better)" in row
    assert "not measured (no --bench)" in row and "none were passed" in tin  # throughput and memory: why empty
    assert 'id="comparisons"' in tin and "Seeds for 80% power" in tin
    assert "[0.00, 100.00]" not in tin.split('id="leaderboard"')[0]
    assert "<h2>Made by</h2>" in tin and "no fingerprint recorded" in tin


def test_index_ranks_methods_across_benchmarks(site):
    index = (site / "index.html").read_text()
    assert 'id="aggregate"' in index and "IQM of normalised scores" in index
    assert "too few for the Friedman test and a critical-difference diagram" in index  # 3 benchmarks
    assert 'id="improvement"' in index and "cd-diagram.png" not in index
    assert 'id="provenance"' in index and "Environment 1" in index


def test_a_critical_difference_diagram_with_enough_benchmarks(tmp_path):
    from test_results_helpers import write_run

    runs = tmp_path / "runs"
    for b in range(6):
        for seed in range(3):
            for k, method in enumerate(("none", "instaaug", "augerino", "teachaugment")):
                acc = 0.5 + 0.05 * k + 0.01 * ((b * 7 + seed * 3 + k) % 5)
                write_run(runs, f"b{b}-{method}-{seed}", benchmark=f"bench{b}", method=method, seed=seed,
                          test={"acc": acc})
    frame, root = collect_roots([runs], _quiet)
    build_site(frame, root, tmp_path / "site", report=_quiet, figures=False)
    index = (tmp_path / "site" / "index.html").read_text()
    assert "Friedman test over 6 benchmarks and 4 methods: p = " in index and "(the methods differ" in index
    assert 'src="cd-diagram.png"' in index and (tmp_path / "site" / "cd-diagram.png").stat().st_size > 5000
    ranks = index.split('id="aggregate"')[1].split("</table>")[0]
    assert ranks.index("teachaugment") < ranks.index("none")  # the best-scoring method first


def test_bench_measurements_fill_throughput_and_memory(tmp_path):
    bench = tmp_path / "bench.csv"
    pd.DataFrame([{"config": "embedded", "benchmark": "glyphs-rotation", "device": "cpu", "device_name": "AMD EPYC",
                   "method": "none", "status": "ok", "batch_size": 64, "step_ms": 100.0, "step_mem_mb": 40.2,
                   "hparams": "{}"}]).to_csv(bench, index=False)
    frame, root = collect_roots([GOLDEN_RUNS / "glyphs"], _quiet)
    build_site(frame, root, tmp_path / "site", [bench], report=_quiet, figures=False)
    row = (tmp_path / "site" / "glyphs-rotation" / "index.html").read_text().split('href="none.html"')[1]
    row = row.split("</tr>")[0]
    assert ">640<" in row and "40 MB" in row and "cpu AMD EPYC" in row and "CPU-h" in row
    page = (tmp_path / "site" / "glyphs-rotation" / "index.html").read_text()
    other = page.split('href="instaaug--uniform.html"')[1].split("</tr>")[0]
    assert other.count('<span class="missing">not measured</span>') == 2  # no bench row for it: said, not blank
    assert "(1 method(s) measured here" in page
    frame_tin, root_tin = collect_roots([GOLDEN_RUNS / "tin"], _quiet)
    build_site(frame_tin, root_tin, tmp_path / "site3", [bench], report=_quiet, figures=False)
    assert ("measured glyphs-rotation, not tinyimagenet-crop: `augbench bench --benchmark tinyimagenet-crop` "
            "measures it") in (tmp_path / "site3" / "tinyimagenet-crop" / "index.html").read_text()


def test_leaderboard_command(tmp_path, capsys):
    assert main(["leaderboard", str(GOLDEN_RUNS / "glyphs"), "--out", str(tmp_path / "lb")]) == 0
    assert "open " in capsys.readouterr().err and (tmp_path / "lb" / "glyphs-rotation" / "index.html").is_file()


def test_the_parser_does_not_load_jinja_or_pandas():
    code = ("import sys; from augbench.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('jinja2', 'pandas', 'pyarrow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
