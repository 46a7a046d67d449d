"""CIFAR loaders on fake python-pickle releases."""

import os
import pickle

import numpy as np
import pytest
import torch

from augbench.datasets.cifar import load_cifar
from augbench.errors import ConfigError, DataError


def _dump(path, obj, protocol):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        pickle.dump(obj, f, protocol=protocol)


def make_cifar10(root, protocol=2, per_batch=2, n_test=3):
    rng = np.random.default_rng(0)
    folder = root / "cifar-10-batches-py"
    batches = []
    for i in range(1, 6):
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        _dump(folder / f"data_batch_{i}",
              {"batch_label": f"batch {i}", "data": data, "labels": labels, "filenames": ["a.png"] * per_batch},
              protocol)
        batches.append((data, labels))
    test = rng.integers(0, 256, (n_test, 3072), dtype=np.uint8)
    _dump(folder / "test_batch", {"data": test, "labels": [9, 0, 5][:n_test]}, protocol)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    _dump(folder / "batches.meta", {"label_names": names, "num_vis": 3072}, protocol)
    return batches, test


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar10_reads_all_batches_in_order(tmp_path, protocol):
    batches, test = make_cifar10(tmp_path, protocol)
    ds = load_cifar(tmp_path, "cifar10")
    assert ds.classes[0] == "airplane" and ds.num_classes == 10 and ds.name == "cifar10"
    assert ds.train.x.shape == (10, 3, 32, 32) and ds.train.x.dtype == torch.uint8
    want = np.concatenate([d for d, _ in batches]).reshape(-1, 3, 32, 32)  # channel-major rows
    assert torch.equal(ds.train.x, torch.from_numpy(want))
    assert ds.train.y.tolist() == [l for _, ls in batches for l in ls]
    assert torch.equal(ds.test.x, torch.from_numpy(test.reshape(-1, 3, 32, 32)))
    assert ds.test.y.tolist() == [9, 0, 5] and ds.test.y.dtype == torch.int64
    # a red-only pixel row: the first 1024 values of a row are the red plane
    assert torch.equal(ds.train.x[0, 0].flatten(), torch.from_numpy(batches[0][0][0, :1024]))
    # root may also be the release folder itself
    assert torch.equal(load_cifar(tmp_path / "cifar-10-batches-py", "cifar10").train.x, ds.train.x)


def test_cifar100_fine_labels_and_coarse_meta(tmp_path):
    folder = tmp_path / "cifar-100-python"
    data = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072)
    _dump(folder / "train", {"data": data, "fine_labels": [3, 1], "coarse_labels": [0, 1], "filenames": ["x", "y"]}, 2)
    _dump(folder / "test", {"data": data[:1], "fine_labels": [2], "coarse_labels": [1]}, 2)
    _dump(folder / "meta",
          {"fine_label_names": ["apple", "bear", "cat", "dog"], "coarse_label_names": ["fruit", "mammal"]}, 2)
    ds = load_cifar(tmp_path, "cifar100")
    assert ds.classes == ["apple", "bear", "cat", "dog"]
    assert ds.train.y.tolist() == [3, 1] and ds.train.meta["coarse_label"].tolist() == [0, 1]
    assert ds.test.meta["coarse_label"].tolist() == [1]
    assert ds.info["coarse_classes"] == ["fruit", "mammal"]


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_refuses_pickles_that_run_code(tmp_path):
    make_cifar10(tmp_path)
    _dump(tmp_path / "cifar-10-batches-py" / "data_batch_3", {"data": _Evil(), "labels": []}, 2)
    with pytest.raises(DataError, match="data_batch_3.*refusing to load"):
        load_cifar(tmp_path, "cifar10")


def test_broken_releases(tmp_path):
    with pytest.raises(DataError, match="no folder cifar-10-batches-py in"):
        load_cifar(tmp_path, "cifar10")
    make_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(DataError, match="no file .*data_batch_4"):
        load_cifar(tmp_path, "cifar10")
    _dump(tmp_path / "cifar-10-batches-py" / "data_batch_4",
          {"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}, 2)
    with pytest.raises(DataError, match=r"data_batch_4 has data \(2, 100\)"):
        load_cifar(tmp_path, "cifar10")
    (tmp_path / "cifar-10-batches-py" / "data_batch_4").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="cannot read .*data_batch_4"):
        load_cifar(tmp_path, "cifar10")


def test_unknown_variant():
    with pytest.raises(ConfigError, match="cifar10, cifar100"):
        load_cifar("/nowhere", "cifar1000")
