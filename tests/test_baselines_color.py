"""`random-color`: per-sample HSV jitter inside the configured ranges."""

from __future__ import annotations

import pytest
import torch

from augbench.errors import ConfigError
from augbench.methods import MethodContext, StepContext, create_method
from augbench.transforms.color import hsv_jitter, rgb_to_hsv

CTX = MethodContext(num_classes=2, image_shape=(3, 8, 8), families=frozenset({"color"}))


def test_defaults_are_the_papers_best_sweep_point():
    m = create_method("random-color", CTX)
    assert m.ranges() == (0.0, 0.2, 0.8)


def test_hue_shifts_stay_in_range_and_differ_per_sample():
    torch.manual_seed(0)
    m = create_method("random-color", CTX, hue=0.1, saturation=0.0, value=0.0)
    x = torch.tensor([0.8, 0.3, 0.2]).view(1, 3, 1, 1).expand(256, 3, 8, 8).contiguous()
    v = m.sample(x, StepContext())
    h_in, h_out = rgb_to_hsv(x)[:, 0], rgb_to_hsv(v.x)[:, 0]
    shift = torch.remainder(h_out - h_in + 0.5, 1.0) - 0.5
    assert shift.abs().max() <= 0.1 + 1e-4
    per_image = shift[:, 0, 0]
    assert per_image.min() < -0.08 and per_image.max() > 0.08  # fills U[-0.1, 0.1]
    assert torch.allclose(v.x, hsv_jitter(x, *v.info["delta"].unbind(-1)), atol=1e-6)


def test_value_factor_within_one_plus_minus_range():
    torch.manual_seed(0)
    m = create_method("random-color", CTX, hue=0.0, saturation=0.0, value=0.4)
    x = torch.rand(512, 3, 8, 8) * 0.5 + 0.2  # max channel <= 0.7: no clipping at 1.4
    v = m.sample(x, StepContext()).x
    ratio = v.amax(1) / x.amax(1)
    assert ratio.min() >= 0.6 - 1e-4 and ratio.max() <= 1.4 + 1e-4
    assert ratio.min() < 0.65 and ratio.max() > 1.35
    assert v.min() >= 0 and v.max() <= 1


def test_zero_ranges_are_exactly_the_identity():
    m = create_method("random-color", CTX, hue=0.0, saturation=0.0, value=0.0)
    x = torch.rand(4, 3, 8, 8)
    assert torch.equal(m.sample(x, StepContext(), n_views=2).x, x.repeat(2, 1, 1, 1))


def test_inspect_reports_the_ranges():
    m = create_method("random-color", CTX, hue=0.3, saturation=0.4, value=0.6)
    out = m.inspect(torch.rand(5, 3, 8, 8), StepContext(training=False))
    assert torch.allclose(out["hue_range"], torch.tensor([[-0.3, 0.3]]).expand(5, 2))
    assert torch.allclose(out["saturation_range"][0], torch.tensor([-0.4, 0.4]))
    assert torch.allclose(out["value_range"][0], torch.tensor([-0.6, 0.6]))


def test_sweep_bounds_and_channels_are_validated():
    with pytest.raises(ConfigError, match="hue"):
        create_method("random-color", CTX, hue=0.6)
    with pytest.raises(ConfigError, match="RGB"):
        create_method("random-color", MethodContext(2, (1, 8, 8), frozenset({"color"})))
