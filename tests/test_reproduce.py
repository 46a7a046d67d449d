"""`augbench reproduce`: recorded runs of a tiny grid rerun into a scratch root and compared metric by metric."""

from __future__ import annotations

import pandas as pd
import pytest

from augbench.cli import main
from augbench.reproduce import choose
from augbench.results.collect import collect, write_frame

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """Two seeds of `none` and one of `random-rotation` on a tiny glyphs-rotation, collected to a CSV."""
    from conftest import TINY

    root = tmp_path_factory.mktemp("recorded")
    sets = [a for k, v in TINY.items() if k != "run.progress" for a in ("--set", f"{k}={v}")]
    for method, seed in (("none", 0), ("none", 1), ("random-rotation", 0)):
        assert main(["run", "glyphs-rotation", "--method", method, "--seed", str(seed), "--out",
                     str(root / "runs" / f"{method}-{seed}"), *sets]) == 0
    table = write_frame(collect(root / "runs", report=lambda _: None), root / "results.csv")
    return root, table


def test_reruns_of_recorded_runs_agree_on_this_machine(recorded, tmp_path, capsys):
    root, table = recorded
    assert main(["reproduce", str(table), "--runs", "2", "--root", str(tmp_path / "scratch")]) == 0
    out = capsys.readouterr().out
    assert "reproducing 2 recorded run(s) (2 of 3: the first in order of" in out and str(tmp_path / "scratch") in out
    assert "same machine type and fingerprint: the numbers should be bit-identical" in out
    assert "OUTSIDE" not in out and "acc" in out and "identical" in out
    assert "every metric within the recorded seed spread" in out
    assert len(list((tmp_path / "scratch").iterdir())) == 2
    assert not (root / "runs" / "none-0" / "scratch").exists()  # nothing written next to the recorded runs


def test_a_difference_outside_the_seed_spread_exits_1(recorded, tmp_path, capsys):
    root, table = recorded
    frame = pd.read_csv(table)
    test = (frame["split"] == "test") & (frame["method"] == "none") & (frame["seed"] == 0)
    frame.loc[test, "acc"] = frame.loc[test, "acc"] - 0.5  # 50 points off: far outside two seeds' spread
    frame.loc[frame["method"] == "none", ["device_name", "fingerprint"]] = ["Another CPU", "0123456789abcdef"]
    tampered = tmp_path / "tampered.csv"
    frame.to_csv(tampered, index=False)
    assert main(["reproduce", str(tampered), "--runs", "1", "--root", str(tmp_path / "scratch")]) == 1
    out = capsys.readouterr().out
    assert "recorded on cpu / Another CPU" in out and "the machine type differs from the recorded one" in out
    assert "OUTSIDE spread" in out and "1 metric(s) differ by more than the recorded seed spread" in out


def test_run_directories_are_rerun_from_their_config_and_never_overwritten(recorded, tmp_path, capsys):
    root, _ = recorded
    assert main(["reproduce", str(root / "runs"), "--runs", "1", "--root", str(root / "runs" / "x")]) == 2
    assert "overlaps the recorded runs" in capsys.readouterr().err
    assert main(["reproduce", str(root / "runs" / "random-rotation-0"), "--root", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "glyphs-rotation / random-rotation / seed 0" in out and "all of them" in out


def test_the_choice_of_runs_is_deterministic_and_spread_over_benchmarks():
    done = pd.DataFrame({"benchmark": ["b", "a", "a", "b", "a"], "method": ["m", "m", "n", "m", "m"],
                         "variant": [""] * 5, "seed": [0, 1, 0, 1, 0], "run_id": list("vwxyz")})
    # sorted: a/m/0 z, a/m/1 w, a/n/0 x, b/m/0 v, b/m/1 y; taken a, b, a, ...
    assert list(choose(done, 3)["run_id"]) == ["z", "w", "v"]
    picked = choose(done, 2)
    assert set(picked["benchmark"]) == {"a", "b"}  # one from each benchmark before a second from either
    assert choose(done, 2).equals(choose(done.sample(frac=1, random_state=1), 2))

