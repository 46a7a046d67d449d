"""Data parallelism: two gloo processes compute what one process computes on the same global batch."""

from __future__ import annotations

import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp
from test_streaming import make_tree
from torch import nn

from augbench import distenv
from augbench.device import process_device
from augbench.distenv import DistEnv, launch_env
from augbench.errors import ConfigError
from augbench.methods import AugmentationMethod, Views, create_method, register_method, repeat_views
from augbench.methods.base import MethodContext
from augbench.rundir import read_records
from augbench.runs import execute, resolve
from augbench.train import trainer as trainer_module
from augbench.train.distributed import Replicas, check_supported, convert_batchnorm

SETS = {"data.n_train": 96, "data.n_test": 32, "train.epochs": 2, "train.batch_size": 16, "eval.tta_views": 2,
        "run.progress": False, "run.log_every": 1, "run.threads": 1}


@register_method("ddp-test-gain")
class Gain(AugmentationMethod):
    """Deterministic and learned: a per-channel gain with its own optimizer, and an EMA buffer of the loss."""

    ema: torch.Tensor

    def __init__(self, ctx: MethodContext, **hp) -> None:
        super().__init__(ctx, **hp)
        self.w = nn.Parameter(torch.zeros(ctx.image_shape[0]))
        self.register_buffer("ema", torch.zeros(()))

    def sample(self, x, ctx, n_views=1):
        return Views(repeat_views(x * (1 + torch.tanh(self.w)).view(1, -1, 1, 1), n_views), n_views)

    def objective(self, per_sample_loss, views):
        with torch.no_grad():
            self.ema.mul_(0.9).add_(0.1 * per_sample_loss.mean())
        return per_sample_loss.mean() + 0.01 * self.w.square().sum(), {"ema": self.ema.clone()}

    def make_optimizer(self):
        return torch.optim.SGD([self.w], lr=0.05)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, world: int, port: int, runs: list[tuple]) -> None:
    """One process of a torchrun-style launch (the environment variables torchrun sets), running
    `runs` — (run_dir, benchmark, method, sets, stop_at) — one after the other."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    original = trainer_module.Trainer._step
    for run_dir, benchmark, method, sets, stop_at in runs:
        if stop_at is not None and rank == 1:  # a termination signal reaching one process only

            def step_then_signal(self, *args, _at=stop_at, **kwargs):
                out = original(self, *args, **kwargs)
                if self.global_step + 1 == _at:
                    trainer_module.STOP.set()
                return out

            trainer_module.Trainer._step = step_then_signal  # type: ignore[method-assign]
        try:
            execute(resolve(benchmark, method, 1, sets), run_dir)
        except SystemExit as exc:  # the agreed stop: every process checkpoints and exits
            if exc.code != 143:
                raise
        finally:
            trainer_module.Trainer._step = original  # type: ignore[method-assign]
            trainer_module.STOP.clear()


def _launch(*runs: tuple, world: int = 2) -> None:
    """Two processes on the gloo backend, like `torchrun --nproc_per_node=2`."""
    mp.start_processes(_worker, args=(world, _free_port(), [(str(r[0]), *r[1:]) for r in runs]), nprocs=world,
                       start_method="spawn")


def _outcome(run_dir):
    recs = read_records(run_dir / "records.jsonl").records
    for r in recs:
        r.pop("time")
    metrics = json.loads((run_dir / "status.json").read_text())["metrics"]
    metrics.pop("wall_time", None)
    return metrics, recs, torch.load(run_dir / "final_weights.pt", weights_only=True)


# ----------------------------------------------------------------------------- in one process
def test_launch_environment(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "SUBMITIT_EXECUTOR"):
        monkeypatch.delenv(key, raising=False)
    assert launch_env() == DistEnv() and not launch_env().active
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert launch_env() == DistEnv(3, 4, 1) and launch_env("off") == DistEnv()
    assert distenv.is_follower({"run.distributed": "auto"})
    assert not distenv.is_follower({"run.distributed": "off"})
    env = launch_env()
    assert process_device("cpu", env.world_size, env.local_rank) == "cpu"
    with pytest.raises(ConfigError, match="LOCAL_RANK"):
        process_device("cuda:1", env.world_size, env.local_rank)
    monkeypatch.setenv("RANK", "4")
    with pytest.raises(ConfigError, match="outside WORLD_SIZE"):
        launch_env()


def test_a_sweep_asks_slurm_for_one_task_per_gpu():
    from augbench.sweep.grid import Resources

    params = Resources.parse({"gpus": 4, "tasks": 4}).submitit_parameters()
    assert params["gpus_per_node"] == 4 and params["tasks_per_node"] == 4
    assert "tasks_per_node" not in Resources.parse({"gpus": 1}).submitit_parameters()
    with pytest.raises(ConfigError, match="tasks"):
        Resources.parse({"tasks": 0})


def test_refused_configurations():
    ctx = MethodContext(num_classes=4, image_shape=(3, 32, 32), families=frozenset({"crop"}))
    fine = create_method("random-crop", ctx)
    check_supported("classification", fine, 16, 100, 2)
    with pytest.raises(ConfigError, match="couples the images"):
        check_supported("contrastive", fine, 16, 100, 2)
    with pytest.raises(ConfigError, match="divide"):
        check_supported("classification", fine, 15, 100, 2)
    with pytest.raises(ConfigError, match="fewer than one global batch"):
        check_supported("classification", fine, 16, 10, 2)
    for name in ("adaaug", "teachaugment"):  # exploration steps; an adversarial pass through the classifier
        method = create_method(name, MethodContext(num_classes=4, image_shape=(3, 32, 32),
                                                   families=frozenset({"policy", "crop"})))
        with pytest.raises(ConfigError, match="outside the trainer's backward"):
            check_supported("classification", method, 16, 100, 2)
    for name in ("entaugment", "adaaugment"):  # a magnitude per training image; a policy stepped while augmenting
        method = create_method(name, ctx)
        with pytest.raises(ConfigError, match="run it in one process"):
            check_supported("classification", method, 16, 100, 2)
    check_supported("classification", create_method("sra", ctx), 16, 100, 2)  # stateless: data-parallel


def test_one_process_is_the_identity():
    rep = Replicas(DistEnv(), torch.device("cpu"))
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    idx = torch.arange(8)
    assert rep.wrap(model) is model and rep.shard(idx) is idx and rep.broadcast({"a": 1}) == {"a": 1}
    stats = {"loss": 1.5}
    assert rep.agree(stats, True, False) == (stats, [True, False]) and rep.gather(3) == [3]
    x = torch.randn(6, 3, 8, 8)
    reference = model(x)
    keys = list(model.state_dict())
    assert convert_batchnorm(model) == 1 and list(model.state_dict()) == keys
    assert isinstance(model[1], nn.BatchNorm2d) and torch.allclose(model(x), reference)  # no process group


# ----------------------------------------------------------------------------- two gloo processes
@pytest.mark.slow
def test_two_streaming_processes_give_the_numbers_of_one_in_memory(tmp_path):
    """Global-batch BatchNorm, DDP gradients, the method's own gradients and buffers, rank 0's records;
    each process streams its share of every batch from the files (DataLoader workers)."""
    sets = {"data.root": str(make_tree(tmp_path / "data")), "data.image_size": 16, "model.name": "small_cnn",
            "model.width": 0.25, "train.hflip": False, "train.epochs": 2, "train.batch_size": 8,
            "eval.tta_views": 2, "eval.batch_size": 5, "run.progress": False, "run.log_every": 1,
            "run.threads": 1}
    execute(resolve("imagefolder-crop", "ddp-test-gain", 1, {**sets, "data.stream": "off"}), tmp_path / "one")
    _launch((tmp_path / "two", "imagefolder-crop", "ddp-test-gain", {**sets, "data.stream": "on", "data.workers": 1},
             None))
    (m1, r1, w1), (m2, r2, w2) = _outcome(tmp_path / "one"), _outcome(tmp_path / "two")
    assert m2 == pytest.approx(m1, rel=1e-5, abs=1e-6)
    assert [(r["step"], r["split"]) for r in r2] == [(r["step"], r["split"]) for r in r1]  # written once
    for a, b in zip(r1, r2):
        assert b["metrics"] == pytest.approx(a["metrics"], rel=1e-5, abs=1e-6), (a["step"], a["split"])
    for part in ("model", "method"):
        assert w1[part].keys() == w2[part].keys()
        for k in w1[part]:
            assert torch.allclose(w1[part][k].double(), w2[part][k].double(), rtol=1e-4, atol=1e-5), (part, k)
    assert w2["method"]["ema"] != 0 and not torch.equal(w2["method"]["w"], torch.zeros(3))


@pytest.mark.slow
def test_a_stop_on_one_process_checkpoints_all_and_the_resume_is_exact(tmp_path):
    """InstaAug (phi's own optimizer, per-process augmentation draws): interrupted + resumed == uninterrupted."""
    args = ("glyphs-rotation", "instaaug", SETS)
    # uninterrupted, then stopped by rank 1 mid-epoch 1 (5 steps an epoch); resumed by fresh processes
    _launch((tmp_path / "straight", *args, None), (tmp_path / "resumed", *args, 7))
    assert not (tmp_path / "resumed" / "status.json").exists()
    ck = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)
    assert (ck["epoch"], ck["step_in_epoch"], ck["world_size"], len(ck["rng_ranks"])) == (1, 2, 2, 2)
    _launch((tmp_path / "resumed", *args, None))
    (m1, r1, w1), (m2, r2, w2) = _outcome(tmp_path / "straight"), _outcome(tmp_path / "resumed")
    assert m1 == m2 and r1 == r2
    for part in ("model", "method"):
        assert w1[part].keys() == w2[part].keys() and all(torch.equal(w1[part][k], w2[part][k]) for k in w1[part])
