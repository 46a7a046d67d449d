"""`--set` routing (augbench.overrides): one rule for run, sweep launch, bench and demo."""

from __future__ import annotations

import pytest

from augbench.errors import ConfigError
from augbench.overrides import check_hparams, parse_sets, route, split_overrides
from augbench.runs import resolve
from augbench.sweep.grid import parse_grid


def test_route_by_key_syntax():
    r = route({"train.epochs": "3", "h_min": "1.0", "method.h_max": "2.0", "instaaug:lambda0": "0.5"})
    assert r.settings == {"train.epochs": "3"}
    assert r.hparams == {"h_min": "1.0", "h_max": "2.0"}
    assert r.per_method == {"instaaug": {"lambda0": "0.5"}}
    assert r.for_method("instaaug", {"h_min", "lambda0"}) == {"h_min": "1.0", "lambda0": "0.5"}
    assert r.for_method("none", set()) == {}
    with pytest.raises(ConfigError, match="METHOD:HPARAM"):
        route({"instaaug:": "1"})


def test_parse_sets():
    assert parse_sets(["a.b=1", " c = x=y "]) == {"a.b": "1", "c": "x=y"}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_sets(["novalue"])


def test_unknown_keys_get_a_suggestion_and_the_valid_keys_grouped():
    with pytest.raises(ConfigError) as err:
        split_overrides({"train.epoch": "3"}, {"train.epochs", "data.root"}, "m", {"alpha"}, "benchmark b")
    msg = str(err.value)
    assert "(did you mean 'train.epochs'?);" in msg
    assert "benchmark settings: data.root, train.epochs; method hyperparameters: alpha" in msg
    with pytest.raises(ConfigError, match="this run's method is m, not other"):
        split_overrides({"other:alpha": "1"}, set(), "m", {"alpha"}, "b")


def test_run_and_grid_route_the_same_way(tiny):
    cfg = resolve("glyphs-rotation", "random-rotation", 0, {**tiny, "max_angle": "30"})
    assert resolve("glyphs-rotation", "random-rotation", 0, {**tiny, "random-rotation:max_angle": "30"}) == cfg
    grid = parse_grid({"benchmark": "glyphs-rotation", "runs": [{"method": "random-rotation"}, {"method": "none"}]},
                      "g")
    for overrides in ({**tiny, "max_angle": "30"}, {**tiny, "random-rotation:max_angle": "30"}):
        runs = {r.config.method: r.config for r in grid.expand(overrides).runs}
        assert runs["random-rotation"] == cfg
    assert runs["none"].hparams == resolve("glyphs-rotation", "none", 0, tiny).hparams  # reached no other method
    with pytest.raises(ConfigError, match="grid g has no method augerino"):
        grid.expand({"augerino:lr": "1"})


def test_a_named_variant_is_its_preset_over_the_recipe_and_under_the_other_overrides(tiny):
    tiny = {**tiny, "train.epochs": 3}  # past clutter-crop's 2 pretraining epochs
    explicit = resolve("clutter-crop", "instaaug", 0, {**tiny, "conditioning": "input-free"})
    assert resolve("clutter-crop", "instaaug", 0, {**tiny, "variant": "input-free"}) == explicit
    assert explicit.hparams["pretrain_epochs"] == 2  # clutter-crop's recipe still applies
    assert resolve("clutter-crop", "instaaug", 0, {**tiny, "variant": "lrp", "conditioning": "class"}).hparams[
        "conditioning"] == "class"  # an explicit override beats the variant's preset
    grid = parse_grid({"benchmark": "clutter-crop", "runs": [
        {"method": "instaaug", "hparams": {"variant": ["lrp", "input-free"]}}, {"method": "random-crop"}]}, "g")
    runs = grid.expand(tiny).runs
    assert [r.config.hparams.get("conditioning") for r in runs] == ["input", "input-free", None]
    assert runs[1].config == explicit
    assert {r.config.method: r.config for r in grid.expand({**tiny, "instaaug:variant": "input-free"}).runs}[
        "instaaug"] == explicit


@pytest.mark.parametrize("overrides, message", [
    ({"variant": "inputfree"}, "method instaaug: unknown variant 'inputfree' (did you mean 'input-free'?); valid: "
                               "class-specific, input-free, lrp, uniform"),
    ({"random-crop:variant": "lrp"}, "this run's method is instaaug, not random-crop"),
])
def test_a_misspelt_variant_is_a_one_line_error_with_a_close_match(tiny, overrides, message):
    with pytest.raises(ConfigError) as err:
        resolve("clutter-crop", "instaaug", 0, {**tiny, **overrides})
    assert message in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="unknown setting 'variant' for benchmark clutter-crop and method random"):
        resolve("clutter-crop", "random-crop", 0, {**tiny, "variant": "lrp"})  # a method without variants


def test_one_rule_for_bare_names_whatever_the_command():
    routed = route({"h_min": "1", "scale_min": "0.2"})
    check_hparams(routed, {"instaaug": {"h_min"}, "random-crop": {"scale_min"}}, "grid g")  # each reaches one
    with pytest.raises(ConfigError, match="--set scale_min: no method of bench declares it; valid: h_min"):
        check_hparams(routed, {"instaaug": {"h_min"}}, "bench")
    with pytest.raises(ConfigError, match="--set x:h_min: bench has no method x; its methods: instaaug"):
        check_hparams(route({"x:h_min": "1"}), {"instaaug": {"h_min"}}, "bench")
    with pytest.raises(ConfigError, match="--set instaaug:h_mx: unknown setting 'h_mx' for method instaaug"):
        check_hparams(route({"instaaug:h_mx": "1"}), {"instaaug": {"h_min"}}, "bench")
