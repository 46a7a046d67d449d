"""Every concrete `augbench` command README shows runs: resolved with --dry-run where it would train
or submit, on the golden runs where it reads results (the demo and training itself are covered end to
end by tests/test_results_cli.py and tests/test_runs.py)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from augbench.cli import main

REPO = Path(__file__).resolve().parents[1]
GOLDEN_RUNS = Path(__file__).parent / "golden" / "runs"


def readme_commands() -> list[list[str]]:
    """The indented `augbench ...` lines of README (continuations joined), without synopsis lines."""
    lines = (REPO / "README.md").read_text().splitlines()
    out, i = [], 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("    augbench "):
            text = line.strip()
            while text.endswith("\\") and i + 1 < len(lines):
                i += 1
                text = text[:-1] + " " + lines[i].strip()
            words = shlex.split(text.split("  #")[0], comments=True)
            synopsis = any(w.startswith("[") or w.isupper() or "|" in w for w in words)
            if not synopsis:
                out.append(words[1:])
        i += 1
    return out


COMMANDS = readme_commands()


def test_readme_shows_concrete_commands():
    verbs = {c[0] for c in COMMANDS}
    assert {"run", "sweep", "table", "plot", "leaderboard", "demo"} <= verbs


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(c)[:60] for c in COMMANDS])
def test_readme_command_runs(argv, tmp_path, capsys, monkeypatch):
    argv = list(argv)
    if argv == ["--version"]:
        with pytest.raises(SystemExit) as done:
            main(argv)
        assert done.value.code == 0 and capsys.readouterr().out.startswith("augbench ")
        return
    if argv[0] == "demo":  # the demo itself runs end to end in tests/test_results_cli.py (a small grid)
        import augbench.demo
        from augbench.sweep.grid import load_grid

        calls = []  # one per grid: the quick demo's, or each --full part's
        monkeypatch.setattr(augbench.demo, "run_demo", lambda root, out, par, seeds, sets, grid: calls.append(dict(
            runs=len(load_grid(grid).expand(sets, seeds=range(seeds)).runs), root=Path(root), out=Path(out))) or 0)
        assert main(argv) == 0, capsys.readouterr().err
        assert calls and all(c["runs"] > 0 and c["root"].parts[0] == augbench.demo.DEMO_DIR for c in calls)
        named = argv[argv.index("--out") + 1] if "--out" in argv else None  # the maintainer's regeneration
        for c in calls:  # --full's parts write OUT/PART
            assert (c["out"] == Path(named) or c["out"].parent == Path(named)) if named else \
                c["out"].parts[0] == augbench.demo.DEMO_DIR
        if "--full" in argv:
            after = argv[argv.index("--full") + 1:]
            named_parts = after[:next((i for i, a in enumerate(after) if a.startswith("-")), len(after))]
            assert [c["out"].name for c in calls] == list(named_parts or augbench.demo.FULL_PARTS)
        return
    if argv[0] == "run":
        argv += ["--dry-run", "--out", str(tmp_path / "run")]
    elif argv[:2] == ["sweep", "launch"]:
        at = argv.index("--root")
        argv[at + 1] = str(tmp_path / "sweep")
        argv += ["--dry-run"]
    elif argv[0] == "reproduce":  # reruns train: tests/test_reproduce.py does; here the recorded runs resolve
        argv[1] = str(REPO / argv[1])
        argv += ["--dry-run"]
    elif argv[:2] == ["sweep", "status"]:
        argv[2] = str(tmp_path)
    else:  # commands that read results: on the golden runs, writing under tmp_path
        argv[1] = str(GOLDEN_RUNS)
        if "--out" in argv:
            argv[argv.index("--out") + 1] = str(tmp_path / "out")
    assert main(argv) == 0, capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # a dry run writes nothing


def test_ci_runs_readmes_test_command_in_a_scratch_folder_of_its_own():
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    command = ci[ci.index("# README's test command (keep identical):") + 1]
    assert f"    {command}" in (REPO / "README.md").read_text().splitlines()
    assert "mktemp -d" in "\n".join(ci) and "/tmp/augbench-ci" not in "\n".join(ci)
    assert any(line.startswith("scripts/wheel_smoke.sh") for line in ci)  # the wheel, installed, after the tests
