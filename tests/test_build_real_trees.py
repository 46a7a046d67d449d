"""scripts/build_real_trees.py: the real-image trees of the folder evidence, rebuilt byte for byte."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import pytest

from augbench.datasets.fashion_mnist import DEFAULT_ROOT

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "build_real_trees.py"


def _script():
    spec = importlib.util.spec_from_file_location("build_real_trees", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.png")):
        h.update(str(p.relative_to(root)).encode() + p.read_bytes())
    return h.hexdigest()


def test_digits_tree_is_every_sklearn_digit_and_rebuilds_identically(tmp_path):
    pytest.importorskip("sklearn")
    build = _script()
    assert build.build_digits(tmp_path / "a") == 1797
    assert sorted(d.name for d in (tmp_path / "a").iterdir()) == [str(c) for c in range(10)]
    assert sum(1 for _ in (tmp_path / "a").rglob("*.png")) == 1797
    build.build_digits(tmp_path / "b")
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")


@pytest.mark.skipif(not (DEFAULT_ROOT / "train-images-idx3-ubyte.gz").is_file(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_tree_takes_per_class_images_by_seed(tmp_path):
    build = _script()
    assert build.build_fashion(tmp_path / "a", per_class=3, seed=0) == 30
    assert {len(list(d.glob("*.png"))) for d in (tmp_path / "a").iterdir()} == {3}
    build.build_fashion(tmp_path / "b", per_class=3, seed=0)
    build.build_fashion(tmp_path / "c", per_class=3, seed=1)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b") != _digest(tmp_path / "c")
