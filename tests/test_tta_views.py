"""Identical test views are evaluated once: forwards counted by a hook, predictions unchanged."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from augbench.datasets.base import Split
from augbench.methods import MethodContext, StepContext, create_method, list_methods
from augbench.models import build_model
from augbench.runs import execute, resolve
from augbench.tasks.contrastive import ContrastiveModel, SimCLRColor, encode_split, projection_head
from augbench.tasks.evaluate import as_views, evaluate_classifier, tta_logits, views_evaluated
from augbench.tasks.fixed_classifier import evaluate_frozen

CPU = torch.device("cpu")
CROP = MethodContext(4, (3, 32, 32), frozenset({"crop", "policy"}))
COLOR = MethodContext(4, (3, 32, 32), frozenset({"color"}))


def _counted(model: nn.Module) -> list[int]:
    """Images per forward call of `model`, appended by a forward hook."""
    seen: list[int] = []
    model.register_forward_hook(lambda m, args, out: seen.append(args[0].shape[0]))
    return seen


def _classifier(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model("small_cnn", 4, width=0.25).eval()


def _split(n: int = 12) -> Split:
    gen = torch.Generator().manual_seed(0)
    return Split(torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=gen),
                 torch.randint(4, (n,), generator=gen))


def test_which_methods_declare_identical_test_views():
    assert create_method("none", CROP).identical_test_views()
    assert create_method("none", CROP, flip=True).identical_test_views()  # flips are drawn in training only
    assert create_method("randaugment", CROP, num_ops=0).identical_test_views()
    assert not create_method("randaugment", CROP).identical_test_views()
    assert create_method("random-color", COLOR, hue=0.0, saturation=0.0, value=0.0).identical_test_views()
    assert not create_method("random-color", COLOR).identical_test_views()
    # policies draw their test views from the training distribution (Table 2's TTA): not identical
    for name in ("autoaugment", "trivialaugment", "fast-autoaugment", "random-crop"):
        assert not create_method(name, CROP).identical_test_views(), name


@pytest.mark.parametrize("name", [n for n in list_methods() if n in ("none", "randaugment", "random-color")])
def test_declared_identical_views_are_identical(name):
    hp = {"randaugment": {"num_ops": 0}, "random-color": {"hue": 0.0, "saturation": 0.0, "value": 0.0}}
    method = create_method(name, COLOR if name == "random-color" else CROP, **hp.get(name, {})).eval()
    x = torch.rand(5, 3, 32, 32)
    views = method.test_views(x, 4, StepContext(training=False)).view(4, 5, 3, 32, 32)
    assert all(torch.equal(views[v], views[0]) for v in range(4))


def test_tta_of_none_runs_one_forward_and_gives_the_n_view_prediction():
    model, method = _classifier(), create_method("none", CROP).eval()
    seen = _counted(model)
    x = torch.rand(6, 3, 32, 32)
    with torch.no_grad():
        once = tta_logits(model, method, x, 10, StepContext(training=False))
        assert seen == [6]  # one forward of the 6 images, not 10 x 6
        every = method.combine_views(model(method.sample(x, StepContext(training=False), 10).x).view(10, 6, -1))
    assert torch.allclose(once, every, atol=1e-6)
    assert views_evaluated(method, 10) == 1 and views_evaluated(method, 0) == 0


def test_tta_of_drawn_views_still_runs_every_view():
    model, method = _classifier(), create_method("random-crop", CROP).eval()
    seen = _counted(model)
    with torch.no_grad():
        tta_logits(model, method, torch.rand(6, 3, 32, 32), 10, StepContext(training=False))
    assert seen == [60] and views_evaluated(method, 10) == 10


def test_combination_rules_see_n_copies():
    """Augerino's mean log-probability and InstaAug's top-k weighting get n identical outputs."""
    outs = torch.randn(1, 3, 4)
    full = as_views(outs, 5)
    assert full.shape == (5, 3, 4) and torch.equal(full[4], outs[0])
    assert as_views(torch.randn(5, 3, 4), 5).shape == (5, 3, 4)


def test_classification_evaluation_counts_and_records_the_views():
    model, split = _classifier(), _split(12)
    seen = _counted(model)
    res = evaluate_classifier(model, create_method("none", CROP), split, CPU, batch_size=12, tta_views=10,
                              inspect_all=False)
    assert seen == [12, 12]  # the plain pass and ONE test-time pass
    assert res.summary()["tta_views_evaluated"] == 1.0
    assert torch.equal(res.tta_correct, res.correct)  # identity views: the plain predictions
    seen.clear()
    res = evaluate_classifier(model, create_method("random-crop", CROP), split, CPU, batch_size=12, tta_views=10,
                              inspect_all=False)
    assert seen == [12, 120] and res.summary()["tta_views_evaluated"] == 10.0


def test_fixed_classifier_scores_identical_views_once_for_every_n():
    a, b = _classifier(0), _classifier(1)
    seen_a, seen_b = _counted(a), _counted(b)
    res = evaluate_frozen({"": a, "other": b}, create_method("none", CROP), _split(12), CPU, 12, [1, 4, 10])
    assert seen_a == [12, 12] and seen_b == [12, 12]  # plain + one view, shared by n = 1, 4 and 10
    for tag in ("", "other"):
        for n in (1, 4, 10):
            assert torch.equal(res.tta_correct[tag][n], res.correct[tag])
    seen_a.clear()
    evaluate_frozen({"": a}, create_method("random-crop", CROP), _split(12), CPU, 12, [1, 4])
    assert sum(seen_a) == 12 + 12 + 12 * 4  # plain, n = 1 and n = 4 (in chunks of 12)


def test_contrastive_tta_encodes_identical_views_once():
    torch.manual_seed(0)
    net = build_model("small_cnn", 8, width=0.25)
    net.head = projection_head(net.backbone.out_features, 16, 8)
    model = ContrastiveModel(net, SimCLRColor()).eval()
    seen = _counted(model.net.backbone)
    ds_split = _split(6)
    enc = encode_split(model, create_method("none", CROP).eval(), ds_split, CPU, batch_size=6, chunk=6,
                       tta_views=5, inspect=False)
    assert seen == [6, 6]  # plain features, then one view for all 5
    assert torch.allclose(enc.tta_features, enc.features, atol=1e-6)


def test_a_run_records_the_views_evaluated(tmp_path, tiny):
    metrics = execute(resolve("glyphs-rotation", "none", 0, {**tiny, "eval.tta_views": 3}), tmp_path / "none")
    assert metrics["tta_views_evaluated"] == 1.0
    metrics = execute(resolve("glyphs-rotation", "random-rotation", 0, {**tiny, "eval.tta_views": 3}),
                      tmp_path / "rot")
    assert metrics["tta_views_evaluated"] == 3.0
