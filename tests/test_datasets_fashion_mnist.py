"""Fashion-MNIST IDX parsing on fake files, and on the real Debian package when present."""

import gzip
import struct

import pytest
import torch

from augbench.datasets.fashion_mnist import CLASSES, DEFAULT_ROOT, load_fashion_mnist, read_idx
from augbench.errors import DataError


def _idx(path, data: torch.Tensor):
    header = struct.pack(">BBBB", 0, 0, 0x08, data.dim()) + struct.pack(f">{data.dim()}i", *data.shape)
    path.write_bytes(gzip.compress(header + bytes(data.flatten().tolist())))


def make_files(root, n_train=5, n_test=3):
    root.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    tr = torch.randint(0, 256, (n_train, 28, 28), generator=g, dtype=torch.uint8)
    te = torch.randint(0, 256, (n_test, 28, 28), generator=g, dtype=torch.uint8)
    _idx(root / "train-images-idx3-ubyte.gz", tr)
    _idx(root / "train-labels-idx1-ubyte.gz", torch.arange(n_train, dtype=torch.uint8) % 10)
    _idx(root / "t10k-images-idx3-ubyte.gz", te)
    _idx(root / "t10k-labels-idx1-ubyte.gz", torch.tensor([9, 2, 1], dtype=torch.uint8)[:n_test])
    return tr, te


def test_fake_files(tmp_path):
    tr, te = make_files(tmp_path)
    ds = load_fashion_mnist(tmp_path)
    assert ds.classes == CLASSES and ds.num_classes == 10 and ds.image_shape == (3, 28, 28)
    assert ds.train.x.dtype == torch.uint8 and ds.train.y.dtype == torch.int64
    assert torch.equal(ds.train.x, tr[:, None].expand(-1, 3, -1, -1))  # grey repeated to RGB
    assert torch.equal(ds.test.x[:, 2], te)
    assert ds.train.y.tolist() == [0, 1, 2, 3, 4] and ds.test.y.tolist() == [9, 2, 1]


def test_broken_files(tmp_path):
    with pytest.raises(DataError, match="no file .*train-images-idx3-ubyte.gz.*apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path)
    make_files(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x03" + b"\x00" * 12))
    with pytest.raises(DataError, match="not a 1-d unsigned-byte IDX file"):
        load_fashion_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"plain bytes")
    with pytest.raises(DataError, match="not a readable gzip file"):
        load_fashion_mnist(tmp_path)
    _idx(tmp_path / "t10k-labels-idx1-ubyte.gz", torch.tensor([1, 2], dtype=torch.uint8))
    with pytest.raises(DataError, match="test has 3 images but 2 labels"):
        load_fashion_mnist(tmp_path)


def test_truncated_idx(tmp_path):
    p = tmp_path / "x.gz"
    p.write_bytes(gzip.compress(struct.pack(">BBBBi", 0, 0, 8, 1, 5) + b"\x01\x02"))
    with pytest.raises(DataError, match="holds 2 bytes of data, its header says \\(5,\\)"):
        read_idx(p, 1)


@pytest.mark.skipif(not DEFAULT_ROOT.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_real_package():
    ds = load_fashion_mnist()
    assert len(ds.train) == 60000 and len(ds.test) == 10000
    assert ds.train.y.bincount().tolist() == [6000] * 10 and ds.test.y.bincount().tolist() == [1000] * 10
    assert ds.test.y[:10].tolist() == [9, 2, 1, 1, 6, 1, 4, 6, 5, 7]  # the official t10k order
