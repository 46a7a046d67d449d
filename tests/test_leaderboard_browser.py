"""The leaderboard in a real browser: headless Chromium opens the site from file:// and checks it.

Every page renders without console errors, every image loads, nothing scrolls sideways at
1400 px (the page, or any table in its box), a sortable table sorts when a header is clicked,
and screenshots are saved: full pages of the index, each benchmark and a method page of a site
built from the golden runs (into $AUGBENCH_SCREENSHOTS when set, else tmp_path), and the
committed demo leaderboard (results/leaderboard/), which is also copied to $AUGBENCH_SCREENSHOT
when set (the README's picture, results/leaderboard.png).
Chromium is driven over the DevTools protocol on a pipe (tests/cdp_browser.py): no
chromedriver, no network. Skipped, saying why, where no Chromium is installed (CI installs
Debian's `chromium`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from cdp_browser import Browser, check_site, find_chromium

from augbench.results.leaderboard import leaderboard

GOLDEN_RUNS = Path(__file__).parent / "golden" / "runs"
COMMITTED = Path(__file__).resolve().parents[1] / "results" / "leaderboard"
CHROMIUM = find_chromium()

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on PATH (apt-get install chromium; "
                                                          "or set $CHROMIUM): the browser test needs one")]

COLUMN = """(() => { const t = document.querySelector('#leaderboard');
  const i = Array.from(t.tHead.rows[0].cells).findIndex(th => th.textContent.trim().startsWith(%r));
  return Array.from(t.tBodies[0].rows).map(r => r.cells[i].getAttribute('data-sort')); })()"""
CLICK = """(() => { const t = document.querySelector('#leaderboard');
  Array.from(t.tHead.rows[0].cells).find(th => th.textContent.trim().startsWith(%r)).click(); return true; })()"""


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("browser-site")
    leaderboard([GOLDEN_RUNS], out, report=lambda _: None)
    return out


def test_every_page_renders_without_errors_and_every_image_loads(site, tmp_path):
    shots = Path(os.environ.get("AUGBENCH_SCREENSHOTS") or tmp_path / "shots")
    report = check_site(site, tmp_path / "leaderboard.png", CHROMIUM, shots=shots)
    assert report["pages"] >= 15 and report["images"] > 20
    assert report["errors"] == {} and report["broken_images"] == {}
    assert report["overflow"] == {}, "pages that scroll sideways at 1400 px"
    shot = Path(report["screenshot"])
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
    assert len(report["shots"]) == 1 + 3 + 3 and all(Path(p).stat().st_size > 10_000 for p in report["shots"])


def test_the_table_sorts_when_a_header_is_clicked(site):
    with Browser(CHROMIUM) as b:
        assert b.open((site / "tinyimagenet-crop" / "index.html").as_uri()) == []
        before = b.evaluate(COLUMN % "tta_acc")
        b.evaluate(CLICK % "tta_acc")
        up = b.evaluate(COLUMN % "tta_acc")
        b.evaluate(CLICK % "tta_acc")
        down = b.evaluate(COLUMN % "tta_acc")
        numbers = sorted(float(v) for v in before if v)
        assert [float(v) for v in up if v] == numbers and [float(v) for v in down if v] == numbers[::-1]
        assert up[-1] == "" and down[-1] == ""  # missing values last either way
        assert b.evaluate("document.querySelector('#leaderboard th[aria-sort]').getAttribute('aria-sort')") == \
            "descending"
        b.evaluate(CLICK % "Method")
        names = b.evaluate("Array.from(document.querySelectorAll('#leaderboard tbody tr td:first-child a'))"
                           ".map(a => a.textContent)")
        assert names == sorted(names, key=str.lower)
        assert b.errors_since(0) == []


@pytest.mark.skipif(not (COMMITTED / "index.html").is_file(), reason="no committed leaderboard under results/")
def test_the_committed_leaderboard_renders(tmp_path):
    report = check_site(COMMITTED, tmp_path / "leaderboard.png", CHROMIUM)
    assert report["errors"] == {} and report["broken_images"] == {}
    assert report["overflow"] == {}, f"committed pages that scroll sideways at 1400 px: {sorted(report['overflow'])}"
    target = os.environ.get("AUGBENCH_SCREENSHOT")
    if target:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(report["screenshot"], target)
