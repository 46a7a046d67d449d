"""`adaaug`: the policy, exploitation (k distinct ops per image) and exploration (policy-only updates)."""

from __future__ import annotations

import pytest
import torch

from augbench.errors import ConfigError
from augbench.methods import MethodContext, StepContext, create_method
from augbench.methods.adaaug import eval_mode, jitter_magnitudes
from augbench.models import build_model
from augbench.transforms.policies import ADAAUG_NAMES


def ctx(family: str = "color", size: int = 16, num_classes: int = 3) -> MethodContext:
    return MethodContext(num_classes=num_classes, image_shape=(3, size, size), families=frozenset({family}))


def setup(size: int = 16, b: int = 6, **hp):
    torch.manual_seed(0)
    model = build_model("small_cnn", 3, width=0.25).train()
    method = create_method("adaaug", ctx(size=size), **hp)
    x = torch.rand(b, 3, size, size)
    y = torch.randint(0, 3, (b,))
    return method, model, x, y, StepContext(y=y, features=model.features)


def peak(method, ops: list[str], logit: float = 60.0) -> None:
    """Make the policy put (almost) all probability on `ops`, whatever the input."""
    n = len(method.op_set.names)
    with torch.no_grad():
        method.policy(torch.zeros(1, 32))  # materialise the lazy layer (SmallCNN width 0.25: 32 features)
        method.policy.linear.weight.zero_()
        method.policy.linear.bias.zero_()
        for name in ops:
            method.policy.linear.bias[n + method.op_set.names.index(name)] = logit


def test_probabilities_sum_to_one_and_magnitudes_in_unit_interval():
    method, model, x, y, c = setup()
    method.sample(x, c)
    out = method.inspect(x, StepContext(training=False, features=model.features))
    assert out["op_probs"].shape == (6, 17)
    assert torch.allclose(out["op_probs"].sum(-1), torch.ones(6), atol=1e-6)
    assert (out["magnitudes"] >= 0).all() and (out["magnitudes"] <= 1).all()
    assert out["policy_entropy"].shape == (6,)


def test_exploitation_applies_exactly_k_distinct_ops():
    """p on {Flip, Invert}: k = 2 without replacement gives 1 - flip(x) for every image.

    With replacement some images would draw Flip twice (no change) or Invert twice.
    """
    method, model, x, y, c = setup(b=32)
    peak(method, ["Flip", "Invert"])
    v = method.sample(x, c, n_views=2)
    ops = v.info["ops"]
    assert ops.shape == (64, 2)
    assert (ops[:, 0] != ops[:, 1]).all()
    expected = (1 - x.flip(-1)).repeat(2, 1, 1, 1)
    assert torch.allclose(v.x, expected, atol=1e-6)


def test_k_three_draws_three_distinct_ops_per_image():
    method, model, x, y, c = setup(b=64, k=3, temperature=1.0)
    ops = method.sample(x, c).info["ops"]
    assert ops.shape == (64, 3)
    assert all(len(set(row)) == 3 for row in ops.tolist())
    assert torch.unique(ops).numel() > 10  # different images draw different ops


def test_temperature_and_defaults_follow_the_paper():
    method, *_ = setup()
    assert method.k == 2 and method.temperature == 3.0 and method.hp["delta"] == 0.3
    assert method.explore_every == 3 and method.explores
    with pytest.raises(ConfigError, match="exceeds"):
        create_method("adaaug", ctx(), k=18)


def test_jitter_stays_in_unit_interval_and_within_delta():
    torch.manual_seed(0)
    m = torch.rand(20000)
    j = jitter_magnitudes(m, 0.3)
    assert (j >= 0).all() and (j <= 1).all()
    assert ((j - m).abs() <= 0.3 + 1e-6).all()
    assert abs((j < m).float().mean().item() - 0.5) < 0.03
    assert torch.equal(jitter_magnitudes(m, 0.0), m)


def test_sampling_leaves_the_classifier_untouched():
    """Policy features are read in eval mode: BatchNorm statistics unchanged, train mode restored."""
    method, model, x, y, c = setup()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    method.sample(x, c)
    assert model.training and all(m.training for m in model.modules())
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_exploration_updates_the_policy_only():
    method, model, x, y, c = setup()
    method.sample(x, c)
    policy_before = {k: v.clone() for k, v in method.policy.state_dict().items()}
    model_before = {k: v.clone() for k, v in model.state_dict().items()}
    p_before = method.inspect(x, c)["op_probs"]
    logs = method.explore(x, y, c, model.head)
    assert torch.isfinite(logs["explore_loss"])
    assert not torch.equal(method.policy.linear.weight, policy_before["linear.weight"])
    assert not torch.allclose(method.inspect(x, c)["op_probs"], p_before)
    for k, v in model.state_dict().items():
        assert torch.equal(v, model_before[k]), f"exploration changed the classifier's {k}"
    assert all(p.grad is None for p in model.parameters())
    assert model.training


def test_exploration_gradients_are_the_same_in_one_pass_and_in_chunks():
    """The chunked two-pass exploration gives the one-pass (AdaAug graph) gradient, magnitudes included."""
    method, model, x, y, c = setup()
    method.sample(x, c)
    params = list(method.policy.parameters())
    method.hp["explore_chunk"] = 10_000
    torch.manual_seed(5)
    loss1, g1 = method.exploration_gradients(x, y, c, model.head, params)
    method.hp["explore_chunk"] = 7  # 6 x 17 = 102 augmented images in 15 chunks
    torch.manual_seed(5)
    loss2, g2 = method.exploration_gradients(x, y, c, model.head, params)
    assert torch.allclose(loss1, loss2)
    magnitude_rows = g1[0][:17]  # straight-through gradient of the magnitude half
    assert magnitude_rows.abs().max() > 0 and g1[0][17:].abs().max() > 0
    for a, b in zip(g1, g2):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-9)


def test_exploration_prefers_ops_that_keep_the_label():
    """A classifier that reads the left half: exploration lowers the probability of Flip."""
    torch.manual_seed(0)
    method = create_method("adaaug", ctx(size=8, num_classes=2), lr=0.05)

    class LeftHalf(torch.nn.Module):
        def features(self, x):
            return torch.stack([x[..., :4].mean((1, 2, 3)), x[..., 4:].mean((1, 2, 3))], -1)

    net = LeftHalf()
    head = torch.nn.Linear(2, 2)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[20.0, 0.0], [-20.0, 0.0]]))
        head.bias.zero_()
    x = torch.zeros(16, 3, 8, 8)
    y = torch.randint(0, 2, (16,))
    x[y == 0, :, :, :4] = 1.0
    x[y == 1, :, :, 4:] = 1.0
    c = StepContext(y=y, features=net.features)
    flip = ADAAUG_NAMES.index("Flip")
    before = method.inspect(x, c)["op_probs"][:, flip].mean()
    for _ in range(30):
        method.explore(x, y, c, head)
    after = method.inspect(x, c)["op_probs"][:, flip].mean()
    assert after < 0.5 * before


def test_eval_mode_restores_each_submodule():
    model = build_model("small_cnn", 3, width=0.25).train()
    model.backbone.body[1].eval()  # a deliberately frozen BatchNorm stays frozen afterwards
    with eval_mode(model.features):
        assert not any(m.training for m in model.modules())
    assert model.training and not model.backbone.body[1].training
    with eval_mode(lambda t: t):  # plain functions are left alone
        pass


def test_exploration_refuses_a_head_that_is_not_a_classifier():
    """Contrastive projections are not class logits: AdaAug does not apply (paper Section 6)."""
    method, model, x, y, c = setup()
    projection = torch.nn.Linear(32, 64)
    with pytest.raises(ConfigError, match="classifier head"):
        method.explore(x, y, c, projection)
    assert method.tasks == {"classification"}


def test_needs_features():
    method = create_method("adaaug", ctx())
    with pytest.raises(ConfigError, match="features"):
        method.sample(torch.rand(2, 3, 16, 16), StepContext())


# ------------------------------------------------------------------------------------ LRP


def test_lrp_policy_chooses_among_instaaug_candidates():
    method, model, x, y, c = setup(size=32, b=8, ops="lrp")
    cands = method.op_set.candidates
    assert len(method.op_set.names) == len(cands) == 17  # CIFAR-size LRP: [2, global], trimmed
    assert method.k == 1 and method.temperature == 1.0
    v = method.sample(x, c, n_views=2)
    assert v.x.shape == (16, 3, 32, 32) and v.info["ops"].shape == (16, 1)
    # the output is exactly the chosen candidate crop
    from augbench.methods.instaaug.lrp import crop_candidates

    expected = crop_candidates(x.repeat(2, 1, 1, 1), cands.boxes, v.info["ops"][:, 0])
    assert torch.allclose(v.x, expected)
    # the initial distribution is InstaAug's prior (head weights start small)
    out = method.inspect(x, StepContext(training=False, features=model.features))
    mass = out["layer_mass"].mean(0)
    prior = torch.softmax(torch.tensor([1.0, 3.0]), 0)
    assert torch.allclose(mass, prior, atol=0.15)
    assert out["crop_boxes"].shape == (8, 8, 4)


def test_lrp_exploration_updates_the_crop_probabilities():
    method, model, x, y, c = setup(size=32, b=8, ops="lrp")
    method.sample(x, c)
    p0 = method.inspect(x, c)["op_probs"]
    method.explore(x, y, c, model.head)
    assert not torch.allclose(method.inspect(x, c)["op_probs"], p0)


def test_lrp_takes_one_crop_per_image():
    with pytest.raises(ConfigError, match="k=1"):
        create_method("adaaug", ctx("crop", 32), ops="lrp", k=2)


def test_lrp_variant_runs_end_to_end_on_an_embedded_crop_benchmark(tmp_path):
    from augbench.runs import execute, resolve

    overrides = {"data.n_train": 48, "data.n_test": 16, "train.epochs": 1, "train.batch_size": 16,
                 "eval.tta_views": 2, "model.width": 0.25, "run.device": "cpu", "run.progress": False,
                 "ops": "lrp", "explore_every": 1}
    metrics = execute(resolve("clutter-crop", "adaaug", 0, overrides), tmp_path / "run")
    assert 0.0 <= metrics["tta_acc"] <= 1.0 and 0.0 <= metrics["keeps_object"] <= 1.0


@pytest.mark.slow
def test_resume_from_an_epoch_checkpoint_is_exact(tmp_path, monkeypatch):
    """The lazily built policy, its Adam state and the exploration RNG all survive a checkpoint."""
    from augbench.runs import execute, resolve
    from augbench.train.trainer import Trainer

    overrides = {"data.n_train_per_class": 8, "data.n_test_per_class": 2, "train.epochs": 2, "train.batch_size": 16,
                 "eval.tta_views": 2, "model.width": 0.25, "run.device": "cpu", "run.progress": False}
    cfg = resolve("texture-color", "adaaug", 0, overrides)
    reference = execute(cfg, tmp_path / "ref")

    original = Trainer.save

    def save_then_stop(self):
        original(self)
        if self.epoch == 1:
            raise KeyboardInterrupt  # interrupted after the first epoch's checkpoint

    monkeypatch.setattr(Trainer, "save", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        execute(cfg, tmp_path / "victim")
    monkeypatch.setattr(Trainer, "save", original)
    assert execute(cfg, tmp_path / "victim") == reference


def windows_of_padded(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Every input-sized window of the zero-padded images: (B, (2 pad + 1)^2, C, H, W)."""
    h, w = x.shape[-2:]
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    return torch.stack([padded[..., i:i + h, j:j + w] for i in range(2 * pad + 1) for j in range(2 * pad + 1)], 1)


def test_crop_benchmarks_get_the_base_random_crop_before_the_policy():
    """On a crop benchmark every image is a random pad-4 window of itself, even when the policy picks Identity.

    AdaAug's pipeline crops before its policy; without the base crop AdaAug never crops on crop benchmarks.
    """
    torch.manual_seed(0)
    model = build_model("small_cnn", 3, width=0.25).train()
    method = create_method("adaaug", ctx(family="crop"), k=1)
    assert method.base_crop == "pad"
    peak(method, ["Identity"])
    x = torch.rand(32, 3, 16, 16)
    out = method.sample(x, StepContext(features=model.features), n_views=2).x
    assert out.shape == (64, 3, 16, 16)
    windows = windows_of_padded(x, 4).repeat(2, 1, 1, 1, 1)
    match = (windows == out.unsqueeze(1)).flatten(2).all(-1)  # (64, 81): which window each view is
    assert match.any(1).all()  # an exact integer-shifted window of the zero-padded image
    centre = match[:, 40]  # offset (4, 4): the image itself
    assert (~centre).sum() > 48  # most views moved (1/81 stay put)
    assert not torch.equal(out[:32], out[32:])  # each view its own crop


def test_base_crop_defaults_and_options():
    assert create_method("adaaug", ctx(family="color")).base_crop == "none"  # colour benchmarks: no crop
    assert create_method("adaaug", ctx(family="crop", size=32), ops="lrp").base_crop == "none"  # LRP crops itself
    torch.manual_seed(0)
    model = build_model("small_cnn", 3, width=0.25).train()
    c = StepContext(features=model.features)
    x = torch.rand(8, 3, 16, 16)
    off = create_method("adaaug", ctx(family="crop"), k=1, base_crop="none")
    peak(off, ["Identity"])
    assert torch.equal(off.sample(x, c).x, x)
    resized = create_method("adaaug", ctx(family="color"), k=1, base_crop="resized", base_scale_min=0.2)
    peak(resized, ["Identity"])
    out = resized.sample(x, c).x
    assert out.shape == x.shape and not torch.allclose(out, x)


def test_exploration_sees_base_cropped_validation_images(monkeypatch):
    method, model, x, y, c = setup(b=4)
    method.base_crop = "pad"
    seen = []

    def record(xx, y, ctx, head, params):
        seen.append(xx)
        return torch.zeros(()), tuple(torch.zeros_like(p) for p in params)

    monkeypatch.setattr(method, "exploration_gradients", record)
    peak(method, ["Identity"])
    method.explore(x, y, c, model.head)
    assert seen[0].shape == x.shape and not torch.equal(seen[0], x)
