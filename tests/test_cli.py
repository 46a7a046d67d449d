"""The command line: list, run, a method defined here registered and run, and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from torch import Tensor, nn

from augbench.cli import main
from augbench.hparams import HParam
from augbench.methods import AugmentationMethod, StepContext, Views, register_method, repeat_views
from augbench.transforms.geometry import rotate


@register_method("test-learned-rotation")
class LearnedRotation(AugmentationMethod):
    """A global learned rotation width, defined in a test file: the README's example, end to end."""

    families = frozenset({"rotation"})
    hparams = {"lam": HParam(0.05, float, low=0.0), "lr": HParam(0.05, float, low=0.0)}

    def __init__(self, ctx, **hp):
        super().__init__(ctx, **hp)
        self.raw = nn.Parameter(torch.zeros(()))
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))

    def sample(self, x: Tensor, ctx: StepContext, n_views: int = 1) -> Views:
        self.calls += 1
        x = repeat_views(x, n_views)
        width = nn.functional.softplus(self.raw)
        angle = (torch.rand(x.shape[0], device=x.device) - 0.5) * width
        return Views(rotate(x, angle), n_views)

    def objective(self, per_sample_loss, views):
        width = nn.functional.softplus(self.raw)
        return per_sample_loss.mean() - self.hp["lam"] * width, {"width": width.detach()}

    def make_optimizer(self):
        return torch.optim.Adam(self.parameters(), lr=self.hp["lr"])


def _sets(d):
    out = []
    for k, v in d.items():
        out += ["--set", f"{k}={v}"]
    return out


def test_method_defined_in_a_test_runs_end_to_end(tmp_path, tiny, capsys):
    out = tmp_path / "run"
    rc = main(["run", "glyphs-rotation", "--method", "test-learned-rotation", "--out", str(out),
               "--set", "lam=0.5", *_sets(tiny)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "tta_acc" in printed and "best_epoch" in printed
    weights = torch.load(out / "final_weights.pt", weights_only=True)
    assert weights["method"]["raw"].item() != 0.0  # the method's optimizer stepped
    assert weights["method"]["calls"].item() > 0


def test_list_is_short_and_verbose_shows_hyperparameters(capsys):
    assert main(["list"]) == 0
    short = capsys.readouterr().out
    assert "random-crop" in short and "glyphs-rotation" in short and "scale_min" not in short
    assert len(short.splitlines()) < 40  # a line per method and benchmark
    assert main(["list", "-v"]) == 0
    out = capsys.readouterr().out
    assert "random-crop" in out and "scale_min" in out and "glyphs-rotation" in out and "datasets:" in out


def test_version(capsys):
    from augbench import __version__

    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"augbench {__version__}"


@pytest.mark.parametrize("argv,fragment", [
    (["run", "no-such-bench", "--method", "none"], "unknown benchmark 'no-such-bench'; valid: "),
    (["run", "glyphs-rotation", "--method", "nope"], "unknown method 'nope' (did you mean 'none'?); valid: "),
    (["run", "glyphs-rotaton", "--method", "none"],
     "unknown benchmark 'glyphs-rotaton' (did you mean 'glyphs-rotation'?)"),
    (["run", "glyphs-rotation", "--method", "none", "--set", "train.epoch=3"], "unknown setting 'train.epoch'"),
    (["run", "glyphs-rotation", "--method", "none", "--set", "train.epochs=-1"], "below the minimum"),
    (["run", "glyphs-rotation", "--method", "none", "--set", "train.epochs=abc"], "expected int"),
    (["run", "glyphs-rotation", "--method", "random-crop"], "does not support the 'rotation' family"),
    (["run", "glyphs-rotation", "--method", "none", "--set", "oops"], "--set expects KEY=VALUE"),
])
def test_errors_are_one_line_with_exit_code_2(argv, fragment, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_unknown_method_error_lists_valid_names(capsys):
    main(["run", "glyphs-rotation", "--method", "nope"])
    err = capsys.readouterr().err
    assert "none" in err and "random-crop" in err


def _tiny_args(tiny: dict) -> list[str]:
    return [a for k, v in tiny.items() if k != "run.progress" for a in ("--set", f"{k}={v}")]


@pytest.mark.parametrize("extra,fragment", [
    (["--device", "tpu"], "run.device 'tpu': expected auto, cpu, cuda, cuda:N or mps"),
    (["--set", "model.name=foo"], "unknown model 'foo'"),
    (["--set", "train.lr=nan"], "train.lr: nan is not a finite number"),
    (["--set", "train.lr=inf"], "train.lr: inf is not a finite number"),
])
def test_a_refused_configuration_is_one_line_and_leaves_nothing_on_disk(extra, fragment, tmp_path, tiny, capsys):
    out = tmp_path / "run"
    assert main(["run", "glyphs-rotation", "--method", "none", "--out", str(out), *_tiny_args(tiny), *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def test_cuda_without_a_gpu_is_refused_in_one_line(tmp_path, tiny, capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    out = tmp_path / "run"
    assert main(["run", "glyphs-rotation", "--method", "none", "--out", str(out), "--device", "cuda",
                 *_tiny_args(tiny)]) == 2
    assert "no CUDA GPU is visible" in capsys.readouterr().err and not out.exists()


def test_method_cross_checks_and_bad_data_roots_leave_nothing_on_disk(tmp_path, tiny, capsys):
    out = tmp_path / "run"
    assert main(["run", "clutter-crop", "--method", "random-crop", "--out", str(out), *_tiny_args(tiny),
                 "--set", "scale_min=0.9", "--set", "scale_max=0.5"]) == 2
    assert "scale_min/ratio_min must not exceed" in capsys.readouterr().err and not out.exists()
    assert main(["run", "tinyimagenet-crop", "--method", "none", "--out", str(out),
                 "--set", f"data.root={tmp_path / 'nowhere'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nowhere" in err and not out.exists()


def test_out_at_or_under_a_regular_file_is_refused(tmp_path, tiny, capsys):
    afile = tmp_path / "file"
    afile.write_text("x")
    for out, fragment in ((afile, "is a file, not a folder"), (afile / "run", f"lies under {afile}")):
        assert main(["run", "glyphs-rotation", "--method", "none", "--out", str(out), *_tiny_args(tiny)]) == 2
        err = capsys.readouterr().err.strip()
        assert fragment in err and len(err.splitlines()) == 1
    assert afile.read_text() == "x"


def test_a_diverging_run_fails_with_the_step(tmp_path, tiny, capsys):
    out = tmp_path / "run"
    assert main(["run", "glyphs-rotation", "--method", "none", "--out", str(out), *_tiny_args(tiny),
                 "--set", "train.lr=1e12", "--set", "train.epochs=3"]) == 2
    err = capsys.readouterr().err
    assert "the training loss is" in err and "at step" in err and "Traceback" not in err
    status = json.loads((out / "status.json").read_text())
    assert status["state"] == "failed" and status["reason"].startswith("TrainingDiverged: the training loss is")


def test_a_rerun_of_a_finished_run_says_already_done(tmp_path, tiny, capsys):
    out = tmp_path / "run"
    args = ["run", "glyphs-rotation", "--method", "none", "--out", str(out), *_tiny_args(tiny)]
    assert main(args) == 0
    first = capsys.readouterr().err
    assert "  data     glyphs-rotation:" in first and "train /" in first and "threads" in first
    assert "  numbers  bit-identical for the same code on the same machine type" in first  # one line, as it is
    assert "elsewhere equal within the seed spread" in first.split("  numbers  ")[1].splitlines()[0]
    versions = json.loads((out / "config.json").read_text())["versions"]
    assert versions["fingerprint"] and versions["source_sha256"] and versions["blas"] and "numpy" in versions
    assert main(args) == 0
    assert f"already done in {out}" in capsys.readouterr().err


def test_the_parser_imports_no_heavy_library():
    """`augbench --help` must answer at once: torch, pandas and matplotlib load only in commands that use them."""
    code = ("import sys; from augbench.cli import build_parser; build_parser(); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'pandas', 'matplotlib', 'seaborn', "
            "'numpy', 'submitit'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
