"""RawFooT patches: halves, positions, labels, lightings, determinism, errors.

Fake images encode their own coordinates: R = row, G = column, B = 10 * class + lighting,
so every patch says where it was cut from and from which file.
"""

import struct
import zlib

import pytest
import torch
from torchvision.io import encode_png, write_file

from augbench.datasets.rawfoot import GROUPS, cut_patches, load_rawfoot
from augbench.errors import ConfigError, DataError

pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding:DeprecationWarning")

H, W = 40, 24
CLASSES = [2, 5, 7]  # a subset with gaps: the loader must infer them
LIGHTINGS = [1, 2, 3]


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("AUGBENCH_CACHE", str(tmp_path / "cache"))


def _image(c, l):
    img = torch.empty((3, H, W), dtype=torch.uint8)
    img[0] = torch.arange(H, dtype=torch.uint8).view(H, 1)
    img[1] = torch.arange(W, dtype=torch.uint8).view(1, W)
    img[2] = 10 * c + l
    return img


def make_tree(root):
    root.mkdir(parents=True, exist_ok=True)
    for c in CLASSES:
        for l in LIGHTINGS:
            write_file(str(root / f"{c:04d}-{l:02d}.png"), encode_png(_image(c, l)))
    (root / "readme.txt").write_text("ignored")
    return root


def _load(root, **kw):
    args = dict(train_lightings=[2], patches_per_image=5, patch_size=8, seed=0, cache=False)
    args.update(kw)
    return load_rawfoot(root, **args)


def test_patches_come_from_the_right_half_and_file(tmp_path):
    ds = _load(make_tree(tmp_path / "raw"))
    assert ds.classes == ["0002", "0005", "0007"] and ds.info["class_ids"] == CLASSES
    assert ds.train.x.shape == (3 * 1 * 5, 3, 8, 8) and ds.train.x.dtype == torch.uint8
    assert ds.test.x.shape == (3 * 3 * 5, 3, 8, 8)  # default: every lighting present
    ar = torch.arange(8)
    for split, lo, hi in ((ds.train, 0, H // 2), (ds.test, H // 2, H)):
        rows, cols, tag = split.x[:, 0].long(), split.x[:, 1].long(), split.x[:, 2].long()
        assert torch.equal(rows, rows[:, :1, :1] + ar.view(1, 8, 1).expand_as(rows))  # contiguous block
        assert torch.equal(cols, cols[:, :1, :1] + ar.view(1, 1, 8).expand_as(cols))
        assert int(rows.min()) >= lo and int(rows.max()) < hi  # train: upper half, test: lower
        assert int(cols.max()) < W
        class_id = torch.tensor(CLASSES)[split.y]
        assert torch.equal(tag[:, 0, 0], 10 * class_id + split.meta["lighting"])  # label and lighting match the file
    assert set(ds.train.meta["lighting"].tolist()) == {2}
    assert ds.test.meta["lighting"].bincount(minlength=4).tolist() == [0, 15, 15, 15]
    assert ds.train.y.bincount().tolist() == [5, 5, 5]


def test_positions_are_random_deterministic_and_independent_of_test_lightings(tmp_path):
    root = make_tree(tmp_path / "raw")
    a = _load(root)
    b = _load(root)
    c = _load(root, seed=1)
    d = _load(root, test_lightings=[3])
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.x, b.test.x)
    assert not torch.equal(a.train.x, c.train.x)
    assert torch.equal(a.train.x, d.train.x)  # the test lightings do not move training patches
    assert torch.equal(d.test.x, a.test.x[a.test.meta["lighting"] == 3])
    assert len(set(a.train.x[:, 0, 0, 0].tolist())) > 1  # positions vary


def test_groups_and_info(tmp_path):
    ds = _load(make_tree(tmp_path / "raw"), test_lightings=[1, 3])
    assert ds.info["groups"] == GROUPS
    easy, hard = set(GROUPS["easy"]), set(GROUPS["hard"])
    assert not easy & hard and easy | hard == set(range(1, 47)) and len(easy) == len(hard) == 23
    assert {5, 9, 11, 13, 32, 46} <= hard and {1, 4, 10, 14, 31} <= easy  # Table D.1
    assert ds.info["train_lightings"] == [2] and ds.info["test_lightings"] == [1, 3]


def test_out_size_and_test_patch_count(tmp_path):
    ds = _load(make_tree(tmp_path / "raw"), out_size=4, test_patches_per_image=2)
    assert ds.train.x.shape == (15, 3, 4, 4) and ds.test.x.shape == (3 * 3 * 2, 3, 4, 4)


def test_cache_roundtrip(tmp_path):
    root = make_tree(tmp_path / "raw")
    a = _load(root, cache=True)
    b = _load(root, cache=True)
    assert torch.equal(a.test.meta["lighting"], b.test.meta["lighting"]) and torch.equal(a.train.x, b.train.x)


def _png16(img16):
    """A 16-bit RGB PNG (torchvision can only write 8-bit ones)."""
    c, h, w = img16.shape
    rows = img16.permute(1, 2, 0).reshape(h, w * 3).tolist()
    raw = b"".join(b"\x00" + struct.pack(f">{w * 3}H", *row) for row in rows)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def test_16bit_pngs_are_rounded_to_8bit(tmp_path):
    root = tmp_path / "raw16"
    root.mkdir()
    for c in (3, 4):  # two classes: one would be refused
        for l in (1, 2):
            img8 = _image(c, l)
            (root / f"{c:04d}-{l:02d}.png").write_bytes(_png16(img8.int() * 257))
    ds = _load(root, train_lightings=[1])
    blue = ds.train.x[ds.train.y == 0, 2]  # class 3 under lighting 1: 10 * 3 + 1
    assert torch.equal(blue, torch.full_like(blue, 31))
    assert int(ds.test.x[:, 0].min()) >= H // 2


def test_cut_patches_known_values():
    img = torch.arange(2 * 5 * 6).view(2, 5, 6)
    p = cut_patches(img, torch.tensor([0, 3]), torch.tensor([4, 1]), 2)
    assert p.shape == (2, 2, 2, 2)
    assert torch.equal(p[0], img[:, 0:2, 4:6]) and torch.equal(p[1], img[:, 3:5, 1:3])


def test_errors(tmp_path):
    with pytest.raises(DataError, match="is not a directory"):
        _load(tmp_path / "nowhere")
    root = make_tree(tmp_path / "raw")
    with pytest.raises(ConfigError, match="train_lightings must be distinct integers 1..46"):
        _load(root, train_lightings=[0])
    with pytest.raises(ConfigError, match="at least one lighting"):
        _load(root, train_lightings=[])
    with pytest.raises(ConfigError, match="patch_size 21 does not fit"):
        _load(root, patch_size=21)
    (root / "0005-02.png").unlink()
    with pytest.raises(DataError, match="missing in .*e.g. 0005-02.png"):
        _load(root)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no files named like 0001-01.png"):
        _load(empty)


def test_one_class_is_refused_in_one_line(tmp_path):
    root = tmp_path / "raw"
    root.mkdir()
    for l in LIGHTINGS:
        write_file(str(root / f"0003-{l:02d}.png"), encode_png(_image(3, l)))
    with pytest.raises(DataError, match=r"only one class \(0003\) in .*needs two or more"):
        _load(root)
