"""Contrastive task (paper Section 6, Table 5): NT-Xent, two views, fixed colour augmentations, probe."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from test_datasets_tinyimagenet import make_tree as make_tinyimagenet

from augbench.errors import ConfigError
from augbench.methods import MethodContext, create_method
from augbench.runs import execute, resolve
from augbench.settings import create_benchmark
from augbench.tasks.contrastive import SimCLRColor, encode_split, knn_accuracy, nt_xent, train_linear_probe
from augbench.train.trainer import Trainer

TINY = {"data.n_train": 48, "data.n_test": 16, "train.epochs": 1, "train.batch_size": 8, "eval.batch_size": 16,
        "eval.tta_views": 2, "eval.probe_epochs": 20, "model.width": 0.25, "model.proj_hidden": 32,
        "model.proj_dim": 16, "run.device": "cpu", "run.progress": False}


# ----------------------------------------------------------------------------- NT-Xent
def _nt_xent_direct(z, t):
    """Chen et al. 2020 eq. 1 written out: l(i, j) = -log exp(s_ij / t) / sum_{k != i} exp(s_ik / t)."""
    n = z.shape[0]
    zn = z / z.norm(dim=1, keepdim=True)
    out = []
    for i in range(n):
        j = (i + n // 2) % n
        sims = [float(zn[i] @ zn[k]) / t for k in range(n) if k != i]
        out.append(-float(zn[i] @ zn[j]) / t + math.log(sum(math.exp(s) for s in sims)))
    return torch.tensor(out)


def test_nt_xent_equals_direct_computation():
    torch.manual_seed(0)
    z = torch.randn(10, 7, dtype=torch.float64)
    loss = nt_xent(z, temperature=0.3)
    assert loss.shape == (10,)
    assert torch.allclose(loss, _nt_xent_direct(z, 0.3).double(), atol=1e-10)
    # the public code's form (two cross-entropies over [x0.x1, x0.x0 - 1e9 I]) has the same mean
    x0, x1 = F.normalize(z[:5], dim=1), F.normalize(z[5:], dim=1)
    eye = torch.eye(5, dtype=z.dtype) * 1e9
    target = torch.arange(5)
    ref = (F.cross_entropy(torch.cat([x0 @ x1.T, x0 @ x0.T - eye], 1) / 0.3, target)
           + F.cross_entropy(torch.cat([x1 @ x0.T, x1 @ x1.T - eye], 1) / 0.3, target)) / 2
    # (the public code divides by tau after the mask; the -1e9 entries vanish either way)
    assert torch.allclose(loss.mean(), ref, atol=1e-10)


def test_nt_xent_gradient_and_odd_batch():
    z = torch.randn(6, 4, requires_grad=True)
    nt_xent(z).mean().backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
    with pytest.raises(ConfigError):
        nt_xent(torch.randn(5, 4))
    aligned = torch.cat([torch.eye(4), torch.eye(4)])  # both views identical, images orthogonal
    assert nt_xent(aligned).max() < nt_xent(torch.randn(8, 4)).min() + 1.0


# ----------------------------------------------------------------------------- views
def _trainer(tmp_path, method="random-crop", **extra):
    cfg = resolve("clutter-contrastive", method, 0, {**TINY, **extra})
    (tmp_path / "run").mkdir(exist_ok=True)
    return Trainer(create_benchmark("clutter-contrastive", cfg.settings), method, cfg.hparams, 0, tmp_path / "run",
                   {"run_id": "t"})


def _capture(trainer):
    """One training step; returns (the method's views, what the encoder received)."""
    seen = {}
    sample = trainer.method.sample

    def recording_sample(x, ctx, n_views=1):
        views = sample(x, ctx, n_views)
        seen["views"] = views.x.detach().clone()
        return views

    trainer.method.sample = recording_sample
    hook = trainer.model.net.register_forward_pre_hook(lambda m, a: seen.setdefault("encoder", a[0].detach().clone()))
    trainer.model.train()
    trainer._step(torch.arange(8))
    hook.remove()
    return seen["views"], seen["encoder"]


def test_two_different_views_per_image_reach_the_encoder(tmp_path):
    trainer = _trainer(tmp_path, **{"train.jitter_p": 0.0, "train.grayscale_p": 0.0})
    assert trainer.task.n_views == 2
    views, encoder_in = _capture(trainer)
    assert views.shape == (16, 3, 32, 32)
    first, second = views[:8], views[8:]
    assert all(not torch.equal(first[i], second[i]) for i in range(8)), "the two views of an image coincide"
    assert torch.equal(encoder_in, views)  # colour augmentations off: the encoder sees the method's views


def test_colour_augmentations_apply_after_the_method(tmp_path):
    trainer = _trainer(tmp_path, **{"train.grayscale_p": 1.0, "train.jitter_p": 0.0})
    views, encoder_in = _capture(trainer)
    assert not torch.equal(encoder_in, views)
    assert torch.allclose(encoder_in[:, 0], encoder_in[:, 1]) and torch.allclose(encoder_in[:, 1], encoder_in[:, 2])
    grey = 0.2989 * views[:, 0] + 0.587 * views[:, 1] + 0.114 * views[:, 2]
    assert torch.allclose(encoder_in[:, 0], grey, atol=1e-6)


def test_simclr_colour_is_per_image_differentiable_and_in_range():
    torch.manual_seed(0)
    x = torch.rand(1, 3, 16, 16).expand(64, 3, 16, 16).contiguous().requires_grad_(True)
    out = SimCLRColor(0.4, 0.4, 0.4, 0.1, p=0.8, grayscale_p=0.1)(x)
    assert out.min() >= 0 and out.max() <= 1
    flat = out.detach().flatten(1)
    assert torch.unique(flat, dim=0).shape[0] > 32  # one image, many different jitters
    untouched = (flat == x.detach().flatten(1)).all(1).float().mean().item()
    assert 0.02 < untouched < 0.5  # about (1 - 0.8) * (1 - 0.1) = 18% keep the original
    out.sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    off = SimCLRColor(0, 0, 0, 0, p=1.0, grayscale_p=0.0)
    assert torch.equal(off(x.detach()), x.detach())


# ----------------------------------------------------------------------------- evaluation
def test_knn_accuracy_known_values():
    mem = torch.tensor([[0.0], [0.1], [0.2], [5.0], [5.1], [9.0]])
    y = torch.tensor([0, 0, 0, 1, 1, 0])
    q = torch.tensor([[0.05], [5.05], [8.0]])
    assert knn_accuracy(mem, y, q, torch.tensor([0, 1, 1]), k=1, num_classes=2) == pytest.approx(2 / 3)
    # leave-one-out, k=2: the three points near 0 are right; 5.0 -> {5.1: 1, 9.0: 0} and
    # 5.1 -> {5.0: 1, 9.0: 0} are 1:1 ties that go to the smaller label 0 (wrong); 9.0 -> {5.1, 5.0} -> 1 (wrong)
    assert knn_accuracy(mem, y, mem, y, k=2, num_classes=2, leave_one_out=True) == pytest.approx(3 / 6)


def test_linear_probe_learns_separable_features_without_touching_them():
    torch.manual_seed(0)
    centres = torch.randn(3, 8) * 4
    y = torch.arange(3).repeat(40)
    feats = centres[y] + torch.randn(120, 8)
    kept = feats.clone()
    probe = train_linear_probe(feats, y, 3, epochs=60, lr=1e-2, lr_end=1e-4, batch_size=32)
    assert (probe(feats).argmax(1) == y).float().mean() > 0.95
    assert torch.equal(feats, kept) and not any(p.requires_grad for p in probe.parameters())


def test_probe_uses_frozen_encoder_and_tta_uses_method_views(tmp_path):
    trainer = _trainer(tmp_path, method="none")
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.model.train()
    metrics = trainer.task.evaluate(trainer.model, trainer.method, trainer.dataset.test, trainer.device,
                                    final=True).metrics
    after = trainer.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "evaluation changed the encoder"
    assert trainer.model.training  # mode restored
    assert {"acc", "tta_acc", "knn_acc", "loss"} <= set(metrics)
    # "none" gives identity test views, so the TTA-averaged features are the plain ones
    trainer.model.eval()
    enc = encode_split(trainer.model, trainer.method, trainer.dataset.test, trainer.device, 8, 16, tta_views=3)
    assert torch.allclose(enc.tta_features, enc.features, atol=1e-5)


def test_tta_averages_features_of_n_views():
    """With random crops, TTA features are the mean of the encoder on exactly n views per image."""
    from augbench.datasets.clutter import make_clutter
    from augbench.models import build_model
    from augbench.tasks.contrastive import ContrastiveModel, projection_head

    torch.manual_seed(0)
    net = build_model("small_cnn", 8, width=0.25)
    net.head = projection_head(net.backbone.out_features, 16, 8)
    model = ContrastiveModel(net, SimCLRColor()).eval()
    calls = []
    model.net.backbone.register_forward_pre_hook(lambda m, a: calls.append(a[0].shape[0]))
    method = create_method("random-crop", MethodContext(4, (3, 32, 32), frozenset({"crop"}))).eval()
    ds = make_clutter(4, 6, 32, 4, seed=0, cache=False)
    enc = encode_split(model, method, ds.test, torch.device("cpu"), batch_size=6, chunk=6, tta_views=5, inspect=False)
    assert calls == [6] + [6] * 5  # plain pass, then 5 views of 6 images
    assert enc.tta_features.shape == enc.features.shape == (6, model.net.backbone.out_features)
    assert not torch.allclose(enc.tta_features, enc.features)  # crops change the features


# ----------------------------------------------------------------------------- benchmarks end to end
def test_clutter_contrastive_end_to_end(tmp_path):
    metrics = execute(resolve("clutter-contrastive", "random-crop", 0, TINY), tmp_path / "run")
    for key in ("acc", "tta_acc", "knn_acc"):
        assert 0.0 <= metrics[key] <= 1.0
    assert math.isfinite(metrics["loss"]) and "keeps_object" in metrics


def test_tinyimagenet_contrastive_end_to_end_on_a_fake_tree(tmp_path):
    overrides = {"data.root": str(make_tinyimagenet(tmp_path / "tiny-imagenet-200")), "train.epochs": 1,
                 "train.batch_size": 4, "eval.batch_size": 8, "eval.tta_views": 2, "eval.probe_epochs": 5,
                 "model.width": 0.125, "model.proj_hidden": 16, "model.proj_dim": 8, "train.val_fraction": 0.3,
                 "run.device": "cpu", "run.progress": False}
    metrics = execute(resolve("tinyimagenet-contrastive", "random-crop", 0, overrides), tmp_path / "run")
    assert 0.0 <= metrics["tta_acc"] <= 1.0 and 0.0 <= metrics["acc"] <= 1.0
