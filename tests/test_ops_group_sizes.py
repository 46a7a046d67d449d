"""Op slots of a policy read their group sizes back from the device once per batch, with unchanged results."""

from __future__ import annotations

import pytest
import torch

from augbench.errors import ConfigError, DataError
from augbench.perf.syncs import cuda_syncs
from augbench.transforms import ops, policies
from augbench.transforms.ops import OPS, apply_ops, group_sizes
from augbench.transforms.policies import ADAAUG_NAMES, RandAugmentSampler, adaaug_apply, apply_policy


def test_group_sizes_are_per_slot_bincounts():
    idx = torch.tensor([[0, -1], [2, 2], [-1, 1], [0, -5]])
    assert group_sizes(idx, 3) == [[1, 2, 0, 1], [2, 0, 1, 1]]  # [skipped, op 0, op 1, op 2] per slot
    assert group_sizes(torch.empty(0, 2, dtype=torch.long), 3) == [[0] * 4, [0] * 4]
    with pytest.raises(ConfigError, match="values >= 3"):
        group_sizes(torch.tensor([[0, 3]]), 3)  # would fall into the next slot's bins: caught anyway
    with pytest.raises(DataError):
        group_sizes(torch.tensor([0, 1]), 3)


def test_one_read_back_per_batch_of_a_k_op_policy(monkeypatch):
    calls = []
    original = ops.group_sizes

    def counted(op_index, n_ops):
        calls.append(tuple(op_index.shape))
        return original(op_index, n_ops)

    monkeypatch.setattr(ops, "group_sizes", counted)
    monkeypatch.setattr(policies, "group_sizes", counted)
    x = torch.rand(32, 3, 16, 16)
    apply_policy(x, RandAugmentSampler(num_ops=3), torch.Generator().manual_seed(0))
    assert calls == [(32, 3)]  # all three slots at once, none inside apply_ops
    calls.clear()
    adaaug_apply(x, torch.randint(len(ADAAUG_NAMES), (32, 2)), torch.rand(32, 2), torch.Generator().manual_seed(1))
    assert calls == [(32, 2)]


def test_given_sizes_give_the_same_images():
    x = torch.rand(40, 3, 16, 16)
    idx = torch.randint(-1, len(OPS), (40,), generator=torch.Generator().manual_seed(3))
    mag = torch.rand(40, generator=torch.Generator().manual_seed(4))
    names = list(OPS)
    alone = apply_ops(x, idx, mag, names, generator=torch.Generator().manual_seed(5))
    sizes = group_sizes(idx.unsqueeze(1), len(names))[0]
    given = apply_ops(x, idx, mag, names, generator=torch.Generator().manual_seed(5), sizes=sizes)
    assert torch.equal(alone, given)
    with pytest.raises(DataError, match="sizes"):
        apply_ops(x, idx, mag, names, sizes=[40])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_policy_batch_syncs_the_device_once_on_cuda():
    """torch's sync debug mode warns at every synchronising CUDA call: one per batch (the group sizes)."""
    from augbench.transforms.policies import AutoAugmentSampler, TrivialAugmentWideSampler

    x = torch.rand(64, 3, 32, 32, device="cuda")
    op_index = torch.randint(len(ADAAUG_NAMES), (64, 2), device="cuda")
    magnitude = torch.rand(64, 2, device="cuda")
    cases = {type(s).__name__: (lambda s=s: apply_policy(x, s)) for s in
             (AutoAugmentSampler("imagenet"), RandAugmentSampler(num_ops=3), TrivialAugmentWideSampler())}
    cases["adaaug_apply"] = lambda: adaaug_apply(x, op_index, magnitude)
    for name, fn in cases.items():
        fn()  # tables are copied to the device once, on the first call
        syncs = cuda_syncs(fn)
        assert len(syncs) == 1, (name, syncs)
