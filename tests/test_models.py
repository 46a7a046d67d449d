"""Backbones: the paper's PreActResNet-18 (shapes, FLOPs, parameters) and the benchmarks that use it."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from augbench.models import BACKBONES, build_model
from augbench.settings import create_benchmark


def forward_flops(model: torch.nn.Module, size: int = 64) -> int:
    """FLOPs of one forward pass on one size x size RGB image, as torch's counter counts them."""
    model.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.rand(1, 3, size, size))
    return counter.get_total_flops()


def paper_state_shapes(num_classes: int = 200) -> dict[str, tuple[int, ...]]:
    """Parameter and buffer shapes of the paper code's PreActResNet-18 (width 1), by its key names.

    Stem conv3x3 3->64 (stride 2, no BN after it); stages of two pre-activation blocks
    (BN-ReLU-conv3x3-BN-ReLU-conv3x3) with 64, 128, 256, 512 channels, a bias-free 1x1 conv
    shortcut in a Sequential where the shape changes; no final BN; linear head `fc`.
    """
    shapes: dict[str, tuple[int, ...]] = {"conv1.weight": (64, 3, 3, 3)}

    def bn(prefix: str, c: int) -> None:
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{name}"] = (c,)
        shapes[f"{prefix}.num_batches_tracked"] = ()

    cin = 64
    for stage, c in enumerate((64, 128, 256, 512), start=1):
        for block in range(2):
            p = f"layer{stage}.{block}"
            bn(f"{p}.bn1", cin)
            shapes[f"{p}.conv1.weight"] = (c, cin, 3, 3)
            bn(f"{p}.bn2", c)
            shapes[f"{p}.conv2.weight"] = (c, c, 3, 3)
            if cin != c:
                shapes[f"{p}.shortcut.0.weight"] = (c, cin, 1, 1)
            cin = c
    shapes["fc.weight"] = (num_classes, 512)
    shapes["fc.bias"] = (num_classes,)
    return shapes


def our_state_shapes(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    """The classifier's state dict in the paper code's key names (no `backbone.` prefix, `head` -> `fc`)."""
    out = {}
    for key, value in model.state_dict().items():
        key = key.removeprefix("backbone.")
        key = "fc." + key.removeprefix("head.") if key.startswith("head.") else key
        out[key] = tuple(value.shape)
    return out


def test_paper_network_has_the_paper_codes_layer_shapes():
    assert our_state_shapes(build_model("preact_resnet18_paper", 200)) == paper_state_shapes(200)


def test_paper_network_costs_1_11_gflops_and_11_27m_parameters():
    model = build_model("preact_resnet18_paper", 200)
    assert forward_flops(model) == pytest.approx(1.11e9, rel=0.02)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(11.27e6, rel=0.002)


def test_cifar_style_network_costs_four_times_more_at_64_px():
    """The stride-1 stem keeps 4x the resolution: the same parameters (plus a final BN), 4x the FLOPs."""
    paper, cifar = build_model("preact_resnet18_paper", 200), build_model("preact_resnet18", 200)
    assert forward_flops(cifar) == pytest.approx(4.44e9, rel=0.02)
    assert forward_flops(cifar) / forward_flops(paper) == pytest.approx(4.0, rel=0.01)
    assert sum(p.numel() for p in cifar.parameters()) - sum(p.numel() for p in paper.parameters()) == 2 * 512


def test_tinyimagenet_benchmarks_default_to_the_paper_network():
    for name in ("tinyimagenet-crop", "tinyimagenet-contrastive"):
        assert create_benchmark(name).s["model.name"] == "preact_resnet18_paper", name
    model = build_model(create_benchmark("tinyimagenet-crop").s["model.name"], 200)
    assert forward_flops(model) == pytest.approx(1.11e9, rel=0.02)
    for name in ("cifar10-crop", "cifar100-crop"):  # 32 px: the CIFAR-style network (last map 4x4)
        assert create_benchmark(name).s["model.name"] == "preact_resnet18", name


def test_paper_network_initialisation_follows_its_code():
    """Convolutions: He normal truncated at +-2 sigma (std sqrt(2 / fan_in)); head N(0, 0.01), bias 0."""
    torch.manual_seed(0)
    model = build_model("preact_resnet18_paper", 200)
    w = model.backbone.layer4[1].conv2.weight  # fan_in 512 * 9
    he = (2 / (512 * 9)) ** 0.5
    assert w.std().item() == pytest.approx(he, rel=0.02)
    assert w.abs().max().item() <= 2 * he / 0.8796 + 1e-6
    assert model.head.weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert torch.count_nonzero(model.head.bias) == 0


def test_resnet18_maxpool_matches_torchvision_resnet18_with_a_3x3_stem():
    torchvision = pytest.importorskip("torchvision")
    ref = torchvision.models.resnet18(num_classes=200)
    ref.conv1 = torch.nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    ours = build_model("resnet18_maxpool", 200)
    assert our_state_shapes(ours) == {k: tuple(v.shape) for k, v in ref.state_dict().items()}
    # same function: load torchvision's weights and compare outputs (normalisation applied by hand)
    ref.eval()
    ours.eval()
    ours.backbone.load_state_dict({k: v for k, v in ref.state_dict().items() if not k.startswith("fc.")})
    ours.head.load_state_dict({"weight": ref.fc.weight, "bias": ref.fc.bias})
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(ours(x), ref((x - ours.mean) / ours.std), atol=1e-5)


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_every_backbone_runs_at_32_and_64_px_and_at_half_width(name):
    model = build_model(name, 10, width=0.5).eval()
    for size in (32, 64):
        with torch.no_grad():
            out = model(torch.rand(2, 3, size, size))
        assert out.shape == (2, 10)
