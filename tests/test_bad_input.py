"""Bad input is one line in augbench's words: deep nesting in any TOML or JSON input, an output
path at a file, and torch files that do not load (never torch's advice to load them unsafely)."""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path

import pytest
import torch

from augbench.cli import main

DEEP = "[" * 5000 + "]" * 5000


def _one_line_error(capsys: pytest.CaptureFixture[str], fragment: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err[:2000]
    assert fragment in err, err
    return err


# --------------------------------------------------------------------------------- deep nesting
def test_a_grid_nested_thousands_deep_is_one_line(tmp_path, capsys):
    grid = tmp_path / "deep.toml"
    grid.write_text(f'benchmark = "glyphs-rotation"\nseeds = {DEEP}\n[[runs]]\nmethod = "none"\n')
    assert main(["sweep", "launch", str(grid), "--dry-run", "--root", str(tmp_path / "sweep")]) == 2
    _one_line_error(capsys, "not valid TOML (nested more than 64 levels deep)")


def test_a_list_value_nested_thousands_deep_is_one_line(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "glyphs-rotation", "--method", "none", "--out", str(out),
                 "--set", f"train.milestones={DEEP}"]) == 2
    _one_line_error(capsys, "nested more than 64 levels deep")
    assert not out.exists()


def test_deep_json_in_a_sweep_root_is_reported_and_skipped(tmp_path, capsys):
    root = tmp_path / "sweep"
    run = root / "runs" / "0123456789abcdef"
    run.mkdir(parents=True)
    (root / "manifest.jsonl").write_text('{"event": ' + DEEP + "}\n")
    (run / "config.json").write_text(DEEP)
    (run / "status.json").write_text(DEEP)
    (run / "records.jsonl").write_text('{"metrics": ' + DEEP + "}\n")
    assert main(["sweep", "status", str(root), "--no-scheduler"]) == 0
    out = capsys.readouterr()
    assert "unreadable manifest line" in out.out + out.err and "Traceback" not in out.err
    assert main(["collect", str(root)]) == 0
    assert "Traceback" not in capsys.readouterr().err


def test_json_just_below_the_interpreters_limit_is_refused_too():
    """900 levels parse in Python but break whatever walks them next: refused like any malformed file."""
    from augbench.safeload import NestingTooDeep, loads_json, loads_toml

    with pytest.raises(NestingTooDeep):
        loads_json("[" * 900 + "]" * 900)
    with pytest.raises(ValueError, match="nested more than 64"):
        loads_toml("a = " + "[" * 900 + "]" * 900)
    assert loads_json('{"a": [[1], {"b": 2}]}') == {"a": [[1], {"b": 2}]}


# --------------------------------------------------------------------------------- outputs at a file
@pytest.mark.parametrize("argv", [
    ["leaderboard", "{root}", "--out", "{file}"],
    ["leaderboard", "{root}", "--out", "{file}/site"],
    ["table", "{root}", "--table", "auto", "--out", "{file}"],
    ["plot", "{root}", "--figure", "all", "--out", "{file}"],
    ["collect", "{root}", "--out", "{file}/all.csv"],
    ["bench", "--methods", "none", "--out", "{file}/perf.csv"],
    ["bench", "--methods", "none", "--figure", "{file}/perf.png"],
    ["bench", "--ops", "--out", "{file}/ops.csv"],
    ["sweep", "launch", "figure5", "--dry-run", "--root", "{file}"],
    ["demo", "--root", "{file}"],
    ["demo", "--root", "{root}/runs", "--out", "{file}/results"],
    ["reproduce", "{root}", "--root", "{file}"],
    ["run", "glyphs-rotation", "--method", "none", "--out", "{file}/run"],
])
def test_an_output_at_a_file_is_one_line_before_any_work(tmp_path, argv, capsys):
    root, afile = tmp_path / "root", tmp_path / "afile"
    root.mkdir()
    afile.write_text("keep")
    argv = [a.format(root=root, file=afile) for a in argv]
    assert main(argv) == 2
    _one_line_error(capsys, "a file, not a folder; choose another --")
    assert afile.read_text() == "keep" and list(root.iterdir()) == []


# --------------------------------------------------------------------------------- torch files
class _Hostile:
    def __reduce__(self):
        return (os.system, ("echo never run",))


def _damaged(tmp_path: Path) -> dict[str, tuple[bytes, str]]:
    good = tmp_path / "good.pt"
    torch.save({"w": torch.ones(3), "step": 7}, good)
    data = good.read_bytes()
    hostile = tmp_path / "hostile.pt"
    torch.save({"x": _Hostile()}, hostile)
    return {
        "random bytes": (os.urandom(4096), "is not a file torch.save wrote"),
        "empty": (b"", "is empty"),
        "cut short": (data[:-17], "is cut short"),
        "corrupted": (data[:200] + bytes(100) + data[300:], "is damaged"),
        "a pickled object": (pickle.dumps(os.system, protocol=4), "holds Python objects"),
        "an object in a torch archive": (hostile.read_bytes(), "holds Python objects"),
    }


def test_a_damaged_checkpoint_is_described_in_augbench_words(tmp_path, recwarn):
    from augbench.train.checkpoint import load_latest

    for what, (data, fragment) in _damaged(tmp_path).items():
        latest, previous = tmp_path / "checkpoint.pt", tmp_path / "checkpoint.prev.pt"
        latest.write_bytes(data)
        torch.save({"step": 3}, previous)
        said: list[str] = []
        assert load_latest([latest, previous], warn=said.append) == {"step": 3}, what
        (line,) = said
        assert line.startswith(f"checkpoint.pt {fragment}") and line.endswith("resuming from checkpoint.prev.pt")
        assert "weights_only" not in line and "torch.load" not in line, line
    assert not [w for w in recwarn if "weights_only" in str(w.message)]


def test_weights_files_and_cache_files_are_described_in_augbench_words(tmp_path, caplog):
    from augbench.datasets.base import cache_path, cached
    from augbench.datasets.glyphs import make_glyphs
    from augbench.errors import DataError
    from augbench.models.pretrained import read_state_dict

    weights = tmp_path / "weights.pth"
    weights.write_bytes(os.urandom(4096))
    with pytest.raises(DataError) as info:
        read_state_dict(weights)
    assert str(info.value) == (f"cannot read weights file {weights}: weights.pth is not a file torch.save wrote "
                               "(unknown content)")
    key = {"n": 1}
    path = cache_path("test", key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(4096))
    with caplog.at_level(logging.WARNING, logger="augbench"):
        ds = cached("test", key, lambda: make_glyphs(n_train=8, n_test=4, image_size=8))
    assert len(ds.train.y) == 8
    (line,) = [r.getMessage() for r in caplog.records if "rebuilding cache file" in r.getMessage()]
    assert line.endswith(f"{path.name} is not a file torch.save wrote (unknown content)")
