"""Streamed (file-backed) splits: the same rows, pixels, batches and numbers as the in-memory path."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torchvision.io import encode_jpeg, encode_png, write_file

from augbench.datasets.imagefolder import load_imagefolder
from augbench.datasets.stream import FileSplit, PathTable, should_stream
from augbench.errors import ConfigError
from augbench.rundir import read_records
from augbench.runs import build_trainer, execute, resolve
from augbench.train import trainer as trainer_module
from augbench.train.trainer import Trainer

pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding:DeprecationWarning")


def make_tree(root, n_train=14, n_test=6, classes=("ant", "bee", "cat")):
    """train/ and val/ class folders of random images, JPEG and PNG, of several sizes."""
    g = torch.Generator().manual_seed(0)
    for split, n in (("train", n_train), ("val", n_test)):
        for c in classes:
            for i in range(n):
                img = torch.randint(0, 256, (3, 18 + i % 5, 26), generator=g, dtype=torch.uint8)
                img[:, :, :8] = 60 * classes.index(c)  # a class cue, so training learns something
                path = root / split / c / f"{i:02d}.{'png' if i % 3 == 0 else 'jpg'}"
                path.parent.mkdir(parents=True, exist_ok=True)
                write_file(str(path), encode_png(img) if path.suffix == ".png" else encode_jpeg(img, quality=90))
    return root


def test_path_table_takes_rows_in_order(tmp_path):
    paths = [tmp_path / "a" / "é.jpg", tmp_path / "bb.png", tmp_path / "c" / "d" / "e.jpeg"]
    table = PathTable.of(paths)
    assert len(table) == 3 and [table[i] for i in range(3)] == paths
    sub = table.take(np.array([2, 0, 2]))
    assert sub.paths([0, 1, 2]) == [paths[2], paths[0], paths[2]]


def test_should_stream():
    assert should_stream("on", 0, 100.0) and not should_stream("off", 10**12, 0.0)
    assert should_stream("auto", 2 * 10**9, 1.0) and not should_stream("auto", 10**9, 1.0)
    with pytest.raises(ConfigError, match="data.stream"):
        should_stream("maybe", 0, 1.0)


def test_streamed_rows_are_the_in_memory_pixels(tmp_path):
    root = make_tree(tmp_path / "data")
    mem = load_imagefolder(root, 16, cache=False)
    st = load_imagefolder(root, 16, stream="on", workers=2)
    assert isinstance(st.train, FileSplit) and isinstance(st.test, FileSplit)
    assert st.image_shape == mem.image_shape and st.classes == mem.classes and len(st.train) == len(mem.train)
    assert torch.equal(st.train.y, mem.train.y) and torch.equal(st.test.meta["file_index"], mem.test.meta["file_index"])
    assert torch.equal(st.train.x[:], mem.train.x)
    perm = torch.randperm(len(mem.train), generator=torch.Generator().manual_seed(1))
    sub, ref = st.train.subset(perm[:20]), mem.train.x[perm[:20]]
    assert torch.equal(sub.x[torch.arange(20)], ref) and torch.equal(sub.x[3], ref[3])
    assert torch.equal(sub.x[torch.arange(20) % 2 == 0], ref[::2])
    batches = list(sub.files.batches([torch.tensor([4, 0]), torch.arange(5, 20)]))  # by DataLoader workers
    assert torch.equal(batches[0], ref[[4, 0]]) and torch.equal(batches[1], ref[5:20])
    # an evaluation loop: consecutive slices, read ahead by workers from the second one on
    parts = [st.train.x[a:a + 5] for a in range(0, len(st.train), 5)]
    assert torch.equal(torch.cat(parts), mem.train.x) and st.train.files._ahead is None
    assert torch.equal(st.train.x[5:10], mem.train.x[5:10])  # a new pass starts over


def test_auto_streams_only_beyond_the_budget(tmp_path):
    root = make_tree(tmp_path / "data")
    assert isinstance(load_imagefolder(root, 16, stream="auto", memory_budget_gb=1e-6).train, FileSplit)
    assert not isinstance(load_imagefolder(root, 16, stream="auto", memory_budget_gb=1.0).train, FileSplit)


def _stop_at(monkeypatch, step: int) -> None:
    """A termination signal right after global step `step` (as `augbench.sweep.job` would raise it)."""
    original = Trainer._step

    def step_then_signal(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        if self.global_step + 1 == step:
            trainer_module.STOP.set()
        return out

    monkeypatch.setattr(Trainer, "_step", step_then_signal)


def _outcome(run_dir):
    recs = read_records(run_dir / "records.jsonl").records
    for r in recs:
        r.pop("time")
    weights = torch.load(run_dir / "final_weights.pt", weights_only=True)
    inspect = torch.load(run_dir / "inspect.pt", weights_only=True)
    return json.loads((run_dir / "status.json").read_text())["metrics"], recs, weights, inspect


def _same(a, b) -> None:
    (ma, ra, wa, ia), (mb, rb, wb, ib) = a, b
    ma.pop("wall_time", None), mb.pop("wall_time", None)
    assert ma == mb and ra == rb
    for part in ("model", "method"):
        assert wa[part].keys() == wb[part].keys() and all(torch.equal(wa[part][k], wb[part][k]) for k in wa[part])
    assert ia.keys() == ib.keys() and all(torch.equal(ia[k], ib[k]) for k in ia)


@pytest.mark.slow
def test_streamed_run_and_its_resume_give_the_in_memory_numbers(tmp_path, monkeypatch):
    root = make_tree(tmp_path / "data")
    sets = {"data.root": str(root), "data.image_size": 16, "model.name": "small_cnn", "model.width": 0.25,
            "train.epochs": 2, "train.batch_size": 8, "eval.tta_views": 2, "eval.batch_size": 5,
            "run.progress": False, "run.log_every": 1, "data.workers": 1}
    memory = resolve("imagefolder-crop", "random-crop", 3, {**sets, "data.stream": "off"})
    streamed = resolve("imagefolder-crop", "random-crop", 3, {**sets, "data.stream": "on"})
    assert memory.run_id == streamed.run_id  # how the images are held is no part of the identity
    trainer = build_trainer(streamed, tmp_path / "unused")
    assert isinstance(trainer.train_split, FileSplit) and isinstance(trainer.val_split, FileSplit)
    assert not isinstance(build_trainer(memory, tmp_path / "unused").train_split, FileSplit)
    execute(memory, tmp_path / "memory")
    execute(streamed, tmp_path / "streamed")
    reference = _outcome(tmp_path / "memory")
    _same(_outcome(tmp_path / "streamed"), reference)

    _stop_at(monkeypatch, 7)  # mid-epoch 1 (4 steps an epoch): the stream restarts at step 3 of the epoch
    with pytest.raises(SystemExit):
        execute(streamed, tmp_path / "resumed")
    trainer_module.STOP.clear()
    monkeypatch.undo()
    ck = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)
    assert (ck["epoch"], ck["step_in_epoch"]) == (1, 3)
    execute(streamed, tmp_path / "resumed")
    _same(_outcome(tmp_path / "resumed"), reference)
