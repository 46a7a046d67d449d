"""InstaAug's parts: each conditioning with each parameterization, checkpoint layout, constants."""

from __future__ import annotations

import pytest
import torch

from augbench.errors import ConfigError
from augbench.methods import MethodContext, StepContext, create_method
from augbench.methods.instaaug.conditioning import (
    ClassConditioner,
    InputConditioner,
    InputFreeConditioner,
    build_conditioner,
)
from augbench.methods.instaaug.lrp import GLOBAL, LRPParameterization
from augbench.methods.instaaug.uniform import uniform_parameterization

PARAMETERIZATIONS = [("lrp", "crop"), ("crop-uniform", "crop"), ("rotation", "rotation"), ("color", "color")]
CONDITIONINGS = ["input", "input-free", "class"]


def _parts(name: str, size: int = 32):
    if name == "lrp":
        return LRPParameterization((size, size))
    kind = {"crop-uniform": "crop"}.get(name, name)
    return uniform_parameterization(kind, image_hw=(size, size))


@pytest.mark.parametrize("name,family", PARAMETERIZATIONS)
@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_every_conditioner_feeds_every_parameterization(name, family, conditioning):
    """theta (B, n_raw) from the conditioner; sample, entropy, inspect and test views of the parameterization."""
    torch.manual_seed(0)
    dist = _parts(name)
    cond = build_conditioner(conditioning, dist, 3, 4, (32, 32), 0.1)
    x, y = torch.rand(5, 3, 32, 32), torch.tensor([0, 3, 1, 1, 2])
    raw = cond(x, y)
    assert raw.shape == (5, dist.n_raw)
    views = dist.sample(x, raw, 2)
    assert views.x.shape == (10, 3, 32, 32) and views.entropy.shape == (5,)
    assert (views.log_prob is not None) == (name == "lrp")
    torch.testing.assert_close(dist.entropy(raw), views.entropy)
    ins = cond.inspect(x, y, dist)
    assert ins["entropy"].shape == (5,) and all(v.shape[0] == 5 for v in ins.values())
    assert ("crop_boxes" in ins) == (family == "crop")
    assert cond.test_views(x, y, 3, dist, "sample").shape == (15, 3, 32, 32)
    assert cond.test_views(x, None if conditioning == "class" else y, 3, dist, "sample").shape == (15, 3, 32, 32)
    loss = views.x.mean() + views.entropy.sum() + (0 if views.log_prob is None else views.log_prob.sum())
    loss.backward()
    state = [p for v in cond.state.values() for p in (v.parameters() if isinstance(v, torch.nn.Module) else [v])]
    assert state and all(p.grad is not None for p in state)  # theta's state learns through either path


def test_the_conditioners_are_what_table_1_ablates():
    dist = LRPParameterization((32, 32))
    x = torch.stack([torch.zeros(3, 32, 32), torch.ones(3, 32, 32)])
    free = InputFreeConditioner(dist.initial_raw(), dist.raw_name)
    torch.testing.assert_close(free(x), dist.initial_logits.expand(2, -1))  # the prior, for every input
    table = ClassConditioner(dist.class_table(3), dist.raw_name, (32, 32), 0.1)
    assert (table.table[:, dist.candidates.index(GLOBAL)] == 5.0).all()
    with pytest.raises(ConfigError, match="labels"):
        table(x, None)
    torch.manual_seed(0)
    phi = InputConditioner(dist.network(3).eval())
    out = phi(x)
    assert out.shape == (2, 17) and not torch.allclose(out[0], out[1])  # phi(x) depends on x


@pytest.mark.parametrize("name,family", PARAMETERIZATIONS)
@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_checkpoints_keep_the_method_level_layout(name, family, conditioning):
    """Parameter names and state_dict keys are `phi.*`, `<raw>_vector` or `<raw>_table` at the method's top level."""
    ctx = MethodContext(num_classes=3, image_shape=(3, 32, 32), families=frozenset({family}))
    torch.manual_seed(0)
    a = create_method("instaaug", ctx, parameterization=name, conditioning=conditioning)
    keys = list(a.state_dict())
    raw = "logit" if name == "lrp" else "raw"
    expected = {"input": "phi.", "input-free": f"{raw}_vector", "class": f"{raw}_table"}[conditioning]
    learned = [k for k in keys if not k.startswith("lam.") and k not in
               ("baseline_ema", "baseline_ready", "train_entropy_sum", "train_entropy_n")]
    assert learned and all(k.startswith(expected) for k in learned) and not any("conditioner" in k for k in keys)
    if conditioning != "input":
        assert keys[0] == expected  # the method's own parameters come first, as before
    assert set(dict(a.named_parameters())) <= set(keys)
    with torch.no_grad():
        for p in a.parameters():
            p.add_(torch.randn_like(p))
    torch.manual_seed(1)
    b = create_method("instaaug", ctx, parameterization=name, conditioning=conditioning)
    b.load_state_dict(a.state_dict())
    assert all(torch.equal(u, v) for u, v in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("conditioning", CONDITIONINGS)
def test_the_conditioner_reads_the_methods_own_state(conditioning):
    """Optimizer steps, `.to()`, `load_state_dict` and deepcopy reach the tensors the conditioner reads."""
    import copy

    ctx = MethodContext(num_classes=3, image_shape=(3, 32, 32), families=frozenset({"rotation"}))
    torch.manual_seed(0)
    m = create_method("instaaug", ctx, conditioning=conditioning).eval()
    x, y = torch.rand(2, 3, 32, 32), torch.tensor([0, 2])
    with torch.no_grad():
        for p in m.parameters():
            p.add_(1.0)
    before = m.raw(x, y)
    other = create_method("instaaug", ctx, conditioning=conditioning).eval()
    other.load_state_dict(m.state_dict())
    torch.testing.assert_close(other.raw(x, y), before)
    twin = copy.deepcopy(m)
    with torch.no_grad():
        for p in twin.parameters():
            p.zero_()
    torch.testing.assert_close(m.raw(x, y), before)  # the copy has its own state
    assert not torch.allclose(twin.raw(x, y), before)
    m.to(torch.float64)
    assert m.raw(x.double(), y).dtype == torch.float64


def test_inspect_constants_are_the_lrp_candidates():
    ctx = MethodContext(num_classes=3, image_shape=(3, 64, 64), families=frozenset({"crop"}))
    for conditioning in CONDITIONINGS:
        m = create_method("instaaug", ctx, conditioning=conditioning)
        const = m.inspect_constants()
        assert set(const) == {"candidate_boxes"} and const["candidate_boxes"].shape == (321, 4)
        torch.testing.assert_close(const["candidate_boxes"], m.distribution.candidates.boxes)
        probs = m.inspect(torch.rand(2, 3, 64, 64), StepContext(training=False, y=torch.tensor([0, 1])))["crop_probs"]
        assert probs.shape[1] == const["candidate_boxes"].shape[0]  # the columns of crop_probs
    rot = MethodContext(num_classes=3, image_shape=(3, 32, 32), families=frozenset({"rotation"}))
    assert create_method("instaaug", rot).inspect_constants() == {}
    assert create_method("random-crop", ctx).inspect_constants() == {}


def test_topk_is_a_rule_of_discrete_parameterizations_only():
    x = torch.rand(2, 3, 32, 32)
    rot = _parts("rotation")
    with pytest.raises(ConfigError, match="topk"):
        rot.test_views(x, torch.zeros(2, rot.n_raw), 2, "topk")
    lrp = _parts("lrp")
    assert lrp.test_views(x, lrp.initial_logits.expand(2, -1), 3, "topk").shape == (6, 3, 32, 32)
