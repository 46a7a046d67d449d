"""Texture generator (determinism, balance, lighting, groups) and the hue-range metric."""

import math

import pytest
import torch

from augbench.datasets.texture import (
    CLASSES,
    HUE_DEFINED_CLASSES,
    HUE_JITTER,
    ILLUMINANTS,
    hue_range_narrowness,
    kelvin_to_gains,
    make_texture,
)
from augbench.errors import ConfigError


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("AUGBENCH_CACHE", str(tmp_path / "cache"))


NAMES = ["D45", "D65", "red", "D45(I=0.5)", "D65+D27"]


def _small(seed=0, **kw):
    args = dict(n_train_per_class=6, n_test_per_class=4, image_size=16, seed=seed, illuminants=NAMES, cache=False)
    args.update(kw)
    return make_texture(**args)


def test_deterministic_per_seed():
    a, b, c = _small(0), _small(0), _small(1)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.x, b.test.x)
    assert not torch.equal(a.train.x, c.train.x) and not torch.equal(a.test.x, c.test.x)
    assert torch.equal(_small(0, n_test_per_class=7).train.x, a.train.x)  # test size leaves train alone


def test_shapes_balance_meta():
    ds = _small()
    k, L = len(CLASSES), len(NAMES)
    assert ds.classes == [c[0] for c in CLASSES] and ds.num_classes == k
    assert ds.train.x.shape == (6 * k, 3, 16, 16) and ds.train.x.dtype == torch.uint8
    assert ds.train.y.bincount().tolist() == [6] * k
    assert ds.test.x.shape == (4 * k * L, 3, 16, 16)
    assert ds.test.y.bincount().tolist() == [4 * L] * k
    assert ds.test.meta["illuminant"].bincount().tolist() == [4 * k] * L
    assert ds.info["illuminants"] == NAMES and ds.info["hue_defined_classes"] == HUE_DEFINED_CLASSES == [0, 1, 2, 3]
    # each texture instance appears once under every illuminant, with the same label
    inst = ds.test.meta["instance"]
    assert inst.bincount().tolist() == [L] * (4 * k)
    assert torch.equal(ds.test.y[inst == 5], ds.test.y[inst == 5][:1].expand(L))


def test_hues_carry_the_label_only_for_hue_defined_classes():
    ds = _small(n_train_per_class=200)
    hue, y = ds.train.meta["hue"], ds.train.y
    for k, (_, _, centre) in enumerate(CLASSES):
        h = hue[y == k]
        if centre is None:
            assert float(h.std()) > 0.2  # random hue: spread over the circle
        else:
            assert float((h - centre).abs().max()) <= HUE_JITTER + 1e-6


def test_illuminants_act_as_channel_gains():
    ds = _small()
    x, ill, inst = ds.test.x.float(), ds.test.meta["illuminant"], ds.test.meta["instance"]
    by = {name: x[ill == i][inst[ill == i].argsort()] for i, name in enumerate(NAMES)}
    # intensity 0.5 halves every pixel (up to rounding)
    assert float((by["D45(I=0.5)"] * 2 - by["D45"]).abs().max()) <= 2.0
    # a red light keeps red and darkens green and blue relative to D65
    ratio = by["red"].mean(dim=(0, 2, 3)) / by["D65"].mean(dim=(0, 2, 3))
    assert abs(float(ratio[0]) - 1.0) < 0.05 and float(ratio[1]) < 0.35 and float(ratio[2]) < 0.35
    # a two-light mixture: the left edge is lit by D65, the right by the warmer D27
    mix, d65 = by["D65+D27"], by["D65"]
    assert float((mix[..., 0] - d65[..., 0]).abs().mean()) < 2.0
    assert float(mix[:, 2, :, -1].mean()) < 0.6 * float(d65[:, 2, :, -1].mean())


def test_groups_split_by_distance_to_the_training_light():
    ds = make_texture(2, 1, image_size=8, seed=0, cache=False)
    names = ds.info["illuminants"]
    assert names == list(ILLUMINANTS) and len(names) == 29
    ids, ood = set(ds.info["groups"]["id"]), set(ds.info["groups"]["ood"])
    assert not ids & ood and ids | ood == set(range(len(names))) and len(ids) - len(ood) in (0, 1)
    assert names.index("D45") in ids and names.index("D50") in ids
    assert {names.index(n) for n in ("red", "green", "blue", "amber")} <= ood
    dist = ds.info["illuminant_distance"]
    assert max(dist[i] for i in ids) <= min(dist[i] for i in ood)


def test_kelvin_gains():
    assert all(abs(g - 1.0) < 0.03 for g in kelvin_to_gains(6500))
    r, g, b = kelvin_to_gains(2700)
    assert r == 1.0 and r > g > b
    r, g, b = kelvin_to_gains(9500)
    assert b == 1.0 and r < g < b


def test_hue_range_narrowness_known_values():
    ranges = torch.tensor([[0.1, 0.2], [0.5, 0.6], [0.0, 0.5], [-0.3, 0.2], [0.0, 3.0]])
    y = torch.tensor([0, 1, 4, 5, 5])
    out = hue_range_narrowness(ranges, y, HUE_DEFINED_CLASSES)
    assert out["hue_defined"] == pytest.approx(0.1)
    assert out["hue_free"] == pytest.approx((0.5 + 0.5 + 1.0) / 3)  # widths above a turn count as one
    assert out["ratio"] == pytest.approx(0.1 / (2.0 / 3))
    only_defined = hue_range_narrowness(ranges[:2], y[:2], torch.tensor([0, 1]))
    assert math.isnan(only_defined["hue_free"]) and math.isnan(only_defined["ratio"])
    with pytest.raises(ValueError, match="hi >= lo"):
        hue_range_narrowness(torch.tensor([[0.3, 0.1]]), torch.tensor([0]), [0])


def test_config_errors_and_cache():
    with pytest.raises(ConfigError, match="unknown train_illuminant 'D99'.*choose from: D27"):
        make_texture(2, 1, train_illuminant="D99")
    with pytest.raises(ConfigError, match="illuminants must be distinct names"):
        make_texture(2, 1, illuminants=["D45", "sodium"])
    with pytest.raises(ConfigError, match="n_test_per_class must be a positive integer"):
        make_texture(2, 0)
    a = make_texture(2, 1, image_size=8, seed=0, illuminants=["D45", "red"])
    b = make_texture(2, 1, image_size=8, seed=0, illuminants=["D45", "red"])
    assert torch.equal(a.test.x, b.test.x) and a.info == b.info


def test_default_size_is_fast():
    import time

    t = time.perf_counter()
    make_texture(500, 50, seed=0, cache=False)
    assert time.perf_counter() - t < 5.0


def test_hue_safe_shifts_are_the_arc_nearer_the_own_class():
    from augbench.datasets.texture import CLASSES, hue_safe_shifts

    hues = torch.tensor([h if h is not None else 0.3 for _, _, h in CLASSES])
    y = torch.arange(len(CLASSES))
    safe = hue_safe_shifts(hues, y)
    for k, (_, kind, h) in enumerate(CLASSES):
        lo, hi = safe[k].tolist()
        assert lo < 0 < hi
        if h is None:
            assert (lo, hi) == (-0.5, 0.5)  # any hue keeps a pattern class
            continue
        assert hi - lo == pytest.approx(0.5)
        partner = next(p for j, (_, kj, p) in enumerate(CLASSES) if j != k and kj == kind)
        shift = (partner - h + 0.5) % 1.0 - 0.5  # reaching the partner's hue leaves the arc
        assert not lo < shift < hi and (lo < shift / 3 < hi)
