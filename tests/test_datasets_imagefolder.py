"""Class-folder trees: sorted classes, resize + centre crop, val/test fallback, the one-tree seeded
split, file indices, errors."""

import pytest
import torch
from torchvision.io import encode_jpeg, encode_png, write_file

from augbench.datasets.imagefolder import load_imagefolder
from augbench.errors import ConfigError, DataError

pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding:DeprecationWarning")


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("AUGBENCH_CACHE", str(tmp_path / "cache"))


def _wide(path, centre, sides, h=20, w=60):
    """An image whose middle third (columns 20..39) is ``centre`` and the rest ``sides``."""
    img = torch.tensor(sides, dtype=torch.uint8).view(3, 1, 1).repeat(1, h, w)
    img[:, :, w // 3 : 2 * w // 3] = torch.tensor(centre, dtype=torch.uint8).view(3, 1, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = encode_png(img) if path.suffix == ".png" else encode_jpeg(img, quality=95)
    write_file(str(path), data)


def make_tree(root, test_name="val"):
    _wide(root / "train" / "zebra" / "1.png", (255, 0, 0), (0, 0, 255))
    _wide(root / "train" / "zebra" / "2.JPG", (255, 0, 0), (0, 0, 255), h=30, w=90)
    _wide(root / "train" / "ant" / "1.png", (0, 255, 0), (0, 0, 255))
    (root / "train" / "ant" / "notes.txt").write_text("not an image")
    _wide(root / test_name / "zebra" / "a.png", (255, 0, 0), (0, 0, 255))
    _wide(root / test_name / "ant" / "b.jpeg", (0, 255, 0), (0, 0, 255))
    _wide(root / test_name / "ant" / "c.png", (0, 255, 0), (0, 0, 255))
    return root


@pytest.mark.parametrize("test_name", ["val", "test"])
def test_sorted_classes_and_centre_crop(tmp_path, test_name):
    ds = load_imagefolder(make_tree(tmp_path / "data", test_name), image_size=16, cache=False)
    assert ds.classes == ["ant", "zebra"]
    assert ds.train.y.tolist() == [0, 1, 1] and ds.test.y.tolist() == [0, 0, 1]
    assert ds.train.x.shape == (3, 3, 16, 16) and ds.test.x.shape == (3, 3, 16, 16)
    assert ds.info["test_split"] == test_name
    # shorter side 20 -> 16 makes the image 48x16; the centre 16 columns are the middle third
    for split in (ds.train, ds.test):
        mean = split.x[:, :, 2:-2, 2:-2].float().mean(dim=(2, 3))  # away from resampling edges
        assert torch.all(mean[:, 2] < 20), "side colour leaked into the centre crop"
        assert torch.equal(mean[:, :2].argmax(dim=1), 1 - split.y)  # ant green, zebra red


def test_cache_roundtrip(tmp_path):
    root = make_tree(tmp_path / "data")
    a = load_imagefolder(root, image_size=8)
    b = load_imagefolder(root, image_size=8)
    assert torch.equal(a.train.x, b.train.x) and a.classes == b.classes
    assert load_imagefolder(root, image_size=12).image_shape == (3, 12, 12)  # size is in the key


def test_errors(tmp_path):
    root = tmp_path / "data"
    with pytest.raises(DataError, match="no folder"):
        load_imagefolder(root, 16)
    root.mkdir()
    with pytest.raises(DataError, match="no train/ folder and no class folders"):
        load_imagefolder(root, 16)
    make_tree(root)
    with pytest.raises(ConfigError, match="image_size"):
        load_imagefolder(root, 0)
    _wide(root / "val" / "bee" / "x.png", (1, 1, 1), (1, 1, 1))
    with pytest.raises(DataError, match="bee has no counterpart in train/"):
        load_imagefolder(root, 16, cache=False)


def test_missing_val_and_empty_classes(tmp_path):
    root = tmp_path / "data"
    (root / "train" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="no val/ or test/ folder"):
        load_imagefolder(root, 16)
    (root / "val" / "a").mkdir(parents=True)
    with pytest.raises(DataError, match="no images"):
        load_imagefolder(root, 16)


def make_single_tree(root, counts=(("ant", 5), ("bee", 4), ("cat", 1))):
    """One tree <class>/<image>, no train/ or val/: each class's images a distinct grey level."""
    for c, (name, n) in enumerate(counts):
        for i in range(n):
            _wide(root / name / f"{i:02d}.png", (40 * c + i, 0, 0), (40 * c + i, 0, 0), h=12, w=12)
    return root


def test_split_layout_records_file_indices(tmp_path):
    ds = load_imagefolder(make_tree(tmp_path / "data"), image_size=8, cache=False)
    assert ds.info["layout"] == "split"
    assert ds.train.meta["file_index"].tolist() == [0, 1, 2] and ds.test.meta["file_index"].tolist() == [0, 1, 2]


def test_single_tree_is_split_per_class_by_the_seed(tmp_path):
    root = make_single_tree(tmp_path / "tree")
    ds = load_imagefolder(root, image_size=8, cache=False, test_fraction=0.4, split_seed=0)
    assert ds.classes == ["ant", "bee", "cat"] and ds.info["layout"] == "single tree"
    # round(0.4 * 5) = 2 ants and round(0.4 * 4) = 2 bees held out; the lone cat trains
    assert torch.bincount(ds.test.y, minlength=3).tolist() == [2, 2, 0]
    assert torch.bincount(ds.train.y, minlength=3).tolist() == [3, 2, 1]
    # every file lands on exactly one side, and file_index names it in the sorted listing
    both = torch.cat([ds.train.meta["file_index"], ds.test.meta["file_index"]]).sort().values
    assert both.tolist() == list(range(10))
    red = torch.cat([ds.train.x, ds.test.x])[:, 0, 4, 4].tolist()  # grey level 40 * class + file number
    labels = torch.cat([ds.train.y, ds.test.y]).tolist()
    listing = [40 * c + i for c, n in enumerate((5, 4, 1)) for i in range(n)]
    index = torch.cat([ds.train.meta["file_index"], ds.test.meta["file_index"]]).tolist()
    assert [listing[i] for i in index] == red and [listing[i] // 40 for i in index] == labels
    # the same seed gives the same split; another seed another one (same sizes)
    again = load_imagefolder(root, image_size=8, cache=False, test_fraction=0.4, split_seed=0)
    assert torch.equal(again.test.meta["file_index"], ds.test.meta["file_index"])
    other = [load_imagefolder(root, image_size=8, cache=False, test_fraction=0.4, split_seed=s).test.meta["file_index"]
             for s in range(1, 6)]
    assert any(not torch.equal(o, ds.test.meta["file_index"]) for o in other)


def test_single_tree_split_is_in_the_cache_key(tmp_path):
    root = make_single_tree(tmp_path / "tree")
    a = load_imagefolder(root, image_size=8, test_fraction=0.4, split_seed=0)
    b = load_imagefolder(root, image_size=8, test_fraction=0.4, split_seed=3)
    c = load_imagefolder(root, image_size=8, test_fraction=0.25, split_seed=0)
    for ds, fraction, seed in [(a, 0.4, 0), (b, 0.4, 3), (c, 0.25, 0)]:  # each cached file is its own split
        fresh = load_imagefolder(root, image_size=8, cache=False, test_fraction=fraction, split_seed=seed)
        assert torch.equal(ds.test.meta["file_index"], fresh.test.meta["file_index"])
        assert (ds.info["test_fraction"], ds.info["split_seed"]) == (fraction, seed)
    assert len(c.test) == 2  # round(0.25 * 5) = 1 ant, round(0.25 * 4) = 1 bee


def test_single_tree_errors(tmp_path):
    root = make_single_tree(tmp_path / "tree", counts=(("ant", 1), ("bee", 1)))
    with pytest.raises(DataError, match="too few images"):
        load_imagefolder(root, 8, cache=False)
    with pytest.raises(ConfigError, match="test_fraction"):
        load_imagefolder(root, 8, cache=False, test_fraction=1.0)


@pytest.mark.parametrize("empty", ["train/bee", "val/bee", "dog"])
def test_an_empty_class_folder_is_refused_in_one_line(tmp_path, empty):
    """An empty class folder would be a class that no image teaches or tests: refused, naming the folder."""
    root = make_tree(tmp_path / "data") if "/" in empty else make_single_tree(tmp_path / "data")
    if empty.startswith("val/"):
        _wide(root / "train" / "bee" / "1.png", (1, 1, 1), (1, 1, 1))
    (root / empty).mkdir(parents=True)
    with pytest.raises(DataError) as info:
        load_imagefolder(root, 8, cache=False)
    assert str(info.value).startswith(f"imagefolder: class folder {root / empty} holds no images (")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("layout", ["split", "single tree"])
def test_a_tree_with_one_class_is_refused_in_one_line(tmp_path, layout):
    root = tmp_path / "data"
    if layout == "split":
        for split in ("train", "val"):
            for i in range(3):
                _wide(root / split / "ant" / f"{i}.png", (i, 0, 0), (i, 0, 0), h=12, w=12)
    else:
        make_single_tree(root, counts=(("ant", 6),))
    with pytest.raises(DataError, match=r"only one class \(ant\) in .*; a classification benchmark needs two or more"):
        load_imagefolder(root, 8, cache=False)


def test_a_run_on_a_one_class_tree_is_refused_and_leaves_nothing(tmp_path, capsys):
    from augbench.cli import main

    root, out = make_single_tree(tmp_path / "data", counts=(("ant", 6),)), tmp_path / "run"
    assert main(["run", "imagefolder-crop", "--method", "none", "--out", str(out), "--set", f"data.root={root}",
                 "--set", "data.image_size=8", "--set", "train.epochs=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "only one class (ant)" in err and not out.exists()
