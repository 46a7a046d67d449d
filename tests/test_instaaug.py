"""The `instaaug` method: REINFORCE, ablations, test-time augmentation, crop variants, end-to-end runs."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from augbench.errors import ConfigError
from augbench.methods import MethodContext, StepContext, Views, create_method
from augbench.methods.instaaug.lrp import GLOBAL, categorical_entropy, crop_candidates, sample_categorical
from augbench.runs import execute, resolve


def _ctx(size: int = 32, family: str = "crop", channels: int = 3, classes: int = 3) -> MethodContext:
    return MethodContext(num_classes=classes, image_shape=(channels, size, size), families=frozenset({family}))


# ----------------------------------------------------------------------------- REINFORCE

def _reinforce_estimates(baseline: str, n_views: int, reps: int = 30, batch: int = 400):
    """Per-repetition gradient estimates of E_k[l_k] w.r.t. an input-free logit vector, and the exact one."""
    torch.manual_seed(0)
    m = create_method("instaaug", _ctx(), conditioning="input-free", baseline=baseline, lambda_rule="fixed",
                      lambda0=0.0)
    with torch.no_grad():
        m.conditioner.vector.copy_(torch.randn(len(m.distribution.candidates)))
    cost = torch.rand(len(m.distribution.candidates)) + 5.0  # a large common offset: what a baseline removes
    p = m.conditioner.vector.detach().softmax(-1)
    exact = p * (cost - (p * cost).sum())  # d/dtheta sum_k p_k cost_k
    estimates = []
    for _ in range(reps + 1):
        m.zero_grad()
        logits = m.conditioner.vector.expand(batch, -1)
        logp = logits.log_softmax(-1)
        idx = sample_categorical(logits, n_views)
        views = Views(torch.zeros(1), n_views, log_prob=logp.gather(1, idx.T).T.reshape(-1),
                      entropy=categorical_entropy(logits))
        loss, _ = m.objective(cost[idx.reshape(-1)], views)
        loss.backward()
        estimates.append(m.conditioner.vector.grad.clone())
    return torch.stack(estimates[1:]), exact  # the first step only warms up the moving average


@pytest.mark.parametrize("baseline,n_views", [("loo", 2), ("ema", 1), ("none", 1), ("auto", 3)])
def test_reinforce_with_baseline_is_unbiased(baseline, n_views):
    est, exact = _reinforce_estimates(baseline, n_views)
    mean, se = est.mean(0), est.std(0) / math.sqrt(est.shape[0])
    assert ((mean - exact).abs() <= 5 * se + 1e-4).all(), (mean - exact).abs().max()


def test_baselines_reduce_the_variance():
    var = {b: _reinforce_estimates(b, v)[0].var(0).sum().item() for b, v in [("none", 2), ("loo", 2), ("ema", 2)]}
    assert var["loo"] < var["none"] / 10 and var["ema"] < var["none"] / 10


def test_loo_needs_several_views():
    m = create_method("instaaug", _ctx(), conditioning="input-free", baseline="loo")
    views = m.sample(torch.rand(2, 3, 32, 32), StepContext(training=True), 1)
    with pytest.raises(ConfigError):
        m.objective(torch.rand(2), views)


def test_sampled_log_prob_is_that_of_the_applied_crop():
    torch.manual_seed(0)
    m = create_method("instaaug", _ctx(64))
    x = torch.rand(3, 3, 64, 64)
    views = m.sample(x, StepContext(training=True), 4)
    logp = m.raw(x).log_softmax(-1)  # batch statistics: same batch, same BN output
    idx = views.info["index"].view(4, 3)
    torch.testing.assert_close(views.log_prob.view(4, 3), logp.gather(1, idx.T).T)
    torch.testing.assert_close(views.x, crop_candidates(torch.cat([x] * 4), m.distribution.boxes, idx.reshape(-1)))
    assert views.entropy.shape == (3,) and views.info["layer_mass"].shape == (3, 3)


# ----------------------------------------------------------------------------- ablations

def test_class_specific_uses_labels_in_training_and_random_crops_at_test_time():
    torch.manual_seed(0)
    m = create_method("instaaug", _ctx(), conditioning="class")
    table, cands = m.conditioner.table.detach(), m.distribution.candidates
    assert (table[:, cands.index(GLOBAL)] == 5.0).all() and table[:, :-1].abs().sum() == 0
    chosen = [cands.index(2, 2, 2), cands.index(2, 3, 5), cands.index(GLOBAL)]
    with torch.no_grad():
        m.conditioner.table.fill_(-1e4)
        for c, k in enumerate(chosen):
            m.conditioner.table[c, k] = 0.0
    y = torch.tensor([2, 0, 1, 1, 0])
    x = torch.rand(5, 3, 32, 32)
    views = m.sample(x, StepContext(y=y, training=True), 2)
    assert views.info["index"].tolist() == [chosen[c] for c in y.tolist()] * 2
    with pytest.raises(ConfigError):
        m.sample(x, StepContext(training=True), 1)
    # at test time there are no labels: the table must not be used at all
    with torch.no_grad():
        m.conditioner.table.fill_(float("nan"))
    test_ctx = StepContext(training=False)
    a, b = m.test_views(x, 3, test_ctx), m.test_views(x, 3, test_ctx)
    assert torch.isfinite(a).all() and a.shape == (15, 3, 32, 32) and not torch.equal(a, b)
    with torch.no_grad():
        m.conditioner.table.copy_(torch.randn_like(m.conditioner.table))
    ins = m.inspect(x, test_ctx)  # labels unknown: the class average; boxes of the random-crop fallback
    assert ins["entropy"].shape == (5,) and ins["crop_boxes"].shape == (5, 8, 4)
    assert ins["entropy"][0].item() == pytest.approx(categorical_entropy(m.conditioner.table).mean().item(), rel=1e-5)


def test_class_specific_rotation_draws_a_random_class_range_at_test_time():
    torch.manual_seed(0)
    m = create_method("instaaug", _ctx(16, "rotation"), conditioning="class")
    with torch.no_grad():
        m.conditioner.table.copy_(torch.tensor([[-20.0, -20.0], [-20.0, -20.0], [-20.0, -20.0]]))  # no rotation at all
    x = torch.rand(4, 3, 16, 16)
    torch.testing.assert_close(m.test_views(x, 2, StepContext(training=False)), torch.cat([x, x]), atol=1e-4, rtol=0)
    assert "rotation_range" not in m.inspect(x, StepContext(training=False))


def test_input_free_gives_the_same_distribution_for_every_input():
    torch.manual_seed(0)
    for family, param in [("crop", "lrp"), ("rotation", "rotation")]:
        m = create_method("instaaug", _ctx(32, family), conditioning="input-free", parameterization=param)
        with torch.no_grad():
            for p in m.parameters():
                p.add_(torch.randn_like(p))
        x = torch.stack([torch.zeros(3, 32, 32), torch.ones(3, 32, 32), torch.rand(3, 32, 32)])
        ins = m.inspect(x, StepContext(training=False))
        for key, value in ins.items():
            if key != "crop_boxes":  # draws, not parameters
                assert torch.equal(value, value[:1].expand_as(value)), key
    assert not any("phi" in n for n, _ in m.named_parameters())


def test_input_conditioned_distributions_differ_between_inputs():
    torch.manual_seed(0)
    m = create_method("instaaug", _ctx(32)).eval()
    ins = m.inspect(torch.rand(4, 3, 32, 32), StepContext(training=False))
    assert ins["crop_probs"].shape == (4, 17)
    assert not torch.allclose(ins["crop_probs"][0], ins["crop_probs"][1])


# ----------------------------------------------------------------------------- test-time augmentation

def test_topk_tta_takes_the_most_probable_crops_in_order():
    torch.manual_seed(0)
    m = create_method("instaaug", _ctx(32), conditioning="input-free", tta="topk")
    with torch.no_grad():
        m.conditioner.vector.copy_(torch.arange(17.0))
    x = torch.rand(2, 3, 32, 32)
    views = m.test_views(x, 3, StepContext(training=False))
    expected = crop_candidates(torch.cat([x] * 3), m.distribution.boxes, torch.tensor([16, 16, 15, 15, 14, 14]))
    torch.testing.assert_close(views, expected)
    assert m.test_views(x, 20, StepContext(training=False)).shape[0] == 40  # more views than candidates: cycles
    # the public combination rule: probabilities, top crop weighted 0.2
    logits = torch.randn(3, 2, 4)
    w = torch.tensor([0.2, 1.0, 1.0]).view(3, 1, 1)
    torch.testing.assert_close(m.combine_views(logits).exp(), (w * logits.softmax(-1)).sum(0) / 2.2)
    sampled = create_method("instaaug", _ctx(32))
    torch.testing.assert_close(sampled.combine_views(logits), logits.mean(0))


def test_sampled_tta_follows_phi():
    torch.manual_seed(0)
    m = create_method("instaaug", _ctx(32), conditioning="input-free")
    k = m.distribution.candidates.index(2, 2, 4)
    with torch.no_grad():
        m.conditioner.vector.fill_(-1e4)
        m.conditioner.vector[k] = 0
    x = torch.rand(2, 3, 32, 32)
    views = m.test_views(x, 4, StepContext(training=False))
    torch.testing.assert_close(views, crop_candidates(torch.cat([x] * 4), m.distribution.boxes, torch.full((8,), k)))


# ----------------------------------------------------------------------------- crop variants, method level

@pytest.mark.parametrize("size,k", [(32, 17), (64, 321)])
@pytest.mark.parametrize("parameterization", ["lrp", "crop-uniform"])
def test_crop_variants_sample_objective_backward_and_step(size, k, parameterization):
    torch.manual_seed(0)
    m = create_method("instaaug", _ctx(size), parameterization=parameterization, optimizer="adam", lr=1e-2)
    opt = m.make_optimizer()
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, 4, 1), torch.nn.Flatten(), torch.nn.LazyLinear(3))
    x, y = torch.rand(6, 3, size, size), torch.randint(0, 3, (6,))
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    views = m.sample(x, StepContext(y=y, training=True), 2)
    assert views.x.shape == (12, 3, size, size) and views.entropy.shape == (6,)
    assert (views.log_prob is not None) == (parameterization == "lrp")
    loss, logs = m.objective(F.cross_entropy(model(views.x), y.repeat(2), reduction="none"), views)
    assert torch.isfinite(loss) and "lambda" in logs and "entropy" in logs
    if parameterization == "lrp":
        assert {"mass_L2", "mass_global"} <= set(logs) or {"mass_L2", "mass_L3", "mass_global"} <= set(logs)
    loss.backward()
    opt.step()
    assert any(not torch.equal(before[n], p) for n, p in m.named_parameters())
    m.eval()
    test_ctx = StepContext(training=False)
    assert m.test_views(x, 3, test_ctx).shape == (18, 3, size, size)
    ins = m.inspect(x, test_ctx)
    boxes = ins["crop_boxes"]  # (B, 8, 4) sampled like the test-time crops
    assert boxes.shape == (6, 8, 4)
    if parameterization == "lrp":
        assert ins["crop_probs"].shape == (6, k) and m.inspect_constants()["candidate_boxes"].shape == (k, 4)
        torch.testing.assert_close(ins["crop_probs"].sum(-1), torch.ones(6))
        assert (boxes.reshape(-1, 1, 4) == m.distribution.boxes).all(-1).any(-1).all()  # every box a candidate
    else:
        assert set(ins) == {"entropy", "size_range", "center_y_range", "center_x_range", "crop_boxes",
                            "entropy_size", "entropy_center_y", "entropy_center_x"}
        assert m.inspect_constants() == {}
        # square crops inside the image, sides within the reported range
        half = boxes[..., 2:] / 2
        assert (boxes[..., :2] - half >= -1e-6).all() and (boxes[..., :2] + half <= 1 + 1e-6).all()
        assert (boxes[..., 2] >= ins["size_range"][:, :1] - 1e-6).all()
        assert (boxes[..., 2] <= ins["size_range"][:, 1:] + 1e-6).all()


def test_state_dict_round_trip_reproduces_the_distribution():
    torch.manual_seed(0)
    a = create_method("instaaug", _ctx(32), optimizer="adam", lr=0.1)
    opt = a.make_optimizer()
    x = torch.rand(4, 3, 32, 32)
    views = a.sample(x, StepContext(training=True), 1)
    loss, _ = a.objective(torch.rand(4), views)
    loss.backward()
    opt.step()
    a.end_epoch(0, {"entropy": 0.0})
    a.end_epoch(1, {"entropy": 0.0})
    b = create_method("instaaug", _ctx(32))
    b.load_state_dict(a.state_dict())
    a.eval(), b.eval()
    torch.testing.assert_close(a.raw(x), b.raw(x))
    assert b.lam.value == pytest.approx(a.lam.value) and bool(b.baseline_ready)


def test_bad_configurations_are_one_line_config_errors():
    with pytest.raises(ConfigError, match="parameterization=rotation"):
        create_method("instaaug", _ctx(32, "crop"), parameterization="rotation")
    with pytest.raises(ConfigError, match="topk"):
        create_method("instaaug", _ctx(32, "rotation"), tta="topk")
    with pytest.raises(ConfigError, match="lrp_prior"):
        create_method("instaaug", _ctx(32), lrp_layers=[2, 3, -1], lrp_prior=[0.0, 1.0])
    with pytest.raises(ConfigError, match="RGB"):
        create_method("instaaug", _ctx(32, "color", channels=1))
    with pytest.raises(ConfigError):
        create_method("instaaug", _ctx(32), conditioning="everything")
    m = create_method("instaaug", _ctx(64), lrp_layers=[1, 3, -1])  # custom layers get a default prior
    assert m.distribution.candidates.counts == [1024, 64, 1]


def test_families_pick_the_default_parameterization():
    assert create_method("instaaug", _ctx(32, "crop")).parameterization == "lrp"
    assert create_method("instaaug", _ctx(32, "rotation")).parameterization == "rotation"
    assert create_method("instaaug", _ctx(32, "color")).parameterization == "color"


# ----------------------------------------------------------------------------- end to end

E2E = {"data.n_train": 64, "data.n_test": 24, "train.epochs": 2, "train.batch_size": 16, "eval.tta_views": 2,
       "model.width": 0.25, "run.progress": False}


def _e2e(tmp_path, **hp):
    cfg = resolve("glyphs-rotation", "instaaug", 0, {**E2E, **hp})
    metrics = execute(cfg, tmp_path / "run")
    bad = {k: v for k, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)}
    assert not bad
    return metrics


def test_end_to_end_rotation_reports_coverage(tmp_path):
    metrics = _e2e(tmp_path)
    assert 0 <= metrics["coverage"] <= 1 and 0 <= metrics["violation"] <= 1 and "entropy" in metrics


@pytest.mark.parametrize("hp", [
    {"conditioning": "input-free"},
    {"conditioning": "class"},
    {"entropy": "width", "lambda_rule": "fixed"},
    {"lambda_rule": "target", "pretrain_epochs": 1, "warmup_epochs": 2, "optimizer": "adam"},
], ids=["input-free", "class", "width-fixed", "target-pretrain-warmup"])
def test_end_to_end_rotation_variants(tmp_path, hp):
    metrics = _e2e(tmp_path, **hp)
    assert ("coverage" in metrics) == (hp.get("conditioning") != "class")
