"""No host-device synchronisation in a training step: the counter, and every registered method.

`SyncCounter` recognises the calls that make a host wait for a GPU (read-backs, host copies,
data-dependent shapes) on a CPU, so this runs without a GPU. Every method registered (now or
later, from `list_methods()`) takes one period of training steps (its `step_period`: AdaAug's
and MADAug's exploration, TeachAugment's augmenter update included) on an embedded benchmark
of its family; the syncs inside its hooks are held to `DOCUMENTED` (zero for any other
method), and the trainer's own to one per step.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from augbench.benchmarks import get_benchmark, list_benchmarks
from augbench.methods import get_method, list_methods
from augbench.perf.harness import MethodHarness
from augbench.perf.syncs import HOOKS, SyncCounter, step_syncs
from augbench.settings import settings_spec

#: method -> (syncs per training step inside its hooks, why). Every other method: zero.
GROUP_SIZES = "its per-image ops are grouped by op: the group sizes are read back once per batch (ops.group_sizes)"
DOCUMENTED: dict[str, tuple[int, str]] = {
    "autoaugment": (1, GROUP_SIZES),
    "randaugment": (1, GROUP_SIZES),
    "trivialaugment": (1, GROUP_SIZES),
    "fast-autoaugment": (1, GROUP_SIZES),
    "adaaug": (1, GROUP_SIZES + " (exploration mixes every op over every image: sizes known, no read-back)"),
    "madaug": (1, GROUP_SIZES + " (exploration mixes every op over every image: sizes known, no read-back)"),
    "adaaugment": (1, GROUP_SIZES),
    "entaugment": (1, GROUP_SIZES),
    "sra": (2, GROUP_SIZES + "; `objective` reads its refine flag, a tensor made on the host (no wait on a GPU)"),
}
#: the trainer reads the step's statistics (loss, accuracy, the method's logs) back for its records
TRAINER_PER_STEP = 1


# ------------------------------------------------------------------------------- the counter
def _sync_cases() -> dict[str, object]:
    x, mask = torch.rand(6), torch.rand(6) > 0.5
    return {
        "item": lambda: x.sum().item(),
        "bool": lambda: bool(x.sum() > 1),
        "int": lambda: int(x.argmax()),
        "float": lambda: float(x.max()),
        "tolist": lambda: x.tolist(),
        "cpu": lambda: x.cpu(),
        "numpy": lambda: x.numpy(),
        "nonzero": lambda: mask.nonzero(),
        "where(mask)": lambda: torch.where(mask),
        "mask index": lambda: x[mask],
        "mask assign": lambda: x.clone().__setitem__(mask, 0.0),
        "masked_select": lambda: x.masked_select(mask),
        "unique": lambda: torch.unique(x),
        "repeat_interleave": lambda: x.repeat_interleave(torch.ones(6, dtype=torch.long)),
        "if tensor": lambda: 1 if (x > 0.5).any() else 0,
        "equal": lambda: torch.equal(x, x),
    }


@pytest.mark.parametrize("name", list(_sync_cases()))
def test_the_counter_catches_each_kind_of_sync(name):
    fn = _sync_cases()[name]
    with SyncCounter() as syncs:
        fn()
    assert syncs.count >= 1, name
    assert "test_syncs.py" in syncs.events[0].where  # the report names the line


def test_the_counter_leaves_device_side_work_alone():
    x, idx = torch.rand(8, 3, 4, 4), torch.tensor([3, 1])
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters())  # its step counters are host tensors on every device
    with SyncCounter() as syncs:
        y = torch.where(x > 0.5, x, 1 - x).index_select(0, idx).repeat_interleave(2, dim=0)
        F.one_hot(torch.tensor([0, 2]), 3)  # range checks on a CPU only; CUDA asserts on the device
        model(y.mean((2, 3))).sum().backward()
        opt.step()
        torch.multinomial(torch.ones(4), 2)
    assert syncs.count == 0, syncs.report()


def test_the_counter_attributes_events_to_parts():
    x = torch.rand(3)
    with SyncCounter() as syncs:
        x.tolist()
        with syncs.part("method.sample"):
            x.sum().item()
    assert [e.part for e in syncs.events] == ["step", "method.sample"]
    assert "Tensor.tolist" in syncs.report("step") and "_local_scalar_dense" in syncs.report("method.sample")


# ------------------------------------------------------------------------ every method's step
EMBEDDED = [b for b in list_benchmarks() if get_benchmark(b).embedded]
TINY = {"data.n_train": 64, "data.n_test": 16, "data.n_train_per_class": 8, "data.n_test_per_class": 2,
        "train.epochs": 3, "train.batch_size": 16, "eval.tta_views": 2, "model.width": 0.25, "run.device": "cpu",
        "run.progress": False, "model.pretrain_epochs": 1, "eval.probe_epochs": 1}


def _benchmark_for(method: str) -> str:
    """An embedded classification benchmark of the method's family (the first in the registry's order)."""
    families = get_method(method).families
    fits = [b for b in EMBEDDED if not families or not get_benchmark(b).family or get_benchmark(b).family in families]
    tasks = getattr(get_method(method), "tasks", None)
    fits = [b for b in fits if not tasks or get_benchmark(b).task in tasks]
    return next((b for b in fits if get_benchmark(b).task == "classification"), fits[0])


def _step_syncs(method: str, tmp_path) -> tuple[list, list, int]:
    """(events inside the method's hooks, the trainer's own events, steps) over one period of steps."""
    bench = _benchmark_for(method)
    params = settings_spec(bench).params
    h = MethodHarness(bench, method, {k: v for k, v in TINY.items() if k in params}, None, tmp_path, 0)
    syncs, steps = step_syncs(h, torch.arange(16))
    return [e for e in syncs.events if e.part in HOOKS], syncs.in_part("step"), steps


@pytest.mark.parametrize("method", list_methods())
def test_a_training_step_syncs_no_more_than_documented(method, tmp_path):
    in_hooks, trainer, steps = _step_syncs(method, tmp_path)
    allowed, why = DOCUMENTED.get(method, (0, "none documented"))
    assert len(in_hooks) <= allowed * steps, f"{method} ({why}): " + "; ".join(map(str, in_hooks))
    assert len(trainer) <= TRAINER_PER_STEP * steps, "; ".join(map(str, trainer))


def test_a_method_that_syncs_is_caught(tmp_path, monkeypatch):
    cls = get_method("random-crop")
    sample = cls.sample

    def syncing(self, x, ctx, n_views=1):
        if x.mean() > 0:  # bool(tensor): the kind of check that stalls a GPU every step
            pass
        return sample(self, x, ctx, n_views)

    monkeypatch.setattr(cls, "sample", syncing)
    in_hooks, _, steps = _step_syncs("random-crop", tmp_path)
    assert steps == 1 and len(in_hooks) == 1 and in_hooks[0].part == "sample"
    assert "test_syncs.py" in in_hooks[0].where
