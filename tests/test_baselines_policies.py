"""`autoaugment`, `randaugment`, `trivialaugment`: per-image draws, each image exactly as torchvision."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms import v2

from augbench.errors import ConfigError
from augbench.methods import MethodContext, StepContext, create_method

CTX = MethodContext(num_classes=10, image_shape=(3, 32, 32), families=frozenset({"crop"}))
CONFIGS = [
    ("autoaugment", {"policy": "imagenet"}),
    ("autoaugment", {"policy": "cifar10"}),
    ("autoaugment", {"policy": "svhn"}),
    ("randaugment", {}),
    ("randaugment", {"num_ops": 3, "magnitude": 20}),
    ("trivialaugment", {}),
]
# torchvision's float Posterize/Equalize differ from its uint8 ops; augbench defines them as the
# uint8 op on round(255 x) (transforms/ops.py), so the reference does the same for those two.
UINT8_OPS = {"Posterize", "Equalize"}


def torchvision_reference(img: torch.Tensor, ops: list[tuple[str, float]]) -> torch.Tensor:
    """One image through torchvision's own op implementation, op by op."""
    tv = v2.AutoAugment()  # any _AutoAugmentBase: we only borrow its op dispatcher and defaults
    for name, magnitude in ops:
        if name in UINT8_OPS:
            u8 = torch.round(img * 255).to(torch.uint8)
            img = tv._apply_image_or_video_transform(u8, name, magnitude, tv.interpolation, tv._fill).float() / 255
        else:
            img = tv._apply_image_or_video_transform(img, name, magnitude, tv.interpolation, tv._fill)
    return img


IDS = [f"{n}-{'-'.join(map(str, h.values())) or 'default'}" for n, h in CONFIGS]


@pytest.mark.parametrize("name,hp", CONFIGS, ids=IDS)
def test_each_image_gets_its_own_draw_and_equals_torchvision(name, hp):
    method = create_method(name, CTX, **hp)
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (48, 3, 32, 32), generator=g).float() / 255  # uint8-valued, as stored data
    torch.manual_seed(3)
    out = method.sample(x, StepContext()).x
    torch.manual_seed(3)  # the same global-RNG draws the method consumed
    draws = method.sampler.sample(48, 32, 32, device=x.device)

    applied = torch.where(draws.apply, draws.op_index, -1)
    assert torch.unique(applied[:, 0]).numel() >= 4, "one op for the whole batch: not per-image"
    for i in range(48):
        ops = [(method.sampler.names[o], m) for o, m, a in
               zip(draws.op_index[i].tolist(), draws.magnitude[i].tolist(), draws.apply[i].tolist()) if a]
        ref = torchvision_reference(x[i], ops)
        assert torch.allclose(out[i], ref, atol=2e-6), f"image {i}: {ops}"


def test_identical_images_get_different_augmentations():
    method = create_method("trivialaugment", CTX)
    x = torch.rand(1, 3, 32, 32).expand(32, 3, 32, 32).contiguous()
    torch.manual_seed(0)
    out = method.sample(x, StepContext(), n_views=2).x
    assert out.shape == (64, 3, 32, 32)
    assert torch.unique(out.flatten(1), dim=0).shape[0] > 40


def test_test_views_follow_the_training_distribution():
    method = create_method("randaugment", CTX).eval()
    x = torch.rand(4, 3, 32, 32)
    views = method.test_views(x, 5, StepContext(training=False))
    assert views.shape == (20, 3, 32, 32)
    outs = torch.randn(5, 4, 10)
    torch.testing.assert_close(method.combine_views(outs), outs.mean(0))  # mean logit (Appendix C.2)


def test_invalid_settings_are_one_line_config_errors():
    with pytest.raises(ConfigError, match="magnitude"):
        create_method("randaugment", CTX, magnitude=31)
    with pytest.raises(ConfigError, match="policy"):
        create_method("autoaugment", CTX, policy="tinyimagenet")
