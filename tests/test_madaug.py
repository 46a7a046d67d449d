"""`madaug`: the curriculum, the relaxed/straight-through mixture, the one-step hypergradient,
per-instance policies, the crop windows it reports, determinism, and a run end to end."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from augbench.methods import MethodContext, StepContext, create_method, get_method
from augbench.methods.adaaug import ImageOps
from augbench.methods.madaug import curriculum_ratio, curriculum_rows, mix_ops, window_boxes
from augbench.models import build_model
from augbench.rundir import RunDir, read_records
from augbench.runs import execute, resolve
from augbench.transforms.geometry import crop
from augbench.transforms.ops import translate_x, translate_y
from augbench.transforms.policies import ADAAUG_NAMES

N_OPS = len(ADAAUG_NAMES)


def setup(family: str = "color", size: int = 16, b: int = 8, seed: int = 0, **hp):
    torch.manual_seed(seed)
    model = build_model("small_cnn", 3, width=0.25).train()
    ctx = MethodContext(num_classes=3, image_shape=(3, size, size), families=frozenset({family}),
                        feature_dim=model.feature_dim)
    method = create_method("madaug", ctx, **hp).train()
    x = torch.rand(b, 3, size, size)
    y = torch.randint(0, 3, (b,))
    return method, model, x, y, StepContext(y=y, features=model.features, lr=0.1)


def peak(method, ops: list[str], logit: float = 60.0, magnitude_logit: float = 0.0) -> None:
    """Put (almost) all probability on `ops` for every input; magnitudes sigmoid(magnitude_logit)."""
    with torch.no_grad():
        method.policy.linear.weight.zero_()
        method.policy.linear.bias.fill_(magnitude_logit)
        method.policy.linear.bias[N_OPS:] = 0.0
        for name in ops:
            method.policy.linear.bias[N_OPS + ADAAUG_NAMES.index(name)] = logit


# ---------------------------------------------------------------------------- curriculum ("when")

def test_curriculum_ratio_is_the_public_codes_tanh_schedule():
    assert curriculum_ratio(0, 40) == pytest.approx(0.01)
    assert curriculum_ratio(40, 40) == pytest.approx(math.tanh(1.0) + 0.01)
    assert curriculum_ratio(20, 40) == pytest.approx(math.tanh(0.5) + 0.01)
    assert curriculum_ratio(239, 40) == 1.0  # capped
    ratios = [curriculum_ratio(e, 40) for e in range(240)]
    assert all(a <= b for a, b in zip(ratios, ratios[1:]))  # monotonic: more augmentation later
    assert curriculum_ratio(0, 0) == 1.0  # no curriculum


@pytest.mark.parametrize("epoch,tau,expected", [(0, 2.0, 0), (2, 2.0, int((math.tanh(1) + 0.01) * 64)),
                                                (1, 2.0, int((math.tanh(0.5) + 0.01) * 64)), (0, 0.0, 64)])
def test_sample_augments_floor_ratio_of_the_batch(epoch, tau, expected):
    """Policy on Invert (k = 1): exactly floor(r(epoch) B) images become 1 - x, the others stay x."""
    method, model, x, y, c = setup(b=64, k=1, curriculum_epochs=tau)
    peak(method, ["Invert"])
    method.begin_epoch(epoch)
    v = method.sample(x, c)
    inverted = torch.isclose(v.x, 1 - x, atol=1e-6).flatten(1).all(1)
    kept = torch.equal(v.x[~inverted], x[~inverted])
    assert int(inverted.sum()) == expected and kept
    assert torch.equal(v.info["augmented"], inverted)
    assert method.end_epoch(epoch, {})["aug_ratio"] == pytest.approx(curriculum_ratio(epoch, tau))


def test_curriculum_rows_choose_exactly_the_count_at_random():
    torch.manual_seed(0)
    rows = torch.stack([curriculum_rows(10, 0.35, torch.device("cpu")) for _ in range(400)])
    assert (rows.sum(1) == 3).all()
    assert rows.float().mean(0).sub(0.3).abs().max() < 0.08  # every position equally likely


def test_the_stage_is_checkpointed_with_the_method():
    method, *_ = setup()
    method.begin_epoch(7)
    other, *_ = setup()
    other.load_state_dict(method.state_dict())
    assert other.ratio() == pytest.approx(curriculum_ratio(7, 40))


# ---------------------------------------------------------------------------- relaxation and hypergradient

def test_mixture_gradients_are_the_relaxation_and_straight_through_in_closed_form():
    """d<mixed, r>/dp_j = <o_j(x; m_j), r>; d<mixed, r>/dm_j = p_j sum(r) (straight-through)."""
    torch.manual_seed(0)
    ops = ImageOps()
    x = torch.rand(3, 3, 8, 8)
    mag = torch.rand(3, N_OPS, requires_grad=True)
    probs = torch.softmax(torch.randn(3, N_OPS), -1).requires_grad_()
    r = torch.randn(3, 3, 8, 8)
    torch.manual_seed(1)
    mixed = mix_ops(ops, x, mag, probs)
    dp, dm = torch.autograd.grad((mixed * r).sum(), [probs, mag])
    torch.manual_seed(1)  # the same random signs and Cutout squares
    outs = ops.apply_all(x, mag.detach())
    assert torch.allclose(mixed, torch.einsum("bn,bnchw->bchw", probs.detach(), outs), atol=1e-6)
    assert torch.allclose(dp, torch.einsum("bnchw,bchw->bn", outs, r), atol=1e-4)
    assert torch.allclose(dm, probs.detach() * r.flatten(1).sum(1, keepdim=True), atol=1e-4)


class ToyOps:
    """o_j(x; m) = a_j x + m: the straight-through derivative (1 per pixel) is the true one."""

    names = ADAAUG_NAMES
    has_magnitude = True

    def __init__(self) -> None:
        self.a = torch.linspace(0.5, 1.5, N_OPS, dtype=torch.float64)

    def apply_all(self, x: Tensor, magnitude: Tensor | None) -> Tensor:
        assert magnitude is not None
        return self.a.view(1, -1, 1, 1, 1) * x.unsqueeze(1) + magnitude.view(*magnitude.shape, 1, 1, 1)


class ToyNet(nn.Module):
    """A smooth classifier with `features` and a head, as `Classifier` exposes them."""

    feature_dim = 5

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(3 * 4 * 4, 5)
        self.head = nn.Linear(5, 3)

    def features(self, x: Tensor) -> Tensor:
        return torch.tanh(self.body(x.flatten(1)))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_hypergradient_equals_finite_differences_of_the_one_step_validation_loss(smoothing):
    """J(phi) = L_val(w - eta grad_w L_train(w, phi)), differentiated by central differences in float64;
    with label smoothing (MADAug's code: 0.1) both losses are label-smoothed cross-entropies."""
    torch.manual_seed(0)
    net = ToyNet().double()
    ctx = MethodContext(num_classes=3, image_shape=(3, 4, 4), families=frozenset({"color"}), feature_dim=5)
    method = create_method("madaug", ctx, inner_lr=0.7, label_smoothing=smoothing).double()
    method.op_set = ToyOps()
    with torch.no_grad():
        method.policy.linear.weight.normal_(0, 0.5)
        method.policy.linear.bias.normal_(0, 0.5)
    xt, yt = torch.rand(6, 3, 4, 4, dtype=torch.float64), torch.randint(0, 3, (6,))
    xv, yv = torch.rand(5, 3, 4, 4, dtype=torch.float64), torch.randint(0, 3, (5,))
    params = list(method.policy.parameters())
    _, grads = method.hypergradient(xt, yt, xv, yv, StepContext(y=yt, features=net.features), params)

    feats = net.features(xt).detach()
    named = dict(net.named_parameters())

    def objective() -> float:
        mag, logits = method.policy(feats)
        mixed = (torch.softmax(logits, -1).view(6, -1, 1, 1, 1) * method.op_set.apply_all(xt, mag)).sum(1)
        ce_train = F.cross_entropy(net(mixed), yt, label_smoothing=smoothing)
        g = torch.autograd.grad(ce_train, list(named.values()))
        stepped = {n: w - 0.7 * gi for (n, w), gi in zip(named.items(), g)}
        return F.cross_entropy(functional_call(net, stepped, (xv,)), yv, label_smoothing=smoothing).item()

    eps = 1e-6
    for p, grad in zip(params, grads):
        flat, gflat = p.data.view(-1), grad.view(-1)
        for i in torch.randperm(flat.numel())[:12].tolist():
            old = flat[i].item()
            flat[i] = old + eps
            up = objective()
            flat[i] = old - eps
            down = objective()
            flat[i] = old
            assert gflat[i].item() == pytest.approx((up - down) / (2 * eps), rel=1e-4, abs=1e-9)
    assert any(g.abs().max() > 1e-6 for g in grads)


def test_the_look_ahead_steps_with_the_classifiers_current_learning_rate(tmp_path, tiny, monkeypatch):
    torch.manual_seed(0)
    net = ToyNet().double()
    ctx = MethodContext(num_classes=3, image_shape=(3, 4, 4), families=frozenset({"color"}), feature_dim=5)
    xt, yt = torch.rand(6, 3, 4, 4, dtype=torch.float64), torch.randint(0, 3, (6,))
    xv, yv = torch.rand(5, 3, 4, 4, dtype=torch.float64), torch.randint(0, 3, (5,))

    def hypergradient(lr, **hp):
        torch.manual_seed(1)
        method = create_method("madaug", ctx, **hp).double()
        method.op_set = ToyOps()
        step = StepContext(y=yt, features=net.features, lr=lr)
        return method.hypergradient(xt, yt, xv, yv, step, list(method.policy.parameters()))[1]

    by_lr, fixed, other = hypergradient(0.7), hypergradient(None, inner_lr=0.7), hypergradient(0.3)
    assert all(torch.allclose(a, b) for a, b in zip(by_lr, fixed))
    assert not all(torch.allclose(a, b) for a, b in zip(by_lr, other))
    with pytest.raises(Exception, match="needs a learning rate"):
        hypergradient(None)

    seen: list[float | None] = []
    madaug = type(create_method("madaug", ctx))
    original = madaug.hypergradient

    def spy(self, x_train, y_train, x_val, y_val, step, params):
        seen.append(step.lr)
        return original(self, x_train, y_train, x_val, y_val, step, params)

    monkeypatch.setattr(madaug, "hypergradient", spy)
    execute(resolve("clutter-crop", "madaug", 0, {**tiny, "run.device": "cpu", "train.lr": 0.05}), tmp_path / "run")
    assert seen and set(seen) == {0.05}  # the trainer hands the classifier's learning rate to the method


def test_explore_steps_the_policy_only_and_restores_modes():
    method, model, x, y, c = setup(family="crop")
    method.sample(x, c)
    weights = {n: p.clone() for n, p in model.named_parameters()}
    policy = [p.clone() for p in method.policy.parameters()]
    logs = method.explore(torch.rand(8, 3, 16, 16), torch.randint(0, 3, (8,)), c, model.head)
    assert set(logs) == {"explore_loss", "explore_train_loss"} and all(torch.isfinite(v) for v in logs.values())
    assert all(torch.equal(p, weights[n]) and p.grad is None for n, p in model.named_parameters())
    assert any(not torch.equal(a, b) for a, b in zip(policy, method.policy.parameters()))
    assert model.training and all(m.training for m in model.modules())
    with pytest.raises(Exception, match="training batch"):  # the batch is used once
        method.explore(x, y, c, model.head)


# ---------------------------------------------------------------------------- per-instance policy ("what")

def test_the_policy_is_per_instance():
    method, model, x, y, c = setup(b=8)
    x[1] = x[0]
    out = method.inspect(x, StepContext(training=False, features=model.features))
    probs = out["op_probs"]
    assert torch.allclose(probs.sum(-1), torch.ones(8), atol=1e-6)
    assert torch.allclose(probs[0], probs[1])  # the same image, the same distribution
    gaps = (probs[2:].unsqueeze(0) - probs[2:].unsqueeze(1)).abs().amax(-1)
    assert (gaps + torch.eye(6)).min() > 1e-5  # different images, different distributions
    assert (out["magnitudes"][2:].std(0) > 0).all()


# ---------------------------------------------------------------------------- crop windows

@pytest.mark.parametrize("sy,sx", [(0, 3), (-2, 0), (4, -5)])
def test_window_boxes_are_what_a_translation_shows(sy, sx):
    torch.manual_seed(0)
    x = torch.rand(1, 3, 16, 16)
    moved = translate_y(translate_x(x, torch.tensor([float(sx)])), torch.tensor([float(sy)]))
    box = window_boxes(torch.tensor([[0.5, 0.5, 1.0, 1.0]]), torch.tensor([float(sy)]), torch.tensor([float(sx)]),
                       (16, 16))
    assert torch.allclose(crop(x, *box.unbind(-1)), moved, atol=1e-5)


def test_inspect_reports_the_translation_windows():
    """Policy: TranslateX and Identity at magnitude ~1, no jitter: |shift| = trunc(0.45 * 16) = 7 px."""
    method, model, x, y, c = setup(b=4, size=16, base_crop="none", curriculum_epochs=0.0, delta=0.0)
    peak(method, ["TranslateX", "Identity"], magnitude_logit=30.0)
    boxes = method.inspect(x, StepContext(training=False, features=model.features))["crop_boxes"]
    assert boxes.shape == (4, 8, 4)
    assert torch.allclose((boxes[..., 1] - 0.5).abs(), torch.full((4, 8), 7 / 16))
    assert torch.allclose(boxes[..., 0], torch.full((4, 8), 0.5))
    assert (boxes[..., 2:] == 1).all()


def test_pad_base_crop_windows_stay_within_the_padding():
    method, model, x, y, c = setup(b=64, size=32, family="crop")
    peak(method, ["Identity", "Flip"])  # policy ops that move no window
    boxes = method.inspect(x, StepContext(training=False, features=model.features))["crop_boxes"]
    offsets = (boxes[..., :2] - 0.5) * 32
    assert torch.allclose(offsets, offsets.round(), atol=1e-5) and offsets.abs().max() <= 4
    assert offsets.abs().max() == 4  # every offset of torchvision's RandomCrop(padding=4) occurs


# ---------------------------------------------------------------------------- defaults and determinism

def test_defaults_follow_the_public_code():
    method, *_ = setup(family="crop")
    hp = method.hp
    assert (method.k, method.temperature, hp["delta"], method.explore_every) == (2, 3.0, 0.3, 3)
    assert (hp["lr"], hp["weight_decay"], hp["curriculum_epochs"], hp["inner_lr"]) == (1e-3, 1e-3, 40.0, None)
    assert method.base_crop == "pad" and hp["base_pad"] == 4 and method.explores
    assert setup(family="color")[0].base_crop == "none"
    assert get_method("madaug").recipes["cifar10-crop"] == {"cutout": 16}
    assert get_method("madaug").recipes["cifar100-crop"] == {"cutout": 16}


def test_cutout_hides_a_square_on_every_image():
    method, model, x, y, c = setup(b=16, size=16, k=1, cutout=4, curriculum_epochs=0.0)
    peak(method, ["Identity"])
    changed = (method.sample(x, c).x != x).flatten(1).sum(1)
    assert (changed > 0).all() and (changed <= 3 * 4 * 4).all()


def test_test_views_carry_no_cutout():
    """The public code cuts out training images only (its test transform has none): a test view is the
    training distribution's draw without the hole, and a training view the same draw with it."""
    views = {}
    for side in (0, 8):
        method, model, x, y, c = setup(family="crop", b=16, size=16, cutout=side, curriculum_epochs=0.0)
        method.eval()
        torch.manual_seed(7)
        views[side, "test"] = method.test_views(x, 3, StepContext(training=False, features=model.features))
        torch.manual_seed(7)
        views[side, "train"] = method.sample(x, c, 3).x
    assert torch.equal(views[8, "test"], views[0, "test"])
    changed = (views[8, "train"] != views[0, "train"]).any(1).flatten(1).sum(1)  # pixels the hole changed
    assert (changed > 0).all() and (changed <= 8 * 8).all()  # one square of at most 8 x 8 per training view


def test_the_look_ahead_reads_16_validation_images_and_smoothing_reaches_the_classifier():
    method, model, x, y, c = setup(family="crop", seed=2, curriculum_epochs=0.0)
    assert method.hp["explore_samples"] == 16 and method.classifier_label_smoothing() == 0.0
    xv, yv = torch.rand(40, 3, 16, 16), torch.randint(0, 3, (40,))
    updated = []
    for n in (40, 16):  # the first 16 of a larger validation batch, or exactly those 16
        method, model, x, y, c = setup(family="crop", seed=2, curriculum_epochs=0.0)
        torch.manual_seed(3)
        method.sample(x, c)
        method.explore(xv[:n], yv[:n], c, model.head)
        updated.append([p.detach().clone() for p in method.policy.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*updated))
    smoothed = setup(family="crop", label_smoothing=0.1)[0]
    assert smoothed.classifier_label_smoothing() == 0.1


def test_the_classifier_loss_is_label_smoothed_when_the_method_asks(tmp_path, tiny):
    from augbench.settings import create_benchmark
    from augbench.train.trainer import Trainer

    losses = {}
    for eps in (0.0, 0.1):
        cfg = resolve("clutter-crop", "madaug", 0, {**tiny, "run.device": "cpu", "label_smoothing": eps})
        trainer = Trainer(create_benchmark(cfg.benchmark, cfg.settings), "madaug", cfg.hparams, 0,
                          tmp_path / f"run{eps}", {"run_id": "t"})
        out, y = torch.randn(6, 4), torch.randint(0, 4, (6,))
        loss = trainer.task.per_sample_loss(out, y, 1, trainer.method.classifier_label_smoothing())
        losses[eps] = loss
        torch.testing.assert_close(loss, F.cross_entropy(out, y, reduction="none", label_smoothing=eps))
    assert not torch.allclose(losses[0.0], losses[0.1])


def test_same_seed_same_views_and_same_policy_update():
    def run() -> tuple[Tensor, list[Tensor]]:
        method, model, x, y, c = setup(family="crop", seed=3, curriculum_epochs=0.0)
        torch.manual_seed(5)
        views = method.sample(x, c).x
        method.explore(torch.rand(8, 3, 16, 16), torch.randint(0, 3, (8,)), c, model.head)
        return views, [p.detach().clone() for p in method.policy.parameters()]

    (v1, p1), (v2, p2) = run(), run()
    assert torch.equal(v1, v2) and all(torch.equal(a, b) for a, b in zip(p1, p2))


# ---------------------------------------------------------------------------- end to end

def test_runs_end_to_end_on_clutter_crop(tmp_path, tiny):
    cfg = resolve("clutter-crop", "madaug", 0, {**tiny, "run.device": "cpu"})
    assert cfg.hparams["curriculum_epochs"] == 2.5
    metrics = execute(cfg, tmp_path / "run")
    assert RunDir(tmp_path / "run").state().state == "done"
    assert metrics["steps"] >= 1 and 0.0 <= metrics["acc"] <= 1.0 and 0.0 <= metrics["tta_acc"] <= 1.0
    assert 0.0 <= metrics["keeps_object"] <= 1.0 and math.isfinite(metrics["crop_area"])
    val = [r for r in read_records(tmp_path / "run" / "records.jsonl").records if r["split"] == "val"]
    assert val and val[0]["metrics"]["aug_ratio"] == pytest.approx(0.01)
