"""Batched per-sample ops and policies against torchvision (and AdaAug's PIL ops).

References are computed image by image with torchvision.transforms.v2.functional, using
the same magnitude -> argument mapping as torchvision's AutoAugment family; Posterize and
Equalize go through uint8, which is augbench's documented float semantics for them.
"""

import math
from collections import Counter

import numpy as np
import PIL.Image
import PIL.ImageEnhance
import PIL.ImageOps
import pytest
import torch
from torchvision.transforms.v2 import AutoAugment, AutoAugmentPolicy, RandAugment, TrivialAugmentWide

from augbench.errors import ConfigError, DataError
from augbench.perf.ops import torchvision_op
from augbench.transforms import ops
from augbench.transforms.ops import CUTOUT_FILL, OPS, apply_ops
from augbench.transforms.policies import (
    ADAAUG_NAMES,
    ADAAUG_OPS,
    AUTOAUGMENT_POLICIES,
    AUTOAUGMENT_SPACE,
    RANDAUGMENT_SPACE,
    TRIVIALAUGMENT_WIDE_SPACE,
    AutoAugmentSampler,
    RandAugmentSampler,
    TrivialAugmentWideSampler,
    adaaug_apply,
    adaaug_apply_all,
    adaaug_values,
    apply_policy,
    create_sampler,
)

H, W = 24, 40  # non-square, and > 255 pixels so Equalize really equalises


def _images(batch: int, seed: int = 0, channels: int = 3) -> torch.Tensor:
    """uint8-valued float images; image 1 is low-contrast, image 2 has a constant channel."""
    g = torch.Generator().manual_seed(seed)
    u8 = torch.randint(0, 256, (batch, channels, H, W), generator=g, dtype=torch.uint8)
    if batch > 1:
        u8[1] = 100 + u8[1] // 16
    if batch > 2:
        u8[2, 0] = 77
    return u8.float() / 255


def _reference(image: torch.Tensor, name: str, m: float) -> torch.Tensor:
    """torchvision's AutoAugment-family op ``name`` with magnitude ``m`` on one image."""
    return torchvision_op(image, name, m)


# Per-op magnitudes, one per image; they span AutoAugment/TrivialAugment ranges, signs
# and the edge values (90 degrees, 0 and 8 bits, thresholds 0 and 1).
MAGNITUDES = {
    "ShearX": [0.3, -0.21, 0.99, 0.0, -0.99],
    "ShearY": [-0.3, 0.13, 0.77, 0.0, 0.5],
    "TranslateX": [5.7, -3.2, 14.5, 0.0, -32.0],
    "TranslateY": [4.9, -6.0, 0.4, 10.9, -12.0],
    "Rotate": [30.0, -17.3, 90.0, 135.0, -180.0],
    "Brightness": [0.5, -0.9, 0.0, 0.99, -0.3],
    "Color": [0.7, -0.5, 0.99, -0.99, 0.0],
    "Contrast": [0.9, -0.4, 0.0, -0.99, 0.3],
    "Sharpness": [0.9, -0.9, 0.0, 0.45, -0.2],
    "Posterize": [4.0, 6.0, 8.0, 2.0, 0.0],
    "Solarize": [0.5, 0.0, 1.0, 0.3, 0.75],
    "AutoContrast": [0.0] * 5,
    "Equalize": [0.0] * 5,
    "Invert": [0.0] * 5,
    "Identity": [0.0] * 5,
    "Flip": [0.0] * 5,
}
GEOMETRIC = {"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Flip"}


@pytest.mark.parametrize("name", list(MAGNITUDES))
def test_op_matches_torchvision_per_image(name):
    mags = MAGNITUDES[name]
    x = _images(len(mags))
    out = OPS[name](x, torch.tensor(mags))
    expected = torch.stack([_reference(x[i], name, m) for i, m in enumerate(mags)])
    atol = 0.0 if name in GEOMETRIC | {"Posterize", "Equalize", "Solarize", "Invert"} else 1e-6
    assert torch.allclose(out, expected, atol=atol, rtol=0.0)


@pytest.mark.parametrize("name", [n for n in MAGNITUDES if len(set(MAGNITUDES[n])) > 1])
def test_fixed_magnitude_on_batch_and_per_sample_differences(name):
    x = _images(1).expand(4, -1, -1, -1).contiguous()
    m = MAGNITUDES[name][0]
    same = OPS[name](x, torch.full((4,), m))
    assert torch.allclose(same, _reference(x[0], name, m).expand_as(same), atol=1e-6, rtol=0.0)
    # Identical images with different magnitudes must come out different.
    mags = torch.tensor(MAGNITUDES[name][:2])
    two = OPS[name](x[:2], mags)
    assert not torch.equal(two[0], two[1])


@pytest.mark.parametrize("name", list(OPS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shape_dtype_range_preserved(name, dtype):
    x = _images(3).to(dtype)
    magnitudes = {"Posterize": 3.0, "Solarize": 0.4, "Cutout": 0.3, "TranslateX": 7.0, "Rotate": 40.0}
    mags = magnitudes.get(name, 0.6)
    out = OPS[name](x, torch.full((3,), mags, dtype=dtype), torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
    assert out.min() >= 0.0 and out.max() <= 1.0


def test_one_channel_images():
    x = _images(3, channels=1)
    for name in ("Color", "Contrast", "Brightness", "Sharpness", "Rotate", "Equalize"):
        out = OPS[name](x, torch.full((3,), 0.4))
        expected = torch.stack([_reference(x[i], name, 0.4) for i in range(3)])
        assert torch.allclose(out, expected, atol=1e-6), name


def test_equalize_keeps_channels_too_concentrated_to_equalise():
    # PIL and torchvision leave a channel unchanged when fewer than 255 pixels lie outside
    # its most frequent highest level (step == 0); other images in the batch still change.
    x = _images(2)
    x[0] = 128 / 255
    x[0, :, :2, :10] = 51 / 255
    out = ops.equalize(x)
    assert torch.equal(out[0], x[0])
    assert torch.equal(out[1], _reference(x[1], "Equalize", 0.0))
    assert not torch.equal(out[1], x[1])


def test_cutout_squares():
    x = torch.zeros(16, 3, 20, 20)
    out = ops.cutout(x, torch.full((16,), 0.25), generator=torch.Generator().manual_seed(1))
    corners = set()
    for img in out:
        changed = (img != 0).any(dim=0)
        rows, cols = changed.any(dim=1).nonzero().flatten(), changed.any(dim=0).nonzero().flatten()
        assert 0 < len(rows) <= 5 and 0 < len(cols) <= 5  # side 0.25 * 20 = 5 px, clipped
        assert changed.sum() == len(rows) * len(cols)  # a filled rectangle
        assert rows.diff().eq(1).all() and cols.diff().eq(1).all()
        assert torch.allclose(img[:, rows[0], cols[0]], torch.tensor(CUTOUT_FILL))
        corners.add((rows[0].item(), cols[0].item()))
    assert len(corners) > 8  # positions are drawn per image
    again = ops.cutout(x, torch.full((16,), 0.25), generator=torch.Generator().manual_seed(1))
    assert torch.equal(out, again)
    assert torch.equal(ops.cutout(x, torch.zeros(16)), x)


def test_apply_ops_grouping_equals_per_image():
    names = [n for n in OPS if n != "Cutout"]
    batch = 40
    g = torch.Generator().manual_seed(3)
    x = _images(batch, seed=3)
    op_index = torch.randint(-1, len(names), (batch,), generator=g)
    pick = {"Posterize": (2, 8), "Solarize": (0, 1), "Rotate": (-45, 45)}
    pick.update(TranslateX=(-10, 10), TranslateY=(-10, 10))
    lows = torch.tensor([pick.get(n, (-0.9, 0.9))[0] for n in names], dtype=torch.float32)
    highs = torch.tensor([pick.get(n, (-0.9, 0.9))[1] for n in names], dtype=torch.float32)
    op_safe = op_index.clamp(min=0)
    magnitude = lows[op_safe] + (highs - lows)[op_safe] * torch.rand(batch, generator=g)
    out = apply_ops(x, op_index, magnitude, names)
    for i in range(batch):
        if op_index[i] < 0:
            expected = x[i : i + 1]
        else:
            expected = OPS[names[op_index[i]]](x[i : i + 1], magnitude[i : i + 1])
        assert torch.equal(out[i : i + 1], expected), (i, names[op_index[i]])
    assert len(set(op_index.tolist())) > 8


def test_apply_ops_single_op_and_all_skipped():
    x = _images(4)
    m = torch.full((4,), 0.3)
    assert torch.equal(apply_ops(x, torch.full((4,), 1), m, ["Identity", "Brightness"]), ops.brightness(x, m))
    assert torch.equal(apply_ops(x, torch.full((4,), -1), m, ["Brightness"]), x)


def test_apply_ops_gradient_reaches_input():
    x = _images(6).requires_grad_()
    names = ["Brightness", "Contrast", "Identity"]
    out = apply_ops(x, torch.tensor([0, 1, 2, 0, 1, 2]), torch.full((6,), -0.2), names)
    out.sum().backward()
    assert torch.isfinite(x.grad).all() and (x.grad.abs().sum(dim=(1, 2, 3)) > 0).all()


def test_apply_ops_bad_input():
    x = _images(2)
    with pytest.raises(ConfigError, match="valid"):
        apply_ops(x, torch.zeros(2, dtype=torch.long), torch.zeros(2), ["Blur"])
    with pytest.raises(ConfigError, match="op_index"):
        apply_ops(x, torch.tensor([0, 2]), torch.zeros(2), ["Identity", "Invert"])
    with pytest.raises(DataError, match="shape"):
        apply_ops(x, torch.zeros(3, dtype=torch.long), torch.zeros(3), ["Identity"])


# ----------------------------------------------------------------------- policies

TV_SPACES = [
    (AutoAugment, AUTOAUGMENT_SPACE),
    (RandAugment, RANDAUGMENT_SPACE),
    (TrivialAugmentWide, TRIVIALAUGMENT_WIDE_SPACE),
]


@pytest.mark.parametrize("tv_cls,space", TV_SPACES)
def test_magnitude_spaces_match_torchvision(tv_cls, space):
    tv_space = tv_cls._AUGMENTATION_SPACE
    assert list(space) == list(tv_space)
    for name, bins in space.items():
        fn, signed = tv_space[name]
        for num_bins, (h, w) in [(10, (32, 32)), (31, (24, 40)), (31, (64, 64))]:
            tv_values = fn(num_bins, h, w)
            if bins is None:
                assert tv_values is None
                continue
            assert bins.signed == signed
            assert torch.equal(bins.values(num_bins, h, w), tv_values.float()), (name, num_bins)


@pytest.mark.parametrize("name", ["imagenet", "cifar10", "svhn"])
def test_autoaugment_policies_match_torchvision(name):
    tv = AutoAugment(AutoAugmentPolicy(name))
    assert list(AUTOAUGMENT_POLICIES[name]) == tv._policies


def _apply_reference(x, sampler, draws):
    """Apply drawn (op, magnitude, apply) per image with torchvision, op after op."""
    out = []
    for i in range(x.shape[0]):
        image = x[i]
        for j in range(draws.op_index.shape[1]):
            if draws.apply[i, j]:
                name = sampler.names[draws.op_index[i, j]]
                image = _reference(image, name, float(draws.magnitude[i, j]))
        out.append(image)
    return torch.stack(out)


@pytest.mark.parametrize(
    "sampler",
    [
        AutoAugmentSampler("imagenet"),
        AutoAugmentSampler("svhn"),
        RandAugmentSampler(),
        TrivialAugmentWideSampler(),
    ],
    ids=["aa-imagenet", "aa-svhn", "randaugment", "trivialaugment"],
)
def test_apply_policy_equals_torchvision_per_image(sampler):
    x = _images(12, seed=5)
    draws = sampler.sample(12, H, W, device="cpu", generator=torch.Generator().manual_seed(7))
    out = apply_policy(x, sampler, torch.Generator().manual_seed(7))
    assert torch.allclose(out, _apply_reference(x, sampler, draws), atol=1e-5, rtol=0.0)
    assert draws.apply.any()


def test_identical_images_get_different_augmentations():
    x = _images(1).expand(32, -1, -1, -1)
    out = apply_policy(x, TrivialAugmentWideSampler(), torch.Generator().manual_seed(0))
    assert len({tuple(img.flatten()[::97].tolist()) for img in out}) > 12
    again = apply_policy(x, TrivialAugmentWideSampler(), torch.Generator().manual_seed(0))
    assert torch.equal(out, again)


def test_trivialaugment_distribution():
    sampler = TrivialAugmentWideSampler()
    n = 28_000
    draws = sampler.sample(n, 32, 32, device="cpu", generator=torch.Generator().manual_seed(0))
    assert draws.op_index.shape == (n, 1) and draws.apply.all()
    counts = torch.bincount(draws.op_index.flatten(), minlength=14)
    expected = n / 14
    assert (counts - expected).abs().max() < 5 * math.sqrt(expected)  # 5 sigma
    # Rotate: |magnitude| uniform over the 31 bins, sign a fair coin.
    rot = draws.magnitude[draws.op_index == sampler.names.index("Rotate")]
    bins = (rot.abs() / 4.5).round().long()
    assert torch.allclose(rot.abs(), bins * 4.5, atol=1e-4)
    bin_counts = torch.bincount(bins, minlength=31)
    assert bin_counts.min() > 0.5 * len(rot) / 31 and bin_counts.max() < 1.5 * len(rot) / 31
    assert abs((rot[rot != 0] < 0).float().mean() - 0.5) < 0.05
    # Unsigned ops never go negative.
    post = draws.magnitude[draws.op_index == sampler.names.index("Posterize")]
    assert set(post.tolist()) == set(range(2, 9))


def test_autoaugment_distribution():
    sampler = AutoAugmentSampler("cifar10")
    subs = AUTOAUGMENT_POLICIES["cifar10"]
    n = 25_000
    draws = sampler.sample(n, 32, 32, device="cpu", generator=torch.Generator().manual_seed(1))
    pairs = Counter(zip(*(draws.op_index[:, j].tolist() for j in range(2))))
    expected = Counter((sampler.names.index(a[0]), sampler.names.index(b[0])) for a, b in subs)
    assert set(pairs) == set(expected)
    for pair, k in expected.items():
        assert abs(pairs[pair] / n - k / 25) < 0.01
    for j in range(2):
        mean_prob = sum(sub[j][1] for sub in subs) / 25
        assert abs(draws.apply[:, j].float().mean() - mean_prob) < 0.015
    # Magnitudes are the sub-policy's bin (of 10), with a random sign.
    table = {name: b.values(10, 32, 32) if b else None for name, b in AUTOAUGMENT_SPACE.items()}
    allowed = {}
    for sub in subs:
        for j, (name, _, b) in enumerate(sub):
            allowed.setdefault((j, name), set()).add(0.0 if b is None else round(float(table[name][b]), 5))
    for i in range(0, n, 97):
        for j in range(2):
            name = sampler.names[draws.op_index[i, j]]
            assert round(abs(float(draws.magnitude[i, j])), 5) in allowed[(j, name)]


def test_randaugment_draws():
    sampler = RandAugmentSampler(num_ops=3, magnitude=9)
    draws = sampler.sample(3000, 32, 32, device="cpu", generator=torch.Generator().manual_seed(2))
    assert draws.op_index.shape == (3000, 3) and draws.apply.all()
    table = {name: b.values(31, 32, 32)[9] if b else 0.0 for name, b in RANDAUGMENT_SPACE.items()}
    expected = torch.tensor([float(table[n]) for n in sampler.names])[draws.op_index]
    assert torch.allclose(draws.magnitude.abs(), expected.abs())
    assert len(torch.unique(draws.op_index)) == len(RANDAUGMENT_SPACE)


def test_policy_config_errors():
    with pytest.raises(ConfigError, match="imagenet"):
        AutoAugmentSampler("mnist")
    with pytest.raises(ConfigError, match="randaugment"):
        create_sampler("augmix")
    with pytest.raises(ConfigError, match="magnitude"):
        RandAugmentSampler(magnitude=31)
    assert isinstance(create_sampler("autoaugment", policy="svhn"), AutoAugmentSampler)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_same_seed_same_result_on_cuda():
    x = _images(16, seed=9)
    for sampler in (AutoAugmentSampler("imagenet"), TrivialAugmentWideSampler()):
        cpu = apply_policy(x, sampler, torch.Generator().manual_seed(4))
        gpu = apply_policy(x.cuda(), sampler, torch.Generator().manual_seed(4))
        assert gpu.device.type == "cuda"
        assert torch.allclose(gpu.cpu(), cpu, atol=1e-5)
    # AdaAug Cutout and Rotate: random positions and signs from a CPU generator, same on CUDA.
    op_index, m = torch.tensor([[14, 4]]).expand(16, 2), torch.full((16, 2), 0.9)
    cpu = adaaug_apply(x, op_index, m, torch.Generator().manual_seed(5))
    gpu = adaaug_apply(x.cuda(), op_index.cuda(), m.cuda(), torch.Generator().manual_seed(5))
    assert gpu.device.type == "cuda" and torch.allclose(gpu.cpu(), cpu, atol=1e-5)


# ------------------------------------------------------------------------- AdaAug


def test_adaaug_table_is_methods_md():
    assert ADAAUG_NAMES == (
        "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "AutoContrast", "Invert",
        "Equalize", "Solarize", "Posterize", "Contrast", "Color", "Brightness", "Sharpness",
        "Cutout", "Flip", "Identity",
    )  # fmt: skip
    ranges = {op.name: (op.low, op.high) for op in ADAAUG_OPS}
    assert ranges["ShearX"] == (-0.3, 0.3) and ranges["TranslateY"] == (-0.45, 0.45)
    assert ranges["Rotate"] == (-30.0, 30.0) and ranges["Solarize"] == (0.0, 256.0)
    assert ranges["Posterize"] == (4.0, 8.0) and ranges["Sharpness"] == (0.1, 1.9)
    assert ranges["Cutout"] == (0.0, 0.2)
    signed = {op.name for op in ADAAUG_OPS if op.signed}
    assert signed == {"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate"}


def test_adaaug_values_conversions():
    idx = {name: i for i, name in enumerate(ADAAUG_NAMES)}
    names = ["Solarize", "Solarize", "Posterize", "Posterize", "Contrast", "Brightness", "Cutout", "Cutout"]
    mags = torch.tensor([1.0, 0.5, 0.0, 1.2, 0.5, 1.0, 1.0, -0.3])  # out-of-range mags are clamped
    values = adaaug_values(torch.tensor([idx[n] for n in names]), mags, H, W)
    expected = torch.tensor([256 / 255, 128 / 255, 4.0, 8.0, 0.0, 0.9, 0.2, 0.0])
    assert torch.allclose(values, expected, atol=1e-6)
    # Geometric: |value| = |m (high - low) + low| in pixels / degrees / shear; sign a fair coin.
    n = 4000
    op = torch.tensor([idx["TranslateX"], idx["TranslateY"], idx["Rotate"], idx["ShearX"]]).repeat(n // 4)
    values = adaaug_values(op, torch.ones(n), H, W, torch.Generator().manual_seed(0)).view(-1, 4)
    assert torch.allclose(values.abs(), torch.tensor([0.45 * W, 0.45 * H, 30.0, 0.3]).expand_as(values))
    assert ((values < 0).float().mean(dim=0) - 0.5).abs().max() < 0.05


def _pil(image: torch.Tensor) -> PIL.Image.Image:
    return PIL.Image.fromarray((image * 255).round().to(torch.uint8).permute(1, 2, 0).numpy())


def _from_pil(image: PIL.Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1).float() / 255


# AdaAug's own implementations (ada_aug/operation.py), PIL on uint8.
ADAAUG_PIL = {
    "AutoContrast": lambda im, v: PIL.ImageOps.autocontrast(im),
    "Invert": lambda im, v: PIL.ImageOps.invert(im),
    "Equalize": lambda im, v: PIL.ImageOps.equalize(im),
    "Solarize": lambda im, v: PIL.ImageOps.solarize(im, v),
    "Posterize": lambda im, v: PIL.ImageOps.posterize(im, int(v)),
    "Contrast": lambda im, v: PIL.ImageEnhance.Contrast(im).enhance(v),
    "Color": lambda im, v: PIL.ImageEnhance.Color(im).enhance(v),
    "Brightness": lambda im, v: PIL.ImageEnhance.Brightness(im).enhance(v),
    "Sharpness": lambda im, v: PIL.ImageEnhance.Sharpness(im).enhance(v),
    "Flip": lambda im, v: PIL.ImageOps.mirror(im),
    "ShearY": lambda im, v: im.transform(im.size, PIL.Image.AFFINE, (1, 0, 0, v, 1, 0)),
}


@pytest.mark.parametrize("name", list(ADAAUG_PIL))
def test_adaaug_ops_match_adaaug_pil_code(name):
    x = _images(4, seed=11)
    op = ADAAUG_OPS[ADAAUG_NAMES.index(name)]
    m = torch.tensor([0.0, 0.37, 0.81, 1.0])
    if op.signed:  # the sign is random: compare both signs of the drawn value
        m = torch.full((4,), 0.9)
    op_index = torch.full((4, 1), ADAAUG_NAMES.index(name))
    out = adaaug_apply(x, op_index, m.view(4, 1), torch.Generator().manual_seed(0))
    for i in range(4):
        value = float(m[i]) * (op.high - op.low) + op.low
        candidates = [value, -value] if op.signed else [value]
        errors = [(out[i] - _from_pil(ADAAUG_PIL[name](_pil(x[i]), v))).abs().max() for v in candidates]
        # PIL rounds enhance results to uint8 (and uses a rounded grey level): 1.5 levels.
        enhance = name in {"Contrast", "Color", "Brightness", "Sharpness"}
        assert min(errors) <= (1.5 / 255 if enhance else 1e-6)


def test_adaaug_apply_sequence_and_neutral_magnitudes():
    x = _images(3)
    idx = {name: i for i, name in enumerate(ADAAUG_NAMES)}
    twice_inverted = adaaug_apply(x, torch.tensor([[idx["Invert"], idx["Invert"]]] * 3), torch.zeros(3, 2))
    assert torch.allclose(twice_inverted, x, atol=1e-7)
    neutral = torch.tensor([[idx["Contrast"], idx["Solarize"]]] * 3)  # factor 1, threshold 256
    assert torch.allclose(adaaug_apply(x, neutral, torch.tensor([[0.5, 1.0]] * 3)), x, atol=1e-6)


def test_adaaug_apply_all():
    x = _images(2)
    m = torch.rand(2, len(ADAAUG_OPS), generator=torch.Generator().manual_seed(0))
    out = adaaug_apply_all(x, m, torch.Generator().manual_seed(1))
    assert out.shape == (2, len(ADAAUG_OPS), *x.shape[1:])
    assert torch.equal(out[:, ADAAUG_NAMES.index("Identity")], x)
    assert torch.equal(out[:, ADAAUG_NAMES.index("Flip")], x.flip(-1))
    assert torch.allclose(out[:, ADAAUG_NAMES.index("Invert")], 1 - x)
    bright = ADAAUG_NAMES.index("Brightness")
    expected = ops.brightness(x, m[:, bright] * 1.8 + 0.1 - 1.0)
    assert torch.allclose(out[:, bright], expected, atol=1e-6)
