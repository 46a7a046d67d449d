"""Declared settings: conversion from command-line strings, ranges, choices, unknown names."""

import pytest

from augbench.errors import ConfigError
from augbench.hparams import HParam, Spec


def test_coerce_from_strings():
    assert HParam(1, int).coerce("n", "3") == 3
    assert HParam(0.1, float).coerce("x", "1e-3") == 1e-3
    assert HParam(False, bool).coerce("b", "yes") is True
    assert HParam(False, bool).coerce("b", "off") is False
    assert HParam([1], int, is_list=True).coerce("l", "1,2,3") == [1, 2, 3]
    assert HParam([1.0], float, is_list=True).coerce("l", "[0.5, 1]") == [0.5, 1.0]


@pytest.mark.parametrize("hp,value,fragment", [
    (HParam(1, int, low=0), "-1", "below the minimum"),
    (HParam(1.0, float, high=2.0), 3, "above the maximum"),
    (HParam("a", str, choices=("a", "b")), "c", "is not one of 'a', 'b'"),
    (HParam(1, int), "1.5", "expected int"),
    (HParam(True, bool), "maybe", "expected bool"),
])
def test_invalid_values_name_the_problem(hp, value, fragment):
    with pytest.raises(ConfigError, match=fragment) as exc:
        hp.coerce("thing", value)
    assert "thing" in str(exc.value) and "\n" not in str(exc.value)


def test_unknown_setting_lists_valid_names():
    spec = Spec("method m", {"alpha": HParam(1.0), "beta": HParam(2.0)})
    with pytest.raises(ConfigError, match="unknown setting 'gamma'; valid: alpha, beta"):
        spec.resolve({"gamma": 1})
    assert spec.resolve({"beta": "3"}) == {"alpha": 1.0, "beta": 3.0}


def test_identity_excludes_bookkeeping():
    spec = Spec("b", {"lr": HParam(0.1), "root": HParam("", str, identity=False)})
    assert spec.identity_items(spec.resolve({"root": "/data"})) == {"lr": 0.1}
