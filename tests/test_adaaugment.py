"""AdaAugment: the reward of its public code, one actor-critic step, its schedules, resume."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Beta

from augbench.methods import MethodContext, StepContext, create_method
from augbench.methods.adaaugment import balance_factor
from augbench.models import build_model
from augbench.runs import resolve

K = 4


def make(epochs: int = 4, **hp) -> torch.nn.Module:
    model = build_model("small_cnn", K, width=0.25)
    ctx = MethodContext(K, (3, 16, 16), frozenset({"crop"}), feature_dim=model.feature_dim, epochs=epochs)
    return create_method("adaaugment", ctx, **hp), model


def test_balance_factor_falls_from_one_minus_one_over_e_to_zero():
    assert [balance_factor(e, 4) for e in range(4)] == [0.75, 0.5, 0.25, 0.0]


def test_learning_rate_decays_as_the_code_after_each_epoch():
    method, _ = make(epochs=11)
    opt = method.make_optimizer()
    lrs = []
    for epoch in range(11):
        method.begin_epoch(epoch)
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs[0] == lrs[1] == pytest.approx(3e-4)
    assert lrs[2] == pytest.approx(3e-4 * (1 - 0.99 / 10))
    assert lrs[-1] == pytest.approx(3e-4 * (1 - 0.99 * 9 / 10))
    assert all(g["lr"] == lrs[-1] for g in opt.param_groups)


def test_reward_and_update_follow_the_code(monkeypatch):
    """The step's reward is (1 - b)(L_ada - L_none) + b(L_full - L_ada) and the policy takes one
    Adam step on -sum(log pi (td - V)) + mean((td - V)^2), td = r + 0.99 V(s')."""
    method, model = make(epochs=4, base_pad=0)
    method.train()
    torch.manual_seed(0)
    x, y = torch.rand(8, 3, 16, 16), torch.randint(0, K, (8,))
    seen = {}
    original = method.update_policy

    def spy(state, action, next_state, reward):
        seen.update(state=state, action=action, next_state=next_state, reward=reward)
        seen["params"] = [p.detach().clone() for p in method.parameters()]
        return original(state, action, next_state, reward)

    augment = method._augment

    def record(images, magnitude):
        seen["magnitude"], seen["views"] = magnitude, augment(images, magnitude)
        return seen["views"]

    monkeypatch.setattr(method, "update_policy", spy)
    monkeypatch.setattr(method, "_augment", record)
    views = method.sample(x, StepContext(y=y, features=model.features, epoch=1))
    ada, full = seen["views"].split(8)
    assert torch.equal(views.x, ada) and torch.equal(seen["magnitude"][8:], torch.ones(8))  # full: magnitude 1
    model.eval()
    with torch.no_grad():
        assert torch.allclose(seen["state"], model.features(x), atol=1e-6)  # the none view (no pad here)
        assert torch.allclose(seen["next_state"], model.features(ada), atol=1e-6)
        loss = {k: F.cross_entropy(model(v), y, reduction="none") for k, v in (("none", x), ("ada", ada),
                                                                               ("full", full))}
    b = 0.5  # epoch 1 of 4
    expected = (1 - b) * (loss["ada"] - loss["none"]) + b * (loss["full"] - loss["ada"])
    assert torch.allclose(seen["reward"], expected, atol=1e-5)
    assert torch.allclose(views.info["magnitude"], seen["action"])
    # the update: recompute the code's losses on the parameters before it, one Adam step from zero state
    before = seen["params"]
    fresh, _ = make(epochs=4, base_pad=0)
    fresh.load_state_dict({k: v for k, v in zip(method.state_dict(), before)})
    alpha, beta = fresh.actor(seen["state"])
    value = fresh.critic(seen["state"])
    target = seen["reward"] + 0.99 * fresh.critic(seen["next_state"]).detach()
    loss = -(Beta(alpha, beta).log_prob(seen["action"]) * (target - value.detach())).sum() + F.mse_loss(value, target)
    opt = torch.optim.Adam(fresh.parameters(), lr=3e-4, eps=1e-5, weight_decay=5e-4)
    loss.backward()
    opt.step()
    for got, want in zip(method.parameters(), fresh.parameters()):
        assert torch.allclose(got, want, atol=1e-7)
    assert any(not torch.equal(p, q) for p, q in zip(before, method.parameters()))


def test_the_policy_reads_each_image():
    method, model = make()
    with torch.no_grad():
        for p in method.actor.parameters():
            p.normal_(0, 0.5)
    x = torch.rand(8, 3, 16, 16)
    m = method.inspect(x, StepContext(training=False, features=model.features))["magnitude"]
    assert m.shape == (8,) and m.std() > 0 and ((m > 0) & (m < 1)).all()


def test_resume_from_an_epoch_checkpoint_is_exact(tiny, resumed_run):
    """Actor, critic and their Adam state survive a checkpoint: an interrupted run ends with the same numbers."""
    cfg = resolve("clutter-crop", "adaaugment", 0, {**tiny, "model.width": 0.25, "run.device": "cpu",
                                                     "train.epochs": 2})
    reference = resumed_run(cfg, stop_epoch=1)
    assert 0.0 < reference["magnitude"] < 1.0 and "magnitude_robust" in reference
