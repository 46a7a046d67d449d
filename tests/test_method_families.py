"""A benchmark accepts a method exactly on the families its configuration transforms.

`resolve` asks the method's `families_for(hparams)`, not its name: Augerino with rotation
generators is a rotation method (refused on crops, like random-rotation and InstaAug's rotation
parameterization), and whatever `resolve` accepts builds without a family error.
"""

from __future__ import annotations

import pytest

from augbench.benchmarks import get_benchmark
from augbench.errors import ConfigError
from augbench.methods import MethodContext, create_method, get_method, list_methods
from augbench.runs import resolve

# one embedded benchmark per family (no data on disk)
BY_FAMILY = {"rotation": "glyphs-rotation", "crop": "clutter-crop", "color": "texture-color"}
# (method, hyperparameters) -> the families it must be accepted on; the others must refuse it
EXPECTED = [
    ("augerino", {"generators": "rotation"}, {"rotation"}),
    ("augerino", {"generators": "crop"}, {"crop"}),
    ("augerino", {"generators": "tx,ty"}, {"crop"}),
    ("augerino", {"generators": "all"}, {"rotation", "crop"}),
    ("augerino", {"generators": "shear"}, set()),
    ("augerino", {"space": "hsv"}, {"color"}),
    ("augerino", {"space": "affine"}, {"rotation", "crop"}),
    ("augerino", {"space": "auto", "generators": "auto"}, {"rotation", "crop", "color"}),
    ("instaaug", {"parameterization": "rotation"}, {"rotation"}),
    ("instaaug", {"parameterization": "lrp"}, {"crop"}),
    ("instaaug", {"parameterization": "crop-uniform"}, {"crop"}),
    ("instaaug", {"parameterization": "color"}, {"color"}),
    ("instaaug", {"parameterization": None}, {"rotation", "crop", "color"}),
    ("flowinv", {"space": "rotation"}, {"rotation"}),
    ("flowinv", {"space": "crop"}, {"crop"}),
    ("flowinv", {"space": "affine"}, {"rotation", "crop"}),
    ("teachaugment", {"space": "color"}, {"color"}),
    ("teachaugment", {"space": "geometric"}, {"rotation", "crop"}),
    ("teachaugment", {"space": "both"}, {"rotation", "crop", "color"}),
    ("adaaug", {"ops": "lrp"}, {"crop"}),
    ("adaaug", {"ops": "standard"}, {"crop", "color"}),
    ("random-rotation", {}, {"rotation"}),
    ("random-crop", {}, {"crop"}),
    ("random-color", {}, {"color"}),
    ("none", {}, {"rotation", "crop", "color"}),
]


def _accepted(method: str, family: str, hp: dict) -> bool:
    try:
        resolve(BY_FAMILY[family], method, 0, hp)
    except ConfigError as e:
        assert "family" in str(e), e  # refused for its family, not for something else
        return False
    return True


@pytest.mark.parametrize("method,hp,families", EXPECTED, ids=[f"{m}-{h}" for m, h, _ in EXPECTED])
def test_accepted_exactly_on_the_families_the_configuration_transforms(method, hp, families):
    for family in BY_FAMILY:
        assert _accepted(method, family, hp) == (family in families), (method, hp, family)


def test_augerino_rotation_is_refused_on_crop_benchmarks_like_the_other_rotation_methods():
    for method, hp in [("augerino", {"generators": "rotation"}), ("random-rotation", {}),
                       ("instaaug", {"parameterization": "rotation"})]:
        with pytest.raises(ConfigError, match="'crop' family"):
            resolve("clutter-crop", method, 0, hp)
    with pytest.raises(ConfigError, match="as configured transforms rotation"):
        resolve("clutter-crop", "augerino", 0, {"generators": "rotation"})


def test_benchmark_method_defaults_choose_the_family():
    """A rotation benchmark's Augerino defaults to rotation generators; on a crop benchmark `auto` stays crops."""
    cfg = resolve("glyphs-rotation", "augerino")
    assert cfg.hparams["generators"] == "rotation"
    assert resolve("clutter-crop", "augerino").hparams["generators"] == "auto"


def _configurations():
    for name in list_methods():
        yield name, {}
    for method, hp, _ in EXPECTED:
        yield method, hp


@pytest.mark.parametrize("family", sorted(BY_FAMILY))
def test_whatever_resolve_accepts_builds_and_whatever_cannot_build_is_refused(family):
    bench = get_benchmark(BY_FAMILY[family])
    for method, hp in _configurations():
        cls = get_method(method)
        if cls.tasks and bench.task not in cls.tasks:
            continue
        accepted = _accepted(method, family, hp)
        ctx = MethodContext(num_classes=4, image_shape=(3, 32, 32), families=frozenset({family}), feature_dim=8)
        try:
            create_method(method, ctx, **{**cls.recipes.get(bench.name, {}), **hp})
        except ConfigError as e:
            assert not accepted, f"{method} {hp} was accepted on {family} but cannot build: {e}"
