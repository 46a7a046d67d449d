"""Split/Dataset containers and the decoded-dataset cache."""

import logging

import pytest
import torch

from augbench.datasets import base
from augbench.datasets.base import Dataset, Split, cache_path, cached
from augbench.errors import DataError


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("AUGBENCH_CACHE", str(tmp_path / "cache"))


def _split(n=5, offset=0):
    x = (torch.arange(n * 3 * 2 * 2) + offset).remainder(256).to(torch.uint8).view(n, 3, 2, 2)
    return Split(x, torch.arange(n), {"box": torch.arange(n * 4, dtype=torch.float32).view(n, 4)})


def _dataset():
    return Dataset("toy", _split(5), _split(3, 7), ["a", "b", "c", "d", "e"], {"groups": {"id": [0, 1]}, "note": "x"})


def test_split_validates_dtypes_and_lengths():
    with pytest.raises(DataError, match="uint8"):
        Split(torch.zeros(2, 3, 4, 4), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(DataError, match="int64"):
        Split(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.zeros(3, dtype=torch.int64))
    with pytest.raises(DataError, match="meta\\['box'\\]"):
        Split(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.zeros(2, dtype=torch.int64), {"box": torch.zeros(3, 4)})


def test_subset_takes_rows_of_everything():
    s = _split(5)
    sub = s.subset(torch.tensor([4, 1]))
    assert len(sub) == 2
    assert torch.equal(sub.x, s.x[[4, 1]]) and torch.equal(sub.y, torch.tensor([4, 1]))
    assert torch.equal(sub.meta["box"], s.meta["box"][[4, 1]])
    mask = torch.tensor([True, False, True, False, False])
    assert torch.equal(s.subset(mask).y, torch.tensor([0, 2]))


def test_to_moves_every_tensor():
    s = _split(3).to("meta")
    assert s.x.device.type == s.y.device.type == s.meta["box"].device.type == "meta"
    assert s.x.dtype == torch.uint8


def test_dataset_properties():
    ds = _dataset()
    assert ds.num_classes == 5
    assert ds.image_shape == (3, 2, 2)


def test_cache_path_is_stable_and_key_sensitive(tmp_path, monkeypatch):
    p = cache_path("toy", {"a": 1, "b": [1, 2]})
    assert p == cache_path("toy", {"b": [1, 2], "a": 1})  # order of keys is irrelevant
    assert p.parent == tmp_path / "cache" / "toy" and p.suffix == ".pt"
    assert p != cache_path("toy", {"a": 2, "b": [1, 2]})
    assert p != cache_path("other", {"a": 1, "b": [1, 2]})
    monkeypatch.setattr(base, "CACHE_FORMAT_VERSION", base.CACHE_FORMAT_VERSION + 1)
    assert p != cache_path("toy", {"a": 1, "b": [1, 2]})  # format bump invalidates


def test_cache_path_rejects_non_json_keys():
    with pytest.raises(TypeError):
        cache_path("toy", {"root": object()})


def _assert_same(a: Dataset, b: Dataset):
    assert a.name == b.name and a.classes == b.classes and a.info == b.info
    for sa, sb in ((a.train, b.train), (a.test, b.test)):
        assert torch.equal(sa.x, sb.x) and torch.equal(sa.y, sb.y)
        assert sa.meta.keys() == sb.meta.keys()
        assert all(torch.equal(sa.meta[k], sb.meta[k]) for k in sa.meta)


def test_cached_builds_once_and_reloads_weights_only():
    calls = []

    def build():
        calls.append(1)
        return _dataset()

    first = cached("toy", {"n": 1}, build)
    second = cached("toy", {"n": 1}, build)
    assert len(calls) == 1
    _assert_same(first, second)
    path = cache_path("toy", {"n": 1})
    state = torch.load(path, weights_only=True)
    assert torch.equal(state["train"]["x"], first.train.x)
    assert not list(path.parent.glob("*.tmp"))  # atomic write leaves no temp file
    cached("toy", {"n": 2}, build)  # a new key builds again
    assert len(calls) == 2


@pytest.mark.parametrize("garbage", [b"", b"not a torch file", None])
def test_corrupt_cache_is_rebuilt(garbage, caplog):
    cached("toy", {"n": 1}, _dataset)
    path = cache_path("toy", {"n": 1})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2] if garbage is None else garbage)  # None: truncated
    with caplog.at_level(logging.WARNING, logger="augbench"):
        ds = cached("toy", {"n": 1}, _dataset)
    assert "rebuilding" in caplog.text
    _assert_same(ds, _dataset())
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="augbench"):
        cached("toy", {"n": 1}, _dataset)  # the rewritten file is good again
    assert not caplog.records


def test_cache_with_a_foreign_key_is_rebuilt(caplog):
    cached("toy", {"n": 1}, _dataset)
    src, dst = cache_path("toy", {"n": 1}), cache_path("toy", {"n": 3})
    dst.write_bytes(src.read_bytes())  # right format, wrong key
    other = Dataset("other", _split(2), _split(2), ["a"], {})
    with caplog.at_level(logging.WARNING, logger="augbench"):
        assert cached("toy", {"n": 3}, lambda: other).name == "other"
    assert "stored key differs" in caplog.text


def test_unwritable_cache_warns_and_still_returns(tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("AUGBENCH_CACHE", str(blocker))  # a file where a folder should be
    with caplog.at_level(logging.WARNING, logger="augbench"):
        assert cached("toy", {"n": 1}, _dataset).name == "toy"
    assert "could not write" in caplog.text


def test_info_must_be_plain():
    bad = _dataset()
    bad.info["path"] = object()
    with pytest.raises(TypeError, match="Dataset.info"):
        cached("toy", {"n": 9}, lambda: bad)
