"""Clutter generator (determinism, balance, boxes) and the crop metric on hand-built boxes."""

import colorsys

import pytest
import torch

from augbench.datasets import clutter
from augbench.datasets.base import cache_path
from augbench.datasets.clutter import SHAPES, _boxes, crop_keeps_object, make_clutter, object_fraction
from augbench.errors import ConfigError


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("AUGBENCH_CACHE", str(tmp_path / "cache"))


def test_deterministic_per_seed_and_split_independent():
    a = make_clutter(64, 16, seed=3, cache=False)
    b = make_clutter(64, 16, seed=3, cache=False)
    c = make_clutter(64, 16, seed=4, cache=False)
    d = make_clutter(64, 40, seed=3, cache=False)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.meta["box"], b.test.meta["box"])
    assert not torch.equal(a.train.x, c.train.x)
    assert torch.equal(a.train.x, d.train.x)  # n_test does not change the training set
    assert not torch.equal(a.train.x[:16], a.test.x)  # train and test are different streams


def test_shapes_balance_and_ranges():
    ds = make_clutter(103, 20, image_size=32, num_classes=5, seed=0, cache=False)
    assert ds.train.x.shape == (103, 3, 32, 32) and ds.train.x.dtype == torch.uint8
    assert ds.classes == list(SHAPES)[:5] and ds.num_classes == 5
    counts = ds.train.y.bincount(minlength=5)
    assert int(counts.max() - counts.min()) <= 1
    assert int(ds.train.x.max()) > 200 and int(ds.train.x.min()) < 60  # uses the range


def test_boxes_frame_the_object():
    ds = make_clutter(400, 8, image_size=32, num_classes=4, seed=1, cache=False)
    box = ds.train.meta["box"]
    assert box.shape == (400, 4) and box.dtype == torch.float32
    w, h = box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]
    assert bool((box[:, :2] >= 0).all() and (box[:, 2:] <= 32).all())
    lo, hi = clutter.OBJECT_HALF_SIZE
    assert bool((w >= 2 * lo * 32 - 2).all() and (w <= 2 * hi * 32 + 1).all() and (h > 0).all())
    # a disc's centre pixel is the object, in the disc's colour family (hue 0 +- 0.075)
    discs = (ds.train.y == 0).nonzero().squeeze(1)
    cx = ((box[discs, 0] + box[discs, 2]) / 2).long()
    cy = ((box[discs, 1] + box[discs, 3]) / 2).long()
    rgb = ds.train.x[discs, :, cy, cx].float() / 255
    hues = torch.tensor([colorsys.rgb_to_hsv(*p)[0] for p in rgb.tolist()])
    assert bool(((hues < 0.08) | (hues > 0.92)).all())


def test_boxes_of_hand_masks():
    m = torch.zeros(2, 6, 6, dtype=torch.bool)
    m[0, 1:3, 2:5] = True
    m[1, 5, 0] = True
    assert _boxes(m).tolist() == [[2, 1, 5, 3], [0, 5, 1, 6]]


def test_object_fraction_and_crop_metric_known_values():
    obj = torch.tensor([[10.0, 10, 20, 20]] * 5)
    crops = torch.tensor(
        [
            [10.0, 10, 20, 20],  # exactly the object: 1
            [0.0, 0, 32, 32],  # contains it: 1
            [15.0, 0, 32, 32],  # right half: 0.5
            [15.0, 15, 32, 32],  # a quarter: 0.25
            [21.0, 21, 30, 30],  # misses it: 0
        ]
    )
    assert object_fraction(crops, obj).tolist() == [1.0, 1.0, 0.5, 0.25, 0.0]
    assert crop_keeps_object(crops, obj).tolist() == [True, True, True, False, False]
    assert crop_keeps_object(crops, obj, min_frac=0.2).tolist() == [True, True, True, True, False]
    empty = torch.tensor([[5.0, 5, 5, 9]])
    assert object_fraction(torch.tensor([[0.0, 0, 32, 32]]), empty).tolist() == [0.0]
    with pytest.raises(ValueError, match="two \\(N, 4\\) box tensors"):
        crop_keeps_object(crops[:2], obj)


def test_cached_and_config_errors():
    a = make_clutter(16, 4, seed=0)
    key = {"n_train": 16, "n_test": 4, "image_size": 32, "num_classes": 4, "seed": 0, "version": clutter._VERSION}
    assert cache_path("clutter", key).is_file()
    assert torch.equal(make_clutter(16, 4, seed=0).train.x, a.train.x)
    with pytest.raises(ConfigError, match="num_classes must be an integer in 2..8"):
        make_clutter(16, 4, num_classes=9)
    with pytest.raises(ConfigError, match="image_size must be an integer >= 16"):
        make_clutter(16, 4, image_size=8)


def test_default_size_is_fast():
    import time

    t = time.perf_counter()
    make_clutter(2000, 500, seed=0, cache=False)
    assert time.perf_counter() - t < 5.0
