"""The per-sample magnitude methods' op spaces against their public code's formulas."""

from __future__ import annotations

import math

import pytest
import torch

from augbench.transforms.magnitude import SRA_SPACE, TA_STANDARD, base_pad, cutout_pixels, level_of


def ta_code_value(name: str, level: int, pmax: int) -> float:
    """What TrivialAugment's "standard" space (EntAugment's and AdaAugment's code) hands PIL, in augbench units."""
    def int_parameter(maxval: float) -> int:
        return int(level * maxval / pmax)

    def float_parameter(maxval: float) -> float:
        return float(level) * maxval / pmax

    if name == "Rotate":
        return int_parameter(30)  # degrees, random sign
    if name == "Solarize":
        return (256 - int_parameter(256)) / 255  # PIL's threshold, on [0, 1]
    if name in ("Color", "Contrast", "Brightness", "Sharpness"):
        return float_parameter(1.9 - 0.1) + 0.1 - 1.0  # enhance factor, as factor - 1
    if name == "Posterize":
        return 4 - int_parameter(4 - 0)  # bits kept
    if name in ("ShearX", "ShearY"):
        return float_parameter(0.3)
    if name in ("TranslateX", "TranslateY"):
        return int_parameter(10)  # pixels
    return 0.0


@pytest.mark.parametrize("pmax", [29, 30])
def test_ta_standard_values_are_the_codes_at_every_level(pmax):
    names = TA_STANDARD.names
    levels = torch.arange(pmax + 1).repeat_interleave(len(names))
    ops = torch.arange(len(names)).repeat(pmax + 1)
    torch.manual_seed(0)
    values = TA_STANDARD.values(ops, levels.float(), 32, 32, denominator=pmax)
    for op, level, value in zip(ops.tolist(), levels.tolist(), values.tolist()):
        expected = ta_code_value(names[op], level, pmax)
        assert abs(value) == pytest.approx(abs(expected), abs=1e-6), (names[op], level)
    signed = {"Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY"}
    negative = {names[op] for op, v in zip(ops.tolist(), values.tolist()) if v < 0 and names[op] in signed}
    assert negative == signed  # geometric ops get both signs
    enhance = [v for op, v in zip(ops.tolist(), values.tolist()) if names[op] == "Color"]
    assert enhance[0] == pytest.approx(-0.9) and enhance[-1] == pytest.approx(0.9)  # unsigned: 0.1 ... 1.9


def test_sra_values_follow_its_operations():
    names = SRA_SPACE.names
    m = torch.tensor([0.0, 0.3, 0.5, 1.0])
    torch.manual_seed(0)
    for i, name in enumerate(names):
        v = SRA_SPACE.values(torch.full((4,), i), m, 32, 40)
        expected = {"ShearX": 0.3 * m, "ShearY": 0.3 * m, "TranslateX": 0.45 * m * 40, "TranslateY": 0.45 * m * 32,
                    "Rotate": 30 * m, "Brightness": 0.9 * m, "Color": 0.9 * m, "Sharpness": 0.9 * m,
                    "Contrast": 0.9 * m, "Solarize": (256 - 256 * m) / 255, "Posterize": 8 - torch.round(4 * m)
                    }.get(name, torch.zeros(4))
        assert torch.allclose(v.abs(), expected.abs(), atol=1e-6), name


def test_level_of_is_the_codes_min_int_plus_one():
    m = torch.linspace(0, 1, 1001)
    for pmax in (29, 30):
        expected = [min(int(pmax * v) + 1, pmax) for v in m.tolist()]
        assert level_of(m, pmax).tolist() == [float(e) for e in expected]


def test_apply_skips_slots_and_matches_one_op_at_a_time():
    torch.manual_seed(0)
    x = torch.rand(6, 3, 16, 16)
    ops = torch.tensor([[-1, -1], [13, -1], [4, 4], [0, 9], [10, 2], [11, 12]])
    values = SRA_SPACE.values(ops.clamp_min(0), torch.full(ops.shape, 0.7), 16, 16)
    out = SRA_SPACE.apply(x, ops, values)
    assert torch.equal(out[0], x[0]) and torch.equal(out[1], x[1])  # skipped; Identity
    from augbench.transforms.ops import apply_ops

    one = x[2:3]
    for slot in range(2):
        one = apply_ops(one, ops[2:3, slot], values[2:3, slot], SRA_SPACE.names)
    assert torch.equal(out[2:3], one)


def test_base_pad_and_cutout():
    assert base_pad(None, frozenset({"crop"})) == 4 and base_pad(None, frozenset({"color"})) == 0
    assert base_pad(2, frozenset({"color"})) == 2
    x = torch.rand(8, 3, 32, 32)
    assert cutout_pixels(x, 0) is x
    changed = (cutout_pixels(x, 16) != x).any(dim=1).flatten(1).sum(1)
    assert (changed > 0).all() and (changed <= 16 * 16).all()
    assert math.isclose(changed.float().max().item(), 256, rel_tol=0.2)  # a whole square somewhere
