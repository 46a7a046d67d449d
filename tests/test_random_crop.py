"""`random-crop` and `none`: the two methods of the foundation."""

import math

import pytest
import torch

from augbench.methods import MethodContext, StepContext, create_method
from augbench.methods.random_crop import sample_resized_crop_boxes
from augbench.transforms.geometry import crop

CTX = MethodContext(num_classes=4, image_shape=(3, 32, 32), families=frozenset({"crop"}))


def test_boxes_respect_scale_and_ratio_bounds():
    torch.manual_seed(0)
    h, w = 32, 32
    cy, cx, hh, ww = sample_resized_crop_boxes(20000, (h, w), (0.2, 0.6), (0.5, 2.0), torch.device("cpu"))
    area = hh * ww
    ratio = (ww * w) / (hh * h)
    assert (area >= 0.2 - 1e-5).all() and (area <= 0.6 + 1e-5).all()
    assert (ratio >= 0.5 - 1e-4).all() and (ratio <= 2.0 + 1e-4).all()
    # inside the image
    assert ((cy - hh / 2) >= -1e-6).all() and ((cy + hh / 2) <= 1 + 1e-6).all()
    assert ((cx - ww / 2) >= -1e-6).all() and ((cx + ww / 2) <= 1 + 1e-6).all()
    # every draw fits at these bounds, so the log-ratio is uniform: its mean is the midpoint
    assert abs(torch.log(ratio).mean().item()) < 0.02


def test_boxes_differ_per_sample_and_crops_apply_per_sample():
    torch.manual_seed(1)
    method = create_method("random-crop", CTX, scale_min=0.1)
    x = torch.rand(1, 3, 32, 32).expand(8, 3, 32, 32).contiguous()
    v = method.sample(x, StepContext())
    assert v.x.shape == x.shape and v.x.dtype == x.dtype
    boxes = v.info["box"]
    assert torch.unique(boxes, dim=0).shape[0] == 8
    flat = v.x.flatten(1)
    assert all(not torch.allclose(flat[i], flat[j]) for i in range(8) for j in range(i + 1, 8))
    assert v.x.min() >= 0 and v.x.max() <= 1


def test_crop_reads_the_box_region():
    """A box covering the top-left quadrant exactly equals that quadrant upsampled (nearest)."""
    x = torch.arange(16.0).view(1, 1, 4, 4)
    out = crop(x, torch.tensor([0.25]), torch.tensor([0.25]), torch.tensor([0.5]), torch.tensor([0.5]),
               size=(2, 2))
    assert torch.allclose(out, x[..., :2, :2])
    # centre_y selects the ROW: a box at the bottom-left quadrant
    out = crop(x, torch.tensor([0.75]), torch.tensor([0.25]), torch.tensor([0.5]), torch.tensor([0.5]), size=(2, 2))
    assert torch.allclose(out, x[..., 2:, :2])


def test_multiple_views_are_view_major():
    method = create_method("random-crop", CTX)
    x = torch.rand(3, 3, 32, 32)
    v = method.sample(x, StepContext(), n_views=4)
    assert v.x.shape == (12, 3, 32, 32) and v.n_views == 4
    tv = method.test_views(x, 5, StepContext(training=False))
    assert tv.shape == (15, 3, 32, 32)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_random_crop_stays_on_cuda():
    method = create_method("random-crop", CTX).cuda()
    x = torch.rand(4, 3, 32, 32, device="cuda")
    assert method.sample(x, StepContext()).x.device.type == "cuda"


def test_random_crop_on_the_input_device_meta():
    """Device-agnostic: boxes are created on the input's device (meta tensors prove no host copy)."""
    method = create_method("random-crop", CTX)
    x = torch.rand(4, 3, 32, 32)
    v = method.sample(x, StepContext())
    assert v.info["box"].device == x.device == v.x.device


def test_none_is_exact_identity_without_flips():
    method = create_method("none", CTX)
    x = torch.rand(5, 3, 8, 8)
    v = method.sample(x, StepContext(), n_views=2)
    assert torch.equal(v.x[:5], x) and torch.equal(v.x[5:], x)
    flipper = create_method("none", CTX, flip=True)
    torch.manual_seed(0)
    out = flipper.sample(x.repeat(16, 1, 1, 1), StepContext()).x
    flipped = (out == x.repeat(16, 1, 1, 1).flip(-1)).flatten(1).all(1)
    assert 0 < flipped.sum() < 80


def test_rotation_matches_torchvision():
    import torchvision.transforms.v2.functional as TF

    from augbench.transforms.geometry import rotate

    x = torch.zeros(1, 1, 33, 33)
    x[..., 16, 20:30] = 1.0  # a bar pointing right from the centre
    out = rotate(x, torch.tensor([math.pi / 2]))
    ref = TF.rotate(x, 90.0)  # torchvision: counter-clockwise degrees
    assert (out - ref).abs().max() < 1e-4


def test_boxes_fall_back_to_centre_crop_like_torchvision():
    """Impossible boxes (area 1 at aspect 3) fall back to the whole image, as torchvision does."""
    cy, cx, hh, ww = sample_resized_crop_boxes(50, (32, 32), (1.0, 1.0), (3.0, 3.0), torch.device("cpu"))
    assert torch.allclose(ww, torch.ones(50)) and torch.allclose(hh, torch.full((50,), 1 / 3))


def test_inspect_boxes_are_deterministic_and_leave_the_global_rng_alone():
    """`crop_boxes` (B, 8, 4), inside the image, from a private generator: evaluation changes no later draw."""
    method = create_method("random-crop", CTX, scale_min=0.3)
    x = torch.rand(5, 3, 32, 32)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    first = method.inspect(x, StepContext(training=False))["crop_boxes"]
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(method.inspect(x, StepContext(training=False))["crop_boxes"], first)
    assert first.shape == (5, 8, 4) and torch.unique(first.reshape(-1, 4), dim=0).shape[0] == 40
    cy, cx, h, w = first.unbind(-1)
    assert ((cy - h / 2) >= -1e-6).all() and ((cy + h / 2) <= 1 + 1e-6).all()
    assert ((cx - w / 2) >= -1e-6).all() and ((cx + w / 2) <= 1 + 1e-6).all()
    assert (h * w >= 0.3 - 1e-5).all()
