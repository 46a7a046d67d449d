"""Fixed-classifier task (paper Section 5.3, Table 2) and loading pretrained classifiers from local files."""

from __future__ import annotations

import sys
import types

import pytest
import torch
import torchvision
from torch import nn
from torchvision.io import write_png

from augbench import rundir
from augbench.datasets.clutter import make_clutter
from augbench.errors import ConfigError, DataError
from augbench.methods import METHODS, AugmentationMethod, MethodContext, Views, list_methods, repeat_views
from augbench.models import IMAGENET_MEAN, IMAGENET_STD, build_model
from augbench.models.pretrained import FrozenClassifier, load_classifier, parse_classifier_spec, read_state_dict
from augbench.rundir import FINAL_WEIGHTS
from augbench.runs import execute, resolve, run_prerequisites
from augbench.settings import create_benchmark, settings_spec
from augbench.tasks.fixed_classifier import FixedClassifier, evaluate_frozen, parse_transfer, pretraining
from augbench.train.trainer import Trainer

TINY = {"data.n_train": 48, "data.n_test": 16, "train.epochs": 1, "train.batch_size": 16, "eval.batch_size": 16,
        "eval.tta_views": 2, "model.width": 0.25, "model.pretrain_epochs": 1, "run.device": "cpu",
        "run.progress": False}


def _save_small_cnn(path, seed=0, width=0.25, classes=4):
    """A random augbench small_cnn whose BatchNorm statistics are not the defaults (so drift shows)."""
    torch.manual_seed(seed)
    net = build_model("small_cnn", classes, width=width)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    torch.save(net.state_dict(), path)
    return path


def _normalise(x):
    return (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


class _TinyLearned(AugmentationMethod):
    """A one-parameter brightness change: its gradient reaches it only THROUGH the frozen classifier."""

    families = frozenset({"crop"})

    def __init__(self, ctx, **hp):
        super().__init__(ctx, **hp)
        self.gain = nn.Parameter(torch.zeros(()))

    def sample(self, x, ctx, n_views=1):
        x = repeat_views(x, n_views)
        return Views((x * (1 + 0.5 * torch.tanh(self.gain))).clamp(0, 1), n_views)

    def make_optimizer(self):
        return torch.optim.SGD(self.parameters(), lr=10.0)


@pytest.fixture
def tiny_learned(monkeypatch):
    list_methods()  # load the registry first, so teardown only removes our entry
    monkeypatch.setattr(_TinyLearned, "name", "test-tiny-learned")
    monkeypatch.setitem(METHODS._items, "test-tiny-learned", _TinyLearned)
    return "test-tiny-learned"


# ----------------------------------------------------------------------------- specs and loading
def test_parse_classifier_spec():
    assert parse_classifier_spec("resnet50").source == "torchvision"
    assert parse_classifier_spec("torchvision:resnet18").arch == "resnet18"
    spec = parse_classifier_spec("timm:xcit_small_12_p16_224")
    assert (spec.source, spec.arch) == ("timm", "xcit_small_12_p16_224")
    spec = parse_classifier_spec("augbench:small_cnn@0.5")
    assert (spec.source, spec.arch, spec.width) == ("augbench", "small_cnn", 0.5)
    assert parse_classifier_spec("augbench:small_cnn", default_width=0.25).width == 0.25
    for bad in ("foo:bar", "augbench:nope", "resnet5000", "augbench:small_cnn@x", "augbench:small_cnn@0"):
        with pytest.raises(ConfigError):
            parse_classifier_spec(bad)


def test_parse_transfer_entries():
    e = parse_transfer("xcit=timm:xcit_small_12_p16_224=/w/x=1.pth")
    assert (e.tag, e.spec.source, e.weights) == ("xcit", "timm", "/w/x=1.pth")
    e = parse_transfer("small=augbench:small_cnn@0.5")
    assert (e.tag, e.spec.width, e.weights) == ("small", 0.5, "")
    for bad in ("resnet18", "a/b=resnet18", "=resnet18"):
        with pytest.raises(ConfigError):
            parse_transfer(bad)


@pytest.mark.parametrize("wrap", ["bare", "state_dict+module", "augbench_run"])
def test_torchvision_classifier_from_local_file(tmp_path, wrap):
    torch.manual_seed(0)
    ref = torchvision.models.get_model("resnet18", weights=None, num_classes=3).eval()
    state = ref.state_dict()
    if wrap == "state_dict+module":
        state = {"state_dict": {f"module.{k}": v for k, v in state.items()}}
    elif wrap == "augbench_run":
        state = {"model": state, "method": {}}
    torch.save(state, tmp_path / "w.pth")
    clf = load_classifier("resnet18", tmp_path / "w.pth", num_classes=3)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        expected = ref(_normalise(x))
        assert torch.allclose(clf(x), expected, atol=1e-5)  # normalisation inside, same weights
        feats = clf.features(x)
        assert feats.shape == (2, 512) and torch.allclose(clf.head(feats), expected, atol=1e-5)
    assert not any(p.requires_grad for p in clf.parameters())
    clf.train()
    assert clf.training and not any(m.training for m in clf.modules() if m is not clf)


def test_weights_errors_are_one_line(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_classifier("resnet18", tmp_path / "missing.pth", 3)
    torch.manual_seed(0)
    torch.save(torchvision.models.get_model("resnet18", weights=None, num_classes=5).state_dict(), tmp_path / "w.pth")
    with pytest.raises(ConfigError, match="does not fit resnet18 with 3 outputs") as err:
        load_classifier("resnet18", tmp_path / "w.pth", 3)
    assert "\n" not in str(err.value)
    (tmp_path / "junk.pth").write_text("not a checkpoint")
    with pytest.raises(DataError, match="cannot read"):
        read_state_dict(tmp_path / "junk.pth")


def test_timm_path_with_a_stand_in_module(tmp_path, monkeypatch):
    """The timm code path (timm is optional and not installed in CI): create_model, pretrained_cfg
    normalisation, reset_classifier(0) giving pre-logits features."""

    class FakeTimmNet(nn.Module):
        pretrained_cfg = {"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}

        def __init__(self, num_classes):
            super().__init__()
            self.conv = nn.Conv2d(3, 6, 3)
            self.head = nn.Linear(6, num_classes)

        def forward_features(self, x):
            return self.conv(x)

        def forward_head(self, x, pre_logits=False):
            x = x.mean((2, 3))
            return x if pre_logits else self.head(x)

        def forward(self, x):
            return self.forward_head(self.forward_features(x))

        def get_classifier(self):
            return self.head

        def reset_classifier(self, num_classes):
            self.head = nn.Identity()

    fake = types.ModuleType("timm")
    fake.create_model = lambda name, pretrained, num_classes: FakeTimmNet(num_classes)
    monkeypatch.setitem(sys.modules, "timm", fake)
    torch.manual_seed(0)
    ref = FakeTimmNet(3).eval()
    torch.save(ref.state_dict(), tmp_path / "t.pth")
    clf = load_classifier("timm:fake_net", tmp_path / "t.pth", 3)
    x = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        expected = ref((x - 0.5) / 0.25)
        assert torch.allclose(clf(x), expected, atol=1e-6)
        assert clf.features(x).shape == (2, 6)


def test_timm_missing_is_a_config_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm -> ImportError
    _save_small_cnn(tmp_path / "w.pt")
    with pytest.raises(ConfigError, match="timm is not installed"):
        load_classifier("timm:xcit_small_12_p16_224", tmp_path / "w.pt", 4)


# ----------------------------------------------------------------------------- the task
@pytest.mark.parametrize("method", ["tiny", "instaaug"])
def test_classifier_bit_identical_after_training_and_phi_learns(method, tmp_path, tiny_learned):
    """Weights AND buffers of the frozen classifier survive training bit for bit; phi moves."""
    if method == "instaaug" and "instaaug" not in list_methods():
        pytest.skip("instaaug is not registered yet")
    name = tiny_learned if method == "tiny" else "instaaug"
    weights = _save_small_cnn(tmp_path / "clf.pt")
    cfg = resolve("clutter-tta", name, 0, {**TINY, "model.weights": str(weights), "model.transfer": []})
    (tmp_path / "run").mkdir()
    trainer = Trainer(create_benchmark("clutter-tta", cfg.settings), name, cfg.hparams, 0, tmp_path / "run",
                      {"run_id": "t"})
    assert trainer.model_opt is None and trainer.scheduler is None  # nothing of the classifier trains
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    phi_before = {k: v.clone() for k, v in trainer.method.state_dict().items()}
    trainer.fit()
    after = trainer.model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before), "the frozen classifier changed"
    assert any("running_mean" in k for k in before)  # BatchNorm statistics were among the checked tensors
    changed = [k for k, v in trainer.method.named_parameters() if not torch.equal(v, phi_before[k])]
    assert changed, "phi did not learn"


class _RecordingNone(AugmentationMethod):
    """Identity views that remember how many were asked for."""

    def __init__(self, ctx):
        super().__init__(ctx)
        self.asked = []

    def sample(self, x, ctx, n_views=1):
        self.asked.append(n_views)
        return Views(repeat_views(x, n_views), n_views)


def test_n_view_evaluation_uses_n_views_per_image(tmp_path):
    ds = make_clutter(8, 8, 32, 4, seed=0, cache=False)
    clf = load_classifier("augbench:small_cnn@0.25", _save_small_cnn(tmp_path / "w.pt"), 4)
    seen = []
    clf.register_forward_pre_hook(lambda mod, args: seen.append(args[0].shape[0]))
    method = _RecordingNone(MethodContext(4, (3, 32, 32), frozenset({"crop"})))
    res = evaluate_frozen({"": clf}, method, ds.test, torch.device("cpu"), batch_size=8, samples=[1, 4, 10])
    assert method.asked == [1, 4, 10]
    # plain pass 8, then 1, 4 and 10 views of 8 images in forward passes of at most 8 images
    assert seen == [8] + [8] * 1 + [8] * 4 + [8] * 10
    for n in (1, 4, 10):  # identity views: every n gives the plain predictions
        assert torch.equal(res.tta_correct[""][n], res.correct[""])


def test_final_report_on_every_classifier_with_shared_views(tmp_path):
    main_w = _save_small_cnn(tmp_path / "a.pt", seed=0)
    other_w = _save_small_cnn(tmp_path / "b.pt", seed=1, width=0.5)
    cfg = resolve("clutter-tta", "none", 0, {**TINY, "model.weights": str(main_w), "eval.tta_samples": [1, 4],
                                             "model.transfer": [f"half=augbench:small_cnn@0.5={other_w}"]})
    metrics = execute(cfg, tmp_path / "run")
    for prefix in ("", "half/"):
        for n in (1, 2, 4):  # eval.tta_views (2) joins the samples
            assert metrics[f"{prefix}tta_acc@{n}"] == metrics[f"{prefix}acc"]  # "none": identity views
        assert metrics[f"{prefix}tta_acc"] == metrics[f"{prefix}acc"]
    assert metrics["acc"] != metrics["half/acc"] or metrics["loss"] != metrics["half/loss"]  # two classifiers


def test_missing_transfer_weights_fail_before_training(tmp_path):
    cfg = resolve("clutter-tta", "none", 0, {**TINY, "model.weights": str(_save_small_cnn(tmp_path / "a.pt")),
                                             "model.transfer": [f"x=resnet18={tmp_path / 'nope.pth'}"]})
    with pytest.raises(DataError, match="nope.pth"):
        Trainer(create_benchmark("clutter-tta", cfg.settings), "none", {}, 0, tmp_path / "run", {"run_id": "t"})
    assert not (tmp_path / "run" / "records.jsonl").exists()


def test_pretraining_is_a_prerequisite_run_done_once_that_leaves_the_rng_alone(tmp_path, monkeypatch):
    monkeypatch.setenv("AUGBENCH_CACHE", str(tmp_path / "cache"))
    cfg = resolve("clutter-tta", "none", 0, TINY)
    pres = FixedClassifier.prerequisites(cfg, settings_spec("clutter-tta"))
    assert [p.config.method for p in pres] == ["none", "none"]  # the classifier and the transfer one
    assert all(p.config.task == "classification" and p.run_dir.parent == tmp_path / "cache" / "pretrained"
               for p in pres)
    assert len({p.config.run_id for p in pres}) == 2 and cfg.run_id not in {p.config.run_id for p in pres}
    torch.manual_seed(123)
    state = torch.get_rng_state()
    run_prerequisites(cfg)
    assert torch.equal(torch.get_rng_state(), state)
    path = pres[0].run_dir / FINAL_WEIGHTS
    assert rundir.RunDir(pres[0].run_dir).finished(pres[0].config.run_id) is not None and path.is_file()
    mtime = path.stat().st_mtime_ns
    run_prerequisites(cfg)  # done: reused, not retrained
    assert path.stat().st_mtime_ns == mtime
    num_classes = create_benchmark("clutter-tta", cfg.settings).load().num_classes
    clf = load_classifier(parse_classifier_spec("augbench:small_cnn@0.25"), path, num_classes)
    assert isinstance(clf, FrozenClassifier)
    with pytest.raises(ConfigError, match="needs a local weights file"):
        pretraining(cfg, parse_classifier_spec("resnet18"), settings_spec("clutter-tta"))


def test_a_trainer_without_its_prerequisites_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("AUGBENCH_CACHE", str(tmp_path / "cache"))
    cfg = resolve("clutter-tta", "none", 0, {**TINY, "model.transfer": []})
    with pytest.raises(ConfigError, match="is not pretrained yet"):
        Trainer(create_benchmark("clutter-tta", cfg.settings), "none", {}, 0, tmp_path / "run", {"run_id": "t"})


def test_static_methods_on_a_frozen_classifier_train_nothing(tmp_path):
    """random-crop has no parameters and the classifier is frozen: no step runs, the report does."""
    metrics = execute(resolve("clutter-tta", "random-crop", 0, TINY), tmp_path / "run")
    assert metrics["steps"] == 0 and 0.0 <= metrics["tta_acc@4"] <= 1.0


# ----------------------------------------------------------------------------- benchmarks end to end
def test_clutter_tta_end_to_end_with_augbench_pretraining(tmp_path):
    metrics = execute(resolve("clutter-tta", "random-crop", 0, TINY), tmp_path / "run")
    keys = {"acc", "tta_acc", "tta_acc@1", "tta_acc@4", "tta_acc@10", "resnet18/acc", "resnet18/tta_acc@10",
            "keeps_object"}
    assert keys <= set(metrics) and all(0.0 <= metrics[k] <= 1.0 for k in keys)


def _imagefolder(root, classes=("ant", "bee"), n_train=4, n_val=2, size=32):
    g = torch.Generator().manual_seed(0)
    for split, n in (("train", n_train), ("val", n_val)):
        for c, name in enumerate(classes):
            (root / split / name).mkdir(parents=True)
            for i in range(n):
                img = (torch.rand(3, size, size, generator=g) * 100).to(torch.uint8)
                img[c] += 150
                write_png(img, str(root / split / name / f"{i}.png"))
    return root


def test_imagenet_tta_end_to_end_on_a_fake_tree(tmp_path):
    torch.manual_seed(0)
    for name in ("r18a", "r18b"):
        torch.save(torchvision.models.get_model("resnet18", weights=None, num_classes=2).state_dict(),
                   tmp_path / f"{name}.pth")
    overrides = {"data.root": str(_imagefolder(tmp_path / "imagenet")), "data.image_size": 32,
                 "model.name": "resnet18", "model.weights": str(tmp_path / "r18a.pth"),
                 "model.transfer": [f"resnet18=resnet18={tmp_path / 'r18b.pth'}"], "train.epochs": 1,
                 "train.batch_size": 4, "eval.tta_views": 2, "eval.tta_samples": [1, 4], "run.device": "cpu",
                 "run.progress": False}
    metrics = execute(resolve("imagenet-tta", "random-crop", 0, overrides), tmp_path / "run")
    assert {"acc", "tta_acc@1", "tta_acc@4", "resnet18/acc", "resnet18/tta_acc@4"} <= set(metrics)
