"""Write the golden run directories under tests/golden/runs (hand-written numbers, checked in).

    .venv/bin/python tests/golden/build_runs.py      # rewrites tests/golden/runs from scratch

The runs cover what the results code must handle: several seeds per cell, a random-crop sweep
whose best VALIDATION setting is not its best test setting, an E.1-style [Hmin, Hmax] sweep and
fixed-lambda runs, a cell with no runs (InstaAug w/o LRP), a failed run (Augerino), an
interrupted run whose records file ends in a truncated line (AdaAug), a finished run whose test
record was cut off (its metrics come from status.json), a records file with a corrupt middle
line, an embedded benchmark (glyphs-rotation) with per-instance rotation ranges, crop boxes for
Figure 6, and RawFooT runs with a random-colour sweep for Figure 7 and Tables 3-4.

inspect.pt files are in the trainer's layout: the first test images ("x", "y", "index"), their
meta tensors ("meta.<name>", e.g. the true rotation "meta.interval"), the method's inspect keys
and constants ("const.candidate_boxes"). One run (InstaAug w/o input, seed 0) keeps the older
layout (method keys only), so figures are checked to degrade on it.

After changing this file, regenerate the expected outputs too (see tests/test_results_golden.py).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).parent
RUNS = HERE / "runs"
T0 = 1_700_000_000.0

CROP_SETTINGS = {"model.name": "preact_resnet18", "train.epochs": 3, "eval.tta_views": 50}
GLYPH_SETTINGS = {"model.name": "small_cnn", "train.epochs": 3, "eval.tta_views": 4, "data.n_train": 8,
                  "data.n_test": 8, "data.image_size": 32, "data.seed": 0}
RAW_SETTINGS = {"model.name": "preact_resnet18", "train.epochs": 3, "eval.tta_views": 10,
                "data.random_lightings": 0}
INSTA = {"parameterization": "lrp", "conditioning": "input", "h_min": 3.0, "h_max": 3.5, "lambda_rule": "dynamic",
         "lambda0": 0.2}


def run_id(benchmark: str, method: str, seed: int, settings: dict[str, Any], hparams: dict[str, Any]) -> str:
    import hashlib

    blob = json.dumps([benchmark, method, seed, settings, hparams], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class Run:
    """One hand-written run directory."""

    def __init__(self, name: str, benchmark: str, method: str, seed: int, settings: dict[str, Any],
                 hparams: dict[str, Any]) -> None:
        self.dir = RUNS / name
        self.dir.mkdir(parents=True)
        self.header = {"run_id": run_id(benchmark, method, seed, settings, hparams), "benchmark": benchmark,
                       "method": method, "seed": seed}
        self.lines: list[str] = []
        self.t = T0
        (self.dir / "config.json").write_text(json.dumps({
            "run_id": self.header["run_id"],
            "identity": {"version": 1, "benchmark": benchmark, "method": method, "seed": seed, "settings": settings,
                         "hparams": hparams},
            "benchmark": benchmark, "method": method, "seed": seed, "settings": settings, "hparams": hparams,
            "versions": {"python": "3.11", "torch": "2.x", "augbench": "0.1.0"}}, indent=1))

    def record(self, split: str, step: int, epoch: int, metrics: dict[str, Any]) -> Run:
        self.t += 10.0
        metrics = {k: round(v, 6) if isinstance(v, float) else v for k, v in metrics.items()}
        self.lines.append(json.dumps({**self.header, "step": step, "epoch": epoch, "split": split, "time": self.t,
                                      "metrics": metrics}))
        return self

    def curve(self, val_acc: list[float], extra: dict[str, list[float]] | None = None) -> Run:
        """Train and val records per epoch; extra val metrics (entropy, lambda) per epoch."""
        for e, acc in enumerate(val_acc):
            self.record("train", 10 * (e + 1), e, {"loss": round(1.5 - 0.3 * e, 4), "acc": round(acc - 0.05, 4)})
            val = {"loss": round(1.4 - 0.3 * e, 4), "acc": acc, "lr": 0.1}
            val.update({k: v[e] for k, v in (extra or {}).items()})
            self.record("val", 10 * (e + 1), e, val)
        return self

    def test(self, best_epoch: int, **metrics: float) -> Run:
        return self.record("test", 30, 3, {"loss": 1.0, **metrics, "best_epoch": best_epoch, "steps": 30})

    def done(self, truncate_last: bool = False, corrupt_line: int | None = None) -> Run:
        lines = list(self.lines)
        if corrupt_line is not None:
            lines.insert(corrupt_line, "{this is not json")
        text = "\n".join(lines) + "\n"
        if truncate_last:
            text = text[: len(text) - len(lines[-1]) // 2 - 1]
        (self.dir / "records.jsonl").write_text(text)
        last = json.loads(self.lines[-1])
        if last["split"] == "test":
            (self.dir / "status.json").write_text(json.dumps({"state": "done", "time": self.t,
                                                              "metrics": last["metrics"]}, indent=1))
        return self

    def failed(self, reason: str) -> Run:
        (self.dir / "records.jsonl").write_text("\n".join(self.lines) + ("\n" if self.lines else ""))
        (self.dir / "status.json").write_text(json.dumps({"state": "failed", "time": self.t, "reason": reason,
                                                          "traceback": "Traceback (most recent call last):\n  ...\n"
                                                                       + reason + "\n"}, indent=1))
        return self

    def partial(self) -> Run:
        text = "\n".join(self.lines) + "\n"
        (self.dir / "records.jsonl").write_text(text[: len(text) - 25])  # a killed writer: last line cut
        return self

    def inspect(self, tensors: dict[str, torch.Tensor]) -> Run:
        torch.save({k: v.contiguous() for k, v in tensors.items()}, self.dir / "inspect.pt")
        return self


def example_images(n: int, size: int, seed: int) -> dict[str, torch.Tensor]:
    """inspect.pt's per-sample part: n uint8 images (a colour gradient, a bright square), labels, indices."""
    g = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(0, 1, size)
    base = torch.rand(n, 3, 1, 1, generator=g) * (0.4 + 0.6 * ramp.view(1, 1, size, 1) * ramp.view(1, 1, 1, size))
    corner = torch.randint(0, size // 2, (n, 2), generator=g)
    rows, cols = torch.arange(size).view(1, size, 1), torch.arange(size).view(1, 1, size)
    square = ((rows >= corner[:, :1, None]) & (rows < corner[:, :1, None] + size // 3)
              & (cols >= corner[:, 1:, None]) & (cols < corner[:, 1:, None] + size // 3))
    x = torch.where(square.unsqueeze(1), torch.tensor(0.95), base)
    return {"x": (x * 255).round().to(torch.uint8), "y": torch.randint(0, 4, (n,), generator=g),
            "index": torch.arange(n)}


def candidate_grid() -> torch.Tensor:
    """(K, 4) candidate boxes: a 2x2 and a 3x3 grid of squares and the whole image (an LRP-like set)."""
    boxes = [[0.5, 0.5, 1.0, 1.0]]
    for n in (2, 3):
        side = 2 / (n + 1)
        centres = [side / 2 + i * (1 - side) / (n - 1) for i in range(n)]
        boxes += [[cy, cx, side, side] for cy in centres for cx in centres]
    return torch.tensor(boxes)


def crop_boxes(n: int, s: int, centre: tuple[float, float], size: tuple[float, float], seed: int) -> torch.Tensor:
    """(n, s, 4) boxes around a centre with sides in a range, deterministic."""
    g = torch.Generator().manual_seed(seed)
    side = size[0] + (size[1] - size[0]) * torch.rand(n, s, generator=g)
    cy = (centre[0] + 0.1 * torch.randn(n, s, generator=g)).clamp(side / 2, 1 - side / 2)
    cx = (centre[1] + 0.1 * torch.randn(n, s, generator=g)).clamp(side / 2, 1 - side / 2)
    return torch.stack([cy, cx, side, side], -1)


def build() -> None:
    if RUNS.exists():
        shutil.rmtree(RUNS)
    # ------------------------------------------------------------------ tinyimagenet-crop (Table 1, E.1, Figs 6, E.1)
    tc = "tinyimagenet-crop"
    tin_images = example_images(4, 64, 0)
    for seed, (acc, val) in enumerate(((0.551, 0.55), (0.553, 0.56), (0.549, 0.54))):
        r = Run(f"tin/none-s{seed}", tc, "none", seed, CROP_SETTINGS, {"flip": False})
        r.curve([0.45, 0.50, val]).test(2, acc=acc, tta_acc=acc + 0.001)
        r.done(truncate_last=seed == 2)  # seed 2: its test record was cut off; status.json has the metrics
    for scale, vals, tests in ((0.1, (0.63, 0.64), (0.643, 0.647)), (0.5, (0.60, 0.61), (0.660, 0.664))):
        for seed in range(2):
            r = Run(f"tin/random-crop-{scale}-s{seed}", tc, "random-crop", seed, CROP_SETTINGS,
                    {"scale_min": scale, "scale_max": 1.0})
            r.curve([0.5, vals[seed], vals[seed] - 0.01]).test(1, acc=tests[seed] - 0.01, tta_acc=tests[seed])
            if seed == 0:
                r.inspect({**tin_images, "crop_boxes": crop_boxes(4, 8, (0.5, 0.5), (math.sqrt(scale), 1.0), 5)})
            r.done()
    cands = candidate_grid()
    probs = torch.softmax(-4 * (cands[:, 2] - 0.5).abs().expand(4, -1) + torch.randn(
        4, len(cands), generator=torch.Generator().manual_seed(3)), -1)
    boxes_lrp = cands[torch.multinomial(probs, 16, replacement=True, generator=torch.Generator().manual_seed(4))]
    for seed, (val, tta) in enumerate(((0.66, 0.662), (0.67, 0.659), (0.65, 0.660))):
        r = Run(f"tin/instaaug-lrp-s{seed}", tc, "instaaug", seed, CROP_SETTINGS, INSTA)
        r.curve([0.5, 0.6, val], {"entropy": [1.2, 2.9, 3.2], "lambda": [0.2, 0.24, 0.24]})
        r.test(2, acc=tta - 0.02, tta_acc=tta, entropy=3.2)
        if seed == 0:
            r.inspect({**tin_images, "crop_probs": probs, "crop_boxes": boxes_lrp, "entropy": torch.full((4,), 3.2),
                       "const.candidate_boxes": cands})
        r.done(corrupt_line=2 if seed == 1 else None)
    for (hmin, hmax), tta in (((2.0, 2.5), 0.650), ((1.0, 1.5), 0.628)):
        r = Run(f"tin/instaaug-h{hmin}-{hmax}-s0", tc, "instaaug", 0, CROP_SETTINGS,
                {**INSTA, "h_min": hmin, "h_max": hmax})
        r.curve([0.5, 0.6, tta - 0.01]).test(2, acc=tta - 0.02, tta_acc=tta).done()
    for lam, tta in ((0.1, 0.560), (0.3, 0.645)):
        r = Run(f"tin/instaaug-fixed{lam}-s0", tc, "instaaug", 0, CROP_SETTINGS,
                {**INSTA, "lambda_rule": "fixed", "lambda0": lam})
        r.curve([0.5, 0.55, tta - 0.03]).test(2, acc=tta - 0.02, tta_acc=tta).done()
    for seed in range(2):
        r = Run(f"tin/instaaug-input-free-s{seed}", tc, "instaaug", seed, CROP_SETTINGS,
                {**INSTA, "conditioning": "input-free"})
        r.curve([0.5, 0.6, 0.63]).test(2, acc=0.61, tta_acc=0.632 + 0.002 * seed)
        if seed == 0:
            r.inspect({"crop_boxes": crop_boxes(4, 16, (0.5, 0.5), (0.5, 0.9), 2)})  # older layout: no images
        r.done()
    Run("tin/augerino-s0", tc, "augerino", 0, CROP_SETTINGS, {"generators": "crop", "lam": 0.01}).curve(
        [0.3]).failed("RuntimeError: CUDA out of memory")
    Run("tin/adaaug-s0", tc, "adaaug", 0, CROP_SETTINGS, {"ops": "standard"}).curve([0.3, 0.4]).partial()
    # ------------------------------------------------------------------ glyphs-rotation (embedded; Fig 5, curves)
    gr = "glyphs-rotation"
    half = math.pi / 4
    a = torch.linspace(-0.7, 0.7, 8)[torch.tensor([3, 0, 6, 1, 7, 2, 5, 4])]  # each test glyph's own rotation
    glyph_test = {**example_images(8, 32, 1), "meta.angle": a,
                  "meta.interval": torch.stack([-math.pi / 2 - a, math.pi / 2 - a], -1)}
    for method, hp, accs, ent in (("none", {"flip": False}, (0.70, 0.72), None),
                                  ("random-rotation", {"max_angle": 45.0}, (0.80, 0.78), None),
                                  ("instaaug", {**INSTA, "parameterization": "rotation"}, (0.90, 0.93), True)):
        for seed, acc in enumerate(accs):
            r = Run(f"glyphs/{method}-s{seed}", gr, method, seed, GLYPH_SETTINGS, hp)
            extra = {"entropy": [0.5, 0.9, 1.1], "lambda": [0.1, 0.12, 0.144]} if ent else None
            r.curve([0.5, acc - 0.05, acc - 0.02], extra)
            metrics = {"acc": acc - 0.01, "tta_acc": acc}
            if method != "none":
                metrics.update(coverage=0.5 if method == "random-rotation" else 0.8 + 0.05 * seed,
                               violation=0.0 if method == "random-rotation" else 0.05)
            r.test(2, **metrics)
            if method == "random-rotation" and seed == 0:
                r.inspect({**glyph_test, "rotation_range": torch.tensor([[-half, half]]).expand(8, 2).clone()})
            if method == "instaaug" and seed == 0:  # ranges inside each instance's (-pi/2 - a, pi/2 - a)
                r.inspect({**glyph_test, "rotation_range": torch.stack([-1.3 - a, 1.3 - a], -1),
                           "entropy": torch.full((8,), 1.1)})
            r.done()
    # ------------------------------------------------------------------ rawfoot-color (Tables 3, 4; Fig 7)
    rc = "rawfoot-color"
    for seed, acc in enumerate((0.728, 0.730)):
        Run(f"raw/none-s{seed}", rc, "none", seed, RAW_SETTINGS, {"flip": False}).curve([0.6, 0.7]).test(
            1, acc=acc, tta_acc=acc, acc_easy=acc + 0.1, acc_hard=acc - 0.1, tta_acc_easy=acc + 0.1,
            tta_acc_hard=acc - 0.1).done()
    for seed, acc in enumerate((0.68, 0.70)):
        Run(f"raw/none-1light-s{seed}", rc, "none", seed, {**RAW_SETTINGS, "data.random_lightings": 1},
            {"flip": False}).curve([0.6, 0.65]).test(1, acc=acc, tta_acc=acc).done()
    for h, s, v, val, easy, hard in ((0.0, 0.2, 0.8, 0.80, 0.86, 0.74), (0.1, 0.2, 0.8, 0.78, 0.84, 0.75),
                                     (0.0, 0.4, 0.8, 0.77, 0.83, 0.76), (0.0, 0.2, 0.4, 0.76, 0.85, 0.70)):
        Run(f"raw/random-color-{h}-{s}-{v}-s0", rc, "random-color", 0, RAW_SETTINGS,
            {"hue": h, "saturation": s, "value": v}).curve([0.7, val]).test(
            1, acc=(easy + hard) / 2, tta_acc=(easy + hard) / 2 + 0.005, acc_easy=easy, acc_hard=hard,
            tta_acc_easy=easy + 0.005, tta_acc_hard=hard + 0.005).done()
    Run("raw/instaaug-s0", rc, "instaaug", 0, RAW_SETTINGS, {**INSTA, "parameterization": "color"}).curve(
        [0.7, 0.81]).test(1, acc=0.811, tta_acc=0.813, acc_easy=0.86, acc_hard=0.76, tta_acc_easy=0.865,
                          tta_acc_hard=0.762).done()


if __name__ == "__main__":
    build()
    print(f"wrote {sum(1 for _ in RUNS.rglob('config.json'))} runs under {RUNS}")
