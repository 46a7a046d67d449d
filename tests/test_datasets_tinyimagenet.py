"""Tiny-ImageNet loader on a tiny fake tree in the official layout."""

import pytest
import torch
from torchvision.io import encode_jpeg, write_file

from augbench.datasets import tinyimagenet
from augbench.datasets.tinyimagenet import load_tinyimagenet
from augbench.errors import DataError

# the tests write JPEGs with torchvision.io, deprecated in 0.29 (augbench silences it itself)
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding:DeprecationWarning")

WNIDS = ["n03", "n01", "n02"]  # deliberately not sorted: labels must follow this order
COLOURS = {"n03": (250, 10, 10), "n01": (10, 250, 10), "n02": (10, 10, 250)}


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("AUGBENCH_CACHE", str(tmp_path / "cache"))


def _jpeg(path, colour=None, grey=None, size=64):
    path.parent.mkdir(parents=True, exist_ok=True)
    if grey is not None:
        img = torch.full((1, size, size), grey, dtype=torch.uint8)
    else:
        img = torch.tensor(colour, dtype=torch.uint8).view(3, 1, 1).expand(3, size, size).contiguous()
    write_file(str(path), encode_jpeg(img, quality=95))


def make_tree(root):
    (root / "wnids.txt").parent.mkdir(parents=True, exist_ok=True)
    (root / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    (root / "words.txt").write_text("n01\tgoldfish\nn02\tsalamander, eft\nn03\tbullfrog\nn99\tunused\n")
    for w in WNIDS:
        for k in range(2):
            _jpeg(root / "train" / w / "images" / f"{w}_{k}.JPEG", COLOURS[w])
        (root / "train" / w / f"{w}_boxes.txt").write_text("")
    _jpeg(root / "train" / "n02" / "images" / "n02_2.JPEG", grey=128)  # grayscale JPEG, as in the release
    ann = []
    for k, w in enumerate(["n02", "n03", "n01", "n02"]):
        _jpeg(root / "val" / "images" / f"val_{k}.JPEG", COLOURS[w])
        ann.append(f"val_{k}.JPEG\t{w}\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(ann) + "\n")
    return root


def _colour_label(x):
    """Which channel dominates a solid-colour image -> the wnid whose colour it is."""
    return x.float().mean(dim=(2, 3)).argmax(dim=1)


def test_loads_official_layout(tmp_path):
    ds = load_tinyimagenet(make_tree(tmp_path / "tiny"), cache=False)
    assert ds.classes == WNIDS and ds.num_classes == 3
    assert ds.info["label_order"] == "wnids.txt line order"
    assert ds.info["class_words"] == ["bullfrog", "goldfish", "salamander, eft"]
    assert ds.train.x.shape == (7, 3, 64, 64) and ds.train.x.dtype == torch.uint8
    assert ds.train.y.tolist() == [0, 0, 1, 1, 2, 2, 2]
    assert ds.test.x.shape == (4, 3, 64, 64)
    assert ds.test.y.tolist() == [2, 0, 1, 2]  # n02, n03, n01, n02 in wnids.txt order
    # pixels agree with labels: label 0 = n03 = red, 1 = n01 = green, 2 = n02 = blue
    colour_of_label = torch.tensor([0, 1, 2])
    not_grey = torch.ones(7, dtype=torch.bool)
    not_grey[6] = False
    assert torch.equal(_colour_label(ds.train.x[not_grey]), colour_of_label[ds.train.y[not_grey]])
    assert torch.equal(_colour_label(ds.test.x), colour_of_label[ds.test.y])
    grey = ds.train.x[6].int()
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])  # grey -> RGB
    assert abs(grey.float().mean().item() - 128) < 3


def test_cache_is_used_and_invalidated(tmp_path, monkeypatch):
    root = make_tree(tmp_path / "tiny")
    first = load_tinyimagenet(root)
    calls = []
    real = tinyimagenet.decode_stack
    monkeypatch.setattr(tinyimagenet, "decode_stack", lambda *a, **k: calls.append(1) or real(*a, **k))
    second = load_tinyimagenet(root)
    assert calls == [] and torch.equal(first.train.x, second.train.x)
    _jpeg(root / "val" / "images" / "val_0.JPEG", (200, 200, 200))  # edit a file: new fingerprint
    third = load_tinyimagenet(root)
    assert calls and third.test.x[0].float().mean() > 150


@pytest.mark.parametrize(
    "breakage, message",
    [
        (lambda r: (r / "wnids.txt").unlink(), "no wnids.txt in"),
        (lambda r: (r / "val" / "val_annotations.txt").unlink(), "no val/val_annotations.txt"),
        (lambda r: __import__("shutil").rmtree(r / "train" / "n01"), "no folder .*n01/images"),
        (lambda r: (r / "val" / "val_annotations.txt").write_text("val_0.JPEG\tn77\t0\t0\t1\t1\n"),
         "n77 which is not in"),
        (lambda r: (r / "val" / "images" / "val_1.JPEG").unlink(), "val_1.JPEG, which does not exist"),
        (lambda r: (r / "val" / "images" / "val_1.JPEG").write_bytes(b"garbage"), "cannot decode image .*val_1.JPEG"),
        (lambda r: _jpeg(r / "train" / "n03" / "images" / "n03_1.JPEG", (1, 2, 3), size=32),
         "n03_1.JPEG is 32x32, expected 64x64"),
    ],
)
def test_broken_trees_raise_one_line_data_errors(tmp_path, breakage, message):
    root = make_tree(tmp_path / "tiny")
    breakage(root)
    with pytest.raises(DataError, match=message) as err:
        load_tinyimagenet(root, cache=False)
    assert "\n" not in str(err.value)


def test_missing_root(tmp_path):
    with pytest.raises(DataError, match="is not a directory .*official tiny-imagenet-200 layout"):
        load_tinyimagenet(tmp_path / "nowhere")


def test_one_wnid_is_refused_in_one_line(tmp_path):
    root = make_tree(tmp_path / "tiny")
    (root / "wnids.txt").write_text("n02\n")
    with pytest.raises(DataError, match=r"only one class \(n02\) in .*wnids.txt; a classification benchmark"):
        load_tinyimagenet(root, cache=False)
