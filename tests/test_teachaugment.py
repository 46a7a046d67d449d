"""TeachAugment: the EMA teacher, the sign of the adversarial update, state and resume, a CPU run."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from augbench.methods import MethodContext, StepContext, create_method
from augbench.methods.teachaugment import (
    GroupBatchNorm1d,
    GroupBatchNorm2d,
    affine_rotation,
    batch_groups,
    fold_unit,
    non_saturating_loss,
    train_mode,
)
from augbench.runs import execute, resolve

K = 3


def toy_classifier(seed: int = 0) -> nn.Module:
    """A tiny image classifier with BatchNorm (so running statistics can be checked)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, K))


def make(space: str = "both", family: str = "color", **hp) -> torch.nn.Module:
    ctx = MethodContext(num_classes=K, image_shape=(3, 8, 8), families=frozenset({family}))
    return create_method("teachaugment", ctx, space=space, **hp)


def batch(n: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, 8, 8, generator=g) * 0.6 + 0.2, torch.randint(0, K, (n,), generator=g)


def test_helpers():
    x = torch.tensor([-0.25, 0.0, 0.3, 1.0, 1.25, 2.5], requires_grad=True)
    y = fold_unit(x)
    assert torch.allclose(y, torch.tensor([0.25, 0.0, 0.3, 1.0, 0.75, 0.5]))
    y.sum().backward()
    assert x.grad.tolist() == [-1.0, 1.0, 1.0, 0.0, -1.0, 1.0]
    angle = torch.tensor(0.3)
    theta = torch.tensor([[[angle.cos(), -angle.sin(), 0.0], [angle.sin(), angle.cos(), 0.0]]])
    assert torch.allclose(affine_rotation(theta), angle.view(1))


def test_teacher_ema_is_the_hand_computation():
    model = toy_classifier()
    method = make(ema_decay=0.9)
    method.attach_classifier(model)
    assert method.teacher is not model and not any(p.requires_grad for p in method.teacher.parameters())
    with torch.no_grad():
        for p in method.teacher.parameters():  # the first update copies, whatever the teacher held
            p.add_(1.0)
    method.update_teacher()
    for t, m in zip(method.teacher.parameters(), model.parameters()):
        assert torch.equal(t, m)
    old = [t.clone() for t in method.teacher.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p))
    method.update_teacher()
    for t, t0, m in zip(method.teacher.parameters(), old, model.parameters()):
        torch.testing.assert_close(t, 0.9 * t0 + 0.1 * m, rtol=1e-6, atol=1e-7)
    assert int(method.ema_updates) == 2


def test_update_is_descent_on_published_loss_and_leaves_classifier_alone():
    """The step equals -lr * autograd of NS_eps(target) + CE(teacher) + color_reg * SWD, computed here."""
    torch.manual_seed(0)
    model, eps, reg_w = toy_classifier(0), 0.2, 10.0
    method = make(label_smoothing=eps, color_reg=reg_w)
    method.attach_classifier(model)
    method.teacher.load_state_dict(toy_classifier(1).state_dict())  # a teacher that differs from the target
    x, y = batch()
    params = [p for p in method.augmenter.parameters() if p.requires_grad]
    lr = 1e-3
    method._optimizer = torch.optim.SGD(params, lr=lr)
    before = [p.detach().clone() for p in params]
    stats = {k: v.clone() for k, v in model.state_dict().items()}

    torch.manual_seed(5)  # the draws of the step below, through an independent formula
    norms = [m for m in [*model.modules(), *method.teacher.modules()] if isinstance(m, nn.BatchNorm2d)]
    for m in norms:
        m.track_running_stats = False
    with train_mode(method.augmenter):
        aug, reg = method.augmenter(x, y, regularize=True)
    target = (1 - eps) * F.one_hot(y, K).float() + eps / K
    ns = -(target * torch.log(1 - model(aug).softmax(-1))).sum(-1).mean()
    loss = ns + F.cross_entropy(method.teacher(aug), y) + reg_w * reg
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    for m in norms:
        m.track_running_stats = True

    torch.manual_seed(5)
    method.adversarial_step(x, y)
    for p, b, g in zip(params, before, grads):
        expected = b - lr * (torch.zeros_like(b) if g is None else g)
        torch.testing.assert_close(p.detach(), expected, rtol=1e-5, atol=1e-7)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    # the classifier and its teacher get no gradient, and BatchNorm statistics stay as they were
    assert all(p.grad is None for p in model.parameters())
    assert all(p.grad is None for p in method.teacher.parameters())
    assert all(p.grad is None for p in params)  # nothing left for the trainer's optimizer step
    for k, v in model.state_dict().items():
        assert torch.equal(v, stats[k]), k


def test_non_saturating_loss_descent_raises_the_cross_entropy():
    logits = torch.randn(8, K, requires_grad=True)
    y = torch.randint(0, K, (8,))
    (g,) = torch.autograd.grad(non_saturating_loss(logits, y, 0.0), logits)
    stepped = (logits - 0.1 * g).detach()
    assert (F.cross_entropy(stepped, y, reduction="none") > F.cross_entropy(logits.detach(), y, reduction="none")).all()


class ChannelReader(nn.Module):
    """Two-class logits from the mean of one colour channel: +-a (mean - 1/2)."""

    def __init__(self, channel: int, a: float = 8.0) -> None:
        super().__init__()
        self.channel, self.a = channel, a
        self.dummy = nn.Parameter(torch.zeros(()))  # a parameter, so the EMA has something to average

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x[:, self.channel].mean((1, 2)) - 0.5 + self.dummy
        return torch.stack([self.a * m, -self.a * m], dim=-1)


def test_updates_make_views_harder_for_the_target_and_easier_for_the_teacher():
    """Target reads red, teacher reads green: the model can fool one and help the other independently."""
    torch.manual_seed(0)
    ctx = MethodContext(num_classes=2, image_shape=(3, 8, 8), families=frozenset({"color"}))
    method = create_method("teachaugment", ctx, color_reg=0.0, dropout=0.0, lr=1e-2, label_smoothing=0.0)
    method.attach_classifier(ChannelReader(0))
    method.teacher = ChannelReader(1).requires_grad_(False)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(64, 3, 8, 8, generator=g) * 0.5 + 0.25
    y = (x[:, 0].mean((1, 2)) < 0.5).long()  # the target is right on clean images

    def losses() -> tuple[float, float]:
        torch.manual_seed(123)
        views = torch.cat([method.draw(x, y) for _ in range(8)])
        yy = y.repeat(8)
        return (F.cross_entropy(method._classifier(views), yy).item(),
                F.cross_entropy(method.teacher(views), yy).item())

    target0, teacher0 = losses()
    for _ in range(40):
        method.adversarial_step(x, y)
    target1, teacher1 = losses()
    assert target1 > target0 + 0.05, (target0, target1)
    assert teacher1 < teacher0 - 0.05, (teacher0, teacher1)


def test_teacher_gets_no_gradient_through_a_training_step():
    model = toy_classifier()
    method = make(space="geometric", family="crop", update_every=1)
    method.attach_classifier(model)
    x, y = batch()
    method.train()
    views = method.sample(x, StepContext(y=y, training=True, step=0))
    assert "aug_loss_adv" in views.info and not views.x.requires_grad
    loss, logs = method.objective(F.cross_entropy(model(views.x), y, reduction="none"), views)
    loss.backward()
    assert "aug_loss_teacher" in logs
    assert all(p.grad is not None for p in model.parameters())
    assert all(p.grad is None for p in method.teacher.parameters())
    assert all(p.grad is None for p in method.augmenter.parameters())


def test_the_default_model_learns_both_parts_on_every_family():
    """The paper's augmentation model is colour then geometric everywhere; auto keeps the family's part."""
    for family in ("crop", "rotation", "color"):
        ctx = MethodContext(num_classes=K, image_shape=(3, 8, 8), families=frozenset({family}))
        assert create_method("teachaugment", ctx).parts == ("color", "geometric")
    assert make("auto", family="crop").parts == ("geometric",) and make("auto", family="color").parts == ("color",)


@pytest.mark.parametrize("shape, bn", [((10, 6), GroupBatchNorm1d), ((10, 4, 3, 5), GroupBatchNorm2d)])
def test_group_batch_norm_is_one_batch_norm_pass_per_group(shape, bn):
    torch.manual_seed(0)
    norm = bn(shape[1], track_running_stats=False)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2.0)
        norm.bias.uniform_(-1.0, 1.0)
    x = torch.randn(*shape) * 3 + 1
    groups = torch.tensor([0, 0, 2, 1, 1, 2, 2, 0, 1, 1])
    with batch_groups(norm, groups):
        out = norm(x)
    for g in range(3):
        rows = groups == g
        torch.testing.assert_close(out[rows], norm(x[rows]))  # outside the block: plain batch statistics
    assert norm.groups is None


def test_with_a_replay_buffer_each_group_of_8_is_its_own_forward_pass():
    """The public code augments each 8-image chunk in its own pass once the buffer holds a copy: an
    image's augmentation must not depend on the images of other groups (BatchNorm statistics)."""
    method = make(dropout=0.0)
    method.train()
    with torch.no_grad():  # away from the identity it starts at (zero output layers)
        for p in method.augmenter.parameters():
            p.add_(0.5 * torch.randn_like(p))
    x, y = batch(n=24)
    other = x.clone()
    other[8:] = torch.rand(16, 3, 8, 8)  # the other groups' images changed, the first group's kept
    outs = {}
    for replay in (False, True):
        if replay:
            method.replay.append(method._frozen_copy())
        for name, images in (("same", x), ("other", other)):
            torch.manual_seed(4)
            outs[replay, name] = method.draw(images, y)
    assert torch.equal(outs[True, "same"][:8], outs[True, "other"][:8])
    assert not torch.allclose(outs[False, "same"][:8], outs[False, "other"][:8])  # one pass: shared statistics


def test_sample_is_deterministic_for_a_seed():
    outs = []
    for _ in range(2):
        model = toy_classifier()
        method = make(update_every=1)
        method.attach_classifier(model)
        method.train()
        x, y = batch()
        torch.manual_seed(7)
        for step in range(3):
            v = method.sample(x, StepContext(y=y, training=True, step=step))
        outs.append((v.x, [p.detach().clone() for p in method.parameters()]))
    assert torch.equal(outs[0][0], outs[1][0])
    assert all(torch.equal(a, b) for a, b in zip(outs[0][1], outs[1][1]))


def test_state_dict_round_trip_keeps_ema_replay_and_optimizer():
    model = toy_classifier()
    method = make(update_every=1, replay_every=1)
    method.attach_classifier(model)
    method.train()
    x, y = batch()
    torch.manual_seed(0)
    for epoch in range(2):
        for step in range(2):
            method.sample(x, StepContext(y=y, training=True, step=step))
        method.end_epoch(epoch, {})
    state = copy.deepcopy(method.state_dict())  # as a checkpoint file would: no tensor shared with the live run
    opt_state = copy.deepcopy(method.make_optimizer().state_dict())
    assert len(method.replay) == 2 and int(state["ema_updates"]) == 4

    fresh_model = toy_classifier(3)
    fresh_model.load_state_dict(model.state_dict())
    fresh = make(update_every=1, replay_every=1)
    fresh.attach_classifier(fresh_model)
    fresh.load_state_dict(state)
    fresh.make_optimizer().load_state_dict(opt_state)
    fresh.train()
    assert len(fresh.replay) == 2
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, state[k]), k
    # continuing both gives the same teacher, augmentation model and views
    torch.manual_seed(9)
    a = method.sample(x, StepContext(y=y, training=True, step=0))
    torch.manual_seed(9)
    b = fresh.sample(x, StepContext(y=y, training=True, step=0))
    assert torch.equal(a.x, b.x)
    for k, v in fresh.state_dict().items():
        assert torch.equal(v, method.state_dict()[k]), k
    fresh.load_state_dict(make().state_dict() | {k: v for k, v in state.items() if not k.startswith("replay.")})
    assert len(fresh.replay) == 0  # a state with fewer copies (an earlier best epoch) shrinks the buffer


def texture_tiny(tiny: dict) -> dict:
    out = {k: v for k, v in tiny.items() if k not in ("data.n_train", "data.n_test")}
    return {**out, "data.n_train_per_class": 8, "data.n_test_per_class": 1, "model.width": 0.25, "run.device": "cpu"}


def test_cpu_smoke_run_end_to_end(tiny, tmp_path):
    cfg = resolve("texture-color", "teachaugment", 0, texture_tiny(tiny))
    metrics = execute(cfg, tmp_path / "run")
    assert metrics["steps"] >= 1 and 0.0 <= metrics["tta_acc"] <= 1.0
    assert "hue_width_defined" in metrics and "color_apply" in metrics
    again = execute(resolve("texture-color", "teachaugment", 0, texture_tiny(tiny)), tmp_path / "again")
    assert again == metrics  # deterministic for a seed


def test_resume_from_an_epoch_checkpoint_is_exact(tiny, resumed_run):
    """EMA teacher, augmentation model, its AdamW state and a grown replay buffer survive a checkpoint."""
    overrides = {**texture_tiny(tiny), "train.epochs": 2, "method.replay_every": 1, "method.update_every": 1}
    resumed_run(resolve("texture-color", "teachaugment", 0, overrides), stop_epoch=1)
