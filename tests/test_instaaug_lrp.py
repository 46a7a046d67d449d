"""LRP: candidate sets, crop locations, exact sampling and entropy (lrp.py)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from augbench.errors import ConfigError
from augbench.methods import MethodContext, StepContext, create_method
from augbench.methods.instaaug.lrp import (
    GLOBAL,
    LRPNet,
    build_candidates,
    categorical_entropy,
    crop_candidates,
    default_lrp_config,
    layer_mass,
    prior_logits,
    receptive_side,
    sample_categorical,
)


def _ctx(size: int) -> MethodContext:
    return MethodContext(num_classes=5, image_shape=(3, size, size), families=frozenset({"crop"}))


# ----------------------------------------------------------------------------- candidate sets

@pytest.mark.parametrize("size,k,counts", [(32, 17, [16, 1]), (64, 321, [256, 64, 1]), (224, 110, [100, 9, 1])])
def test_default_candidate_counts_match_the_public_settings(size, k, counts):
    layers, _, max_outside = default_lrp_config((size, size))
    cands = build_candidates((size, size), layers, max_outside)
    assert len(cands) == k and cands.counts == counts


def test_candidate_sides_are_the_receptive_fields():
    assert [receptive_side(layer) for layer in range(6)] == [4, 12, 24, 48, 96, 192]
    cands = build_candidates((64, 64), [0, 1, 2, 3, GLOBAL])
    sides = [sorted(set((cands.boxes[cands.layer == n, 2] * 64).round().tolist())) for n in range(5)]
    assert sides == [[4.0], [12.0], [24.0], [48.0], [64.0]]
    assert cands.counts == [1024, 1024, 256, 64, 1]


def test_prior_gives_84_percent_on_global_and_1p2_nats_at_64px():
    layers, prior, max_outside = default_lrp_config((64, 64))
    cands = build_candidates((64, 64), layers, max_outside)
    logits = prior_logits(cands, prior)
    probs = logits.softmax(-1)
    e = math.e
    assert probs[cands.index(GLOBAL)].item() == pytest.approx(e ** 3 / (1 + e + e ** 3), abs=1e-6)  # 0.8438
    assert categorical_entropy(logits).item() == pytest.approx(1.231, abs=0.01)
    # the untrained network starts there too (head weights / 10)
    torch.manual_seed(0)
    net = LRPNet(3, (64, 64), layers, prior, max_outside)
    out = net(torch.rand(8, 3, 64, 64))
    mass = layer_mass(out.softmax(-1), net.layer_of, 3).mean(0)
    assert mass[2].item() == pytest.approx(0.844, abs=0.03)
    assert categorical_entropy(out).mean().item() == pytest.approx(1.23, abs=0.1)


def test_trimming_is_configurable_and_validated():
    assert len(build_candidates((32, 32), [2, GLOBAL], 1.0)) == 65
    assert len(build_candidates((32, 32), [2, GLOBAL], 0.2)) == 17
    with pytest.raises(ConfigError):
        build_candidates((32, 32), [2, 2])
    with pytest.raises(ConfigError):
        build_candidates((32, 32), [3], 0.0)  # every 48-px cell sticks out of a 32-px image


# ----------------------------------------------------------------------------- crop locations

def _reference_crop(x: torch.Tensor, row0: int, col0: int, side: int) -> torch.Tensor:
    """Slice the box out of the zero-padded image and resize: what a crop must equal."""
    pad = side
    xp = F.pad(x, (pad, pad, pad, pad))
    patch = xp[..., row0 + pad:row0 + pad + side, col0 + pad:col0 + pad + side]
    return F.interpolate(patch, size=x.shape[-2:], mode="bilinear", align_corners=False)


@pytest.mark.parametrize("cell", [(0, 0), (0, 15), (15, 0), (15, 15), (3, 11), (12, 5)])
def test_one_hot_logit_crops_that_exact_image_region(cell):
    """Cell (row i, col j) of layer 2 at 64 px: a 24-px box centred on pixel (4i + 2, 4j + 2)."""
    torch.manual_seed(0)
    method = create_method("instaaug", _ctx(64), conditioning="input-free")
    k = method.distribution.candidates.index(2, *cell)
    with torch.no_grad():
        method.conditioner.vector.fill_(-1e4)
        method.conditioner.vector[k] = 0.0
    x = torch.rand(2, 3, 64, 64)
    views = method.sample(x, StepContext(training=True), n_views=2)
    assert (views.info["index"] == k).all()
    i, j = cell
    ref = _reference_crop(x, 4 * i + 2 - 12, 4 * j + 2 - 12, 24)
    for v in views.x.view(2, 2, 3, 64, 64):
        # interpolate clamps at its own border; compare away from the outermost output pixels
        torch.testing.assert_close(v[..., 2:-2, 2:-2], ref[..., 2:-2, 2:-2], atol=1e-5, rtol=0)


def test_crop_of_a_coordinate_ramp_reads_the_right_rows_and_columns():
    """Rows stay rows: a ramp in the row coordinate is read back at the cell's rows (not mirrored)."""
    rows = torch.arange(64.0).view(1, 1, 64, 1).expand(1, 1, 64, 64) / 63
    cols = torch.arange(64.0).view(1, 1, 1, 64).expand(1, 1, 64, 64) / 63
    x = torch.cat([rows, cols, torch.zeros_like(rows)], 1)
    cands = build_candidates((64, 64), [3, GLOBAL])
    k = cands.index(3, 1, 6)  # row 1 of 8 -> image rows 12 +- 24, col 6 of 8 -> columns 52 +- 24
    out = crop_candidates(x, cands.boxes, torch.tensor([k]))[0]
    mid = 32
    assert out[0, mid, mid].item() * 63 == pytest.approx(12 - 0.5 + 48 / 64 / 2, abs=0.5)
    assert out[1, mid, mid].item() * 63 == pytest.approx(52 - 0.5 + 48 / 64 / 2, abs=0.5)


def test_a_cells_logit_depends_on_the_image_around_that_cell():
    """The network's cell (i, j) looks at image row i, column j: input-gradient centre of mass.

    A 3x3 stride-2 conv with padding 1 centres output i on input pixel 2i, so a cell of total
    stride S sees pixels centred S/2 - 0.5 px up-left of its block's centre (the box centre):
    1.5 px at layer 2, 3.5 px at layer 3 (documented in lrp.py). Anything mirrored or transposed
    would be tens of pixels off (at least 24 px for these cells). The saliency's centre also moves
    with the random weights and where the border cuts the receptive field (up to ~3 px with the
    public code's He initialisation), hence a 4 px tolerance.
    """
    torch.manual_seed(0)
    layers, prior, max_outside = default_lrp_config((64, 64))
    net = LRPNet(3, (64, 64), layers, prior, max_outside).eval()
    for layer, stride, cell in [(3, 8, (1, 4)), (3, 8, (6, 2)), (2, 4, (3, 12)), (2, 4, (10, 1))]:
        x = torch.rand(1, 3, 64, 64, requires_grad=True)
        net(x)[0, net.candidates.index(layer, *cell)].backward()
        sal = x.grad.abs().sum((0, 1))
        r = ((sal.sum(1) * torch.arange(64.0)).sum() / sal.sum()).item()
        c = ((sal.sum(0) * torch.arange(64.0)).sum() / sal.sum()).item()
        box = net.candidates.boxes[net.candidates.index(layer, *cell)]
        box_r, box_c = box[0].item() * 64 - 0.5, box[1].item() * 64 - 0.5  # pixel-index coordinates
        assert box_r == (cell[0] + 0.5) * stride - 0.5 and box_c == (cell[1] + 0.5) * stride - 0.5
        offset = stride / 2 - 0.5
        assert abs(r - (box_r - offset)) < 4 and abs(c - (box_c - offset)) < 4


# ----------------------------------------------------------------------------- sampling and entropy

CHI2_999 = {5: 20.52}  # chi-square critical value, p = 0.001, 5 degrees of freedom


def _chi2(idx: torch.Tensor, probs: torch.Tensor) -> float:
    counts = torch.bincount(idx.flatten(), minlength=probs.numel()).double()
    expected = probs.double() * idx.numel()
    return ((counts - expected) ** 2 / expected).sum().item()


@pytest.mark.parametrize("sampler", ["multinomial", "gumbel"])
@pytest.mark.parametrize("logits", [[4.0, 1.0, 0.5, 0.0, -1.0, 0.2], [0.0] * 6], ids=["peaked", "flat"])
def test_sampler_frequencies_match_p(sampler, logits):
    torch.manual_seed(0)
    logits = torch.tensor(logits)
    idx = sample_categorical(logits.expand(500, -1), 40, sampler)  # 20000 draws
    assert idx.shape == (40, 500)
    assert _chi2(idx, logits.softmax(-1)) < CHI2_999[5]


def test_the_public_codes_sampler_fails_the_same_test():
    """Power check: `log p - log U` (top-1) oversamples the mode, and the chi-square test sees it."""
    torch.manual_seed(0)
    logits = torch.tensor([4.0, 1.0, 0.5, 0.0, -1.0, 0.2]).expand(20000, -1)
    biased = (logits.log_softmax(-1) - torch.rand_like(logits).log()).argmax(-1)
    assert _chi2(biased, logits[0].softmax(-1)) > 10 * CHI2_999[5]


def test_categorical_entropy_matches_monte_carlo():
    torch.manual_seed(0)
    logits = torch.randn(3, 17) * 2
    logp = logits.log_softmax(-1)
    idx = sample_categorical(logits, 20000)  # (n, B)
    samples = -logp.gather(1, idx.T)  # (B, n): -log p(k)
    mc, se = samples.mean(1), samples.std(1) / math.sqrt(idx.shape[0])
    exact = categorical_entropy(logits)
    assert ((mc - exact).abs() < 4 * se).all()


def test_layer_mass_sums_to_one():
    cands = build_candidates((64, 64), [2, 3, GLOBAL])
    probs = torch.randn(4, len(cands)).softmax(-1)
    mass = layer_mass(probs, cands.layer, 3)
    torch.testing.assert_close(mass.sum(-1), torch.ones(4))
    torch.testing.assert_close(mass[:, 2], probs[:, -1])
