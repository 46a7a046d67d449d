"""InstaAug's score-function estimator against exact gradients of the expected loss.

Toy problems small enough to enumerate: B images, K candidate crops each, every view's crop
drawn from softmax(theta_i). The exact gradient of E[mean loss] sums over all K^(V*B) crop
choices; so does the expectation of the estimator (`InstaAug.objective`'s gradient, with the
moving-average baseline frozen at a value from "earlier steps"). An unbiased estimator's
expectation IS the exact gradient.

Contrastive: a crop's embedding enters its own NT-Xent loss, its partner's and every other
row's denominator, so the task's credit (`nt_xent_credit`) is the reward, not the view's loss;
the other view's loss, which shares the positive pair, is no baseline (the old leave-one-out).
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from augbench.errors import ConfigError
from augbench.methods import MethodContext, Views, create_method
from augbench.methods.instaaug.lrp import categorical_entropy
from augbench.runs import resolve
from augbench.settings import create_benchmark
from augbench.tasks.contrastive import nt_xent, nt_xent_credit
from augbench.train.trainer import Trainer

TEMPERATURE = 0.5
SHAPES = ((2, 3), (2, 4), (3, 2), (4, 2))  # (B, K): K^(2B) = 81, 256, 64, 256 crop choices


def _method(baseline: str):
    ctx = MethodContext(num_classes=3, image_shape=(3, 32, 32), families=frozenset({"crop"}))
    return create_method("instaaug", ctx, conditioning="input-free", baseline=baseline, lambda_rule="fixed",
                         lambda0=0.0)  # the entropy term has no weight: only REINFORCE reaches theta


def _gradients(theta, n_views, losses, credits, baseline, ema=3.0):
    """(expected estimator, exact gradient) w.r.t. theta (B, K), enumerating every crop choice.

    `losses(idx)` gives the per-view losses (V*B,) of crop indices idx (V, B); `credits(idx)` the
    task's credit or None.
    """
    m = _method(baseline)
    b, k = theta.shape
    theta = theta.clone().requires_grad_(True)
    logp = theta.log_softmax(-1)
    rows = torch.arange(b)
    surrogate, expected_loss = 0.0, 0.0
    for choice in itertools.product(range(k), repeat=n_views * b):
        idx = torch.tensor(choice).view(n_views, b)
        lp = logp[rows, idx].reshape(-1)  # view-major, as `Views` promises
        p = lp.sum().exp()
        loss = losses(idx)
        with torch.no_grad():  # a moving average from earlier steps: independent of this draw
            m.baseline_ema.fill_(ema)
            m.baseline_ready.fill_(True)
        views = Views(torch.zeros(1), n_views, log_prob=lp, entropy=categorical_entropy(theta), credit=credits(idx))
        objective, _ = m.objective(loss, views)
        surrogate = surrogate + p.detach() * objective
        expected_loss = expected_loss + p * loss.mean()
    expected = torch.autograd.grad(surrogate, theta, retain_graph=True)[0]
    exact = torch.autograd.grad(expected_loss, theta)[0]
    return expected, exact


def _contrastive_problem(seed, b, k, dim=3):
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(b, k, dim, generator=g, dtype=torch.float64)  # crop k of image i embeds to emb[i, k]
    theta = torch.randn(b, k, generator=g, dtype=torch.float64)
    rows = torch.arange(b)

    def z(idx):
        return emb[rows, idx].reshape(-1, dim)

    return theta, (lambda idx: nt_xent(z(idx), TEMPERATURE)), (lambda idx: nt_xent_credit(z(idx), TEMPERATURE))


def _cosines(n_problems, baseline, with_credit):
    out = []
    for seed in range(n_problems):
        b, k = SHAPES[seed % len(SHAPES)]
        theta, losses, credits = _contrastive_problem(seed, b, k)
        expected, exact = _gradients(theta, 2, losses, credits if with_credit else (lambda idx: None), baseline)
        out.append(F.cosine_similarity(expected.flatten(), exact.flatten(), dim=0).item())
    return torch.tensor(out)


@pytest.mark.parametrize("baseline,n_problems", [("auto", 20), ("ema", 4), ("none", 4)])
def test_contrastive_estimator_matches_the_exact_gradient(baseline, n_problems):
    cos = _cosines(n_problems, baseline, with_credit=True)
    assert cos.mean() >= 0.95 and cos.min() > 0.999, cos


def test_the_other_views_loss_as_baseline_is_biased():
    """Yesterday's estimator (view loss, leave-one-out over the 2 views) fails the same check."""
    cos = _cosines(8, "loo", with_credit=False)
    assert cos.mean() < 0.8, cos


def test_leave_one_out_is_refused_when_views_share_a_loss():
    theta, losses, credits = _contrastive_problem(0, 2, 3)
    idx = torch.zeros(2, 2, dtype=torch.long)
    lp = theta.log_softmax(-1)[torch.arange(2), idx].reshape(-1)
    views = Views(torch.zeros(1), 2, log_prob=lp, entropy=categorical_entropy(theta), credit=credits(idx))
    with pytest.raises(ConfigError, match="loo"):
        _method("loo").objective(losses(idx), views)


def test_credit_changes_exactly_as_the_summed_loss_when_one_crop_changes():
    """credit_c - sum_j L_j must not depend on view c's embedding."""
    g = torch.Generator().manual_seed(1)
    z = torch.randn(10, 4, generator=g, dtype=torch.float64)
    for c in (0, 3, 7):
        z2 = z.clone()
        z2[c] = torch.randn(4, generator=g, dtype=torch.float64)
        d_sum = nt_xent(z2, TEMPERATURE).sum() - nt_xent(z, TEMPERATURE).sum()
        d_credit = nt_xent_credit(z2, TEMPERATURE)[c] - nt_xent_credit(z, TEMPERATURE)[c]
        torch.testing.assert_close(d_credit, d_sum)
    torch.testing.assert_close(nt_xent_credit(z.float(), 0.01).isfinite().all(), torch.tensor(True))


@pytest.mark.parametrize("baseline,n_views", [("auto", 1), ("auto", 2), ("loo", 3), ("ema", 2), ("none", 1)])
def test_supervised_estimator_matches_the_exact_gradient(baseline, n_views):
    """Each view's loss depends on its own crop alone: its loss is its credit (no task credit)."""
    cos = []
    for seed in range(20):
        b, k = ((2, 3), (3, 2), (2, 4))[seed % 3] if n_views < 3 else (2, 2)
        g = torch.Generator().manual_seed(100 + seed)
        cost = torch.rand(b, k, generator=g, dtype=torch.float64) * 3 + 1  # loss of crop k of image i
        theta = torch.randn(b, k, generator=g, dtype=torch.float64)
        rows = torch.arange(b)
        expected, exact = _gradients(theta, n_views, lambda idx, cost=cost, rows=rows: cost[rows, idx].reshape(-1),
                                     lambda idx: None, baseline)
        cos.append(F.cosine_similarity(expected.flatten(), exact.flatten(), dim=0).item())
    cos = torch.tensor(cos)
    assert cos.mean() >= 0.95 and cos.min() > 0.999, cos


@pytest.mark.parametrize("benchmark,shared", [("clutter-contrastive", True), ("clutter-crop", False)])
def test_the_trainer_hands_instaaug_the_tasks_credit(tmp_path, benchmark, shared):
    tiny = {"data.n_train": 32, "data.n_test": 8, "train.batch_size": 8, "model.width": 0.25, "run.device": "cpu",
            "run.progress": False, "pretrain_epochs": 0}
    if shared:
        tiny.update({"model.proj_hidden": 16, "model.proj_dim": 8})
    cfg = resolve(benchmark, "instaaug", 0, tiny)
    trainer = Trainer(create_benchmark(benchmark, cfg.settings), "instaaug", cfg.hparams, 0, tmp_path,
                      {"run_id": "t"})
    seen = {}
    objective = trainer.method.objective

    def recording(per_sample, views):
        seen.update(loss=per_sample.detach(), credit=views.credit)
        return objective(per_sample, views)

    trainer.method.objective = recording
    trainer.model.train()
    trainer._step(torch.arange(8))
    if not shared:
        assert seen["credit"] is None
        return
    credit, loss = seen["credit"], seen["loss"]
    assert credit.shape == loss.shape == (16,) and not credit.requires_grad
    pair = loss + loss.roll(8)  # own + partner's loss, plus each crop's effect as a negative (> 0)
    assert (credit > pair).all() and torch.isfinite(credit).all()
