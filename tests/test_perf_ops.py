"""`augbench bench --ops`: every op beside kornia (when installed) and torchvision's per-image loop."""

from __future__ import annotations

import pandas as pd
import pytest

from augbench.cli import main
from augbench.perf import ops

ARGS = ["bench", "--ops", "--device", "cpu", "--sizes", "16x4", "--reps", "2", "--min-time", "0", "-q"]


def test_ops_table_has_every_op_and_library(tmp_path, capsys):
    out = tmp_path / "ops.csv"
    assert main([*ARGS, "--out", str(out)]) == 0
    df = pd.read_csv(out, keep_default_na=False, na_values=[""])
    libraries = ["augbench", "torchvision"] + (["kornia"] if ops.kornia_version() else [])
    for case in ops.CASES:
        rows = df[df["op"] == case.name]
        expected = {lib for lib in libraries if lib != "kornia" or case.kornia is not None}
        assert set(rows["library"]) == expected, case.name
        assert (rows["img_s"] > 0).all() and (rows["img_s_min"] <= rows["img_s"]).all()
        assert all(len(r.split()) == 2 for r in rows["rounds_ms"])  # one figure per round
    assert set(df["side"]) == {16} and set(df["batch"]) == {4} and set(df["clock"]) == {"process"}
    printed = capsys.readouterr().out
    assert all(case.name in printed for case in ops.CASES) and "x torchvision" in printed
    assert ("kornia not installed" in printed) == (ops.kornia_version() is None)


def test_without_kornia_the_table_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(ops, "kornia_version", lambda: None)
    assert main([*ARGS, "--methods", "rotate", "--out", str(tmp_path / "ops.csv")]) == 0
    printed = capsys.readouterr().out
    assert "kornia is not installed" in printed and "pip install 'augbench[bench]'" in printed
    assert set(pd.read_csv(tmp_path / "ops.csv")["library"]) == {"augbench", "torchvision"}


@pytest.mark.parametrize("extra,message", [(["--sizes", "16"], "SIDExBATCH"), (["--methods", "blur"], "unknown op"),
                                           (["--sizes", "4x2"], "side of at least 8")])
def test_bad_ops_arguments_are_one_line_errors(tmp_path, capsys, extra, message):
    assert main([*ARGS, *extra, "--out", str(tmp_path / "ops.csv")]) == 2
    assert message in capsys.readouterr().err


def test_paired_ratios_are_per_round():
    df = pd.DataFrame({"op": ["a", "a"], "side": [16, 16], "library": ["augbench", "kornia"],
                       "rounds_ms": ["1 2 4", "2 2 2"]})
    assert ops.paired_ratio(df, "a", 16, "kornia") == (1.0, 0.5, 2.0)  # 2/1, 2/2, 2/4: median 1.0
