"""`--set` routing (augbench.overrides): one rule for run, sweep launch, bench and demo."""

from __future__ import annotations

import pytest

from augbench.errors import ConfigError
from augbench.overrides import parse_sets, route, split_overrides
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
