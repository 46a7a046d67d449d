"""Class-specific InstaAug (Table 1's "class-specific" row) learns its per-class crop table.

A row of the table gets the gradient of its own class's samples only, about B/C of a batch:
at phi's 1e-5 it stays where it started, so that row of Table 1 measured a fixed distribution.
Here, on a problem where classes need different crops (even classes' object top-left, odd
classes' bottom-right; a crop that keeps less than half of it costs a high loss), the settings
Table 1 runs with must move every class's distribution, towards its own object.

C = 10 classes and batches of B = 100: a row then sees B/C = 10 samples a step, so 100 steps
give each class 1000 samples, two Tiny-ImageNet epochs' worth (500 images per class).
"""

from __future__ import annotations

import pytest
import torch

from augbench.methods import MethodContext, StepContext, create_method
from augbench.runs import resolve
from augbench.sweep.grid import load_grid

C, B, STEPS = 10, 100, 100
OBJECTS = torch.tensor([[0.05, 0.05, 0.40, 0.40], [0.60, 0.60, 0.95, 0.95]])  # (y0, x0, y1, x1) fractions


def _keeps(boxes, obj):
    """Does each (center_y, center_x, h, w) box keep at least half of the matching object box?"""
    y0, y1 = boxes[:, 0] - boxes[:, 2] / 2, boxes[:, 0] + boxes[:, 2] / 2
    x0, x1 = boxes[:, 1] - boxes[:, 3] / 2, boxes[:, 1] + boxes[:, 3] / 2
    iy = (torch.minimum(y1, obj[:, 2]) - torch.maximum(y0, obj[:, 0])).clamp(min=0)
    ix = (torch.minimum(x1, obj[:, 3]) - torch.maximum(x0, obj[:, 1])).clamp(min=0)
    return ix * iy / ((obj[:, 2] - obj[:, 0]) * (obj[:, 3] - obj[:, 1])) >= 0.5


def _table1_class_specific() -> dict:
    runs = load_grid("table1").expand(seeds=[0]).runs
    (run,) = [r for r in runs if r.label == "InstaAug class-specific"]
    return run.config.hparams


def _train(hparams: dict, steps: int = STEPS, seed: int = 0):
    """The table before and after `steps` steps at phi's full learning rate (after pretraining and warm-up)."""
    torch.manual_seed(seed)
    m = create_method("instaaug", MethodContext(C, (3, 64, 64), frozenset({"crop"}), steps_per_epoch=steps),
                      **hparams)
    opt = m.make_optimizer()
    epoch = m.hp["pretrain_epochs"] + m.hp["warmup_epochs"]
    m.begin_epoch(epoch)
    boxes, x = m.distribution.boxes, torch.zeros(B, 3, 4, 4)  # the loss below needs the crop's box, not pixels
    before = m.conditioner.table.detach().clone()
    for step in range(steps):
        y = torch.randint(C, (B,))
        views = m.sample(x, StepContext(y=y, training=True, epoch=epoch, step=epoch * steps + step), 1)
        loss = torch.where(_keeps(boxes[views.info["index"]], OBJECTS[y % 2]), 0.5, 3.0)
        objective, _ = m.objective(loss, views)
        opt.zero_grad()
        objective.backward()
        opt.step()
    return m, before, m.conditioner.table.detach().clone()


def _own_minus_other(m, delta):
    """Per class: mean logit change of crops keeping only its own object minus of those keeping only the other's."""
    boxes = m.distribution.boxes
    keeps = torch.stack([_keeps(boxes, o.expand(len(boxes), 4)) for o in OBJECTS])  # (2, K)
    parity = torch.arange(C) % 2
    own, other = keeps[parity], keeps[1 - parity]
    only_own, only_other = (own & ~other).float(), (other & ~own).float()
    return (delta * only_own).sum(1) / only_own.sum(1) - (delta * only_other).sum(1) / only_other.sum(1)


def test_table1_class_specific_runs_with_the_public_table_settings():
    hp = _table1_class_specific()
    m = create_method("instaaug", MethodContext(200, (3, 64, 64), frozenset({"crop"})), **hp)
    assert (m.phi_lr, m.lambda0, m.h_min, m.h_max) == (0.1, 0.5, 3.0, 4.0)
    assert m.hp["optimizer"] == "sgd" and m.hp["pretrain_epochs"] == 10 and m.hp["warmup_epochs"] == 10


@pytest.mark.parametrize("conditioning,lr,lambda0", [("input", 1e-5, 0.2), ("input-free", 1e-5, 0.2),
                                                     ("class", 0.1, 0.5)])
def test_phi_lr_and_lambda0_default_by_conditioning(conditioning, lr, lambda0):
    hp = resolve("tinyimagenet-crop", "instaaug", 0, {"conditioning": conditioning}).hparams
    assert hp["lr"] is None and hp["lambda0"] is None  # "by conditioning", resolved by the method
    m = create_method("instaaug", MethodContext(200, (3, 64, 64), frozenset({"crop"})), **hp)
    assert (m.phi_lr, m.lambda0) == (lr, lambda0) and m.lam.value == pytest.approx(lambda0)
    assert m.make_optimizer().param_groups[0]["lr"] == lr
    explicit = create_method("instaaug", MethodContext(200, (3, 64, 64), frozenset({"crop"})),
                             **{**hp, "lr": 0.03, "lambda0": 0.1})
    assert (explicit.phi_lr, explicit.lambda0) == (0.03, 0.1)


def test_the_class_table_learns_class_specific_crops():
    m, before, after = _train(_table1_class_specific())
    delta = after - before
    p0, p1 = before.softmax(-1), after.softmax(-1)
    moved = 0.5 * (p1 - p0).abs().sum(-1)  # total variation per class
    assert delta.abs().max() > 0.1 and (moved > 0.01).all(), moved
    toward_own = _own_minus_other(m, delta)  # every class raised the crops that keep ITS object
    assert (toward_own > 0.02).all(), toward_own
    keeps = torch.stack([_keeps(m.distribution.boxes, o.expand(len(m.distribution.boxes), 4)) for o in OBJECTS])
    mass = p1 @ keeps.float().T  # (C, 2): probability that a crop keeps the top-left / bottom-right object
    even, odd = mass[0::2].mean(0), mass[1::2].mean(0)
    assert even[0] > even[1] and odd[1] > odd[0]  # the classes' distributions differ, each way round


def test_at_the_papers_phi_lr_the_table_stays_where_it_started():
    """Why the class table needs its own settings: at 1e-5 (yesterday's default) nothing moves."""
    m, before, after = _train({**_table1_class_specific(), "lr": 1e-5, "lambda0": 0.2})
    assert (after - before).abs().max() < 1e-3
