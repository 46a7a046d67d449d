"""`augbench bench --ops`: images per second of each batched per-sample op, beside kornia's and
torchvision v2's applied per image in a Python loop.

Every library transforms the same float batch in [0, 1] (uint8-valued, as stored data) with
the nearest equivalent of augbench's op and settings (`CASES`). augbench draws every image's
own transformation and applies the batch at once; kornia's policies pick one op per batch
and its resized crop slices and resizes image by image; torchvision's transforms are called
once per image, which is how a data loader applies them. Where no equivalent exists the
cell is left empty.

Rounds are interleaved (every case and library once per round, every other round in reverse
order) so that a machine other jobs share slows all of them alike; a cell is the median over
rounds with the spread (min-max) beside it, and a ratio is the median of per-round ratios.
"""

from __future__ import annotations

import importlib.util
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from augbench.errors import ConfigError
from augbench.log import logger
from augbench.methods import MethodContext, StepContext, create_method
from augbench.perf.measure import calls_for, clock_for, synchronize, time_calls

Op = Callable[[Tensor], Any]
LIBRARIES: tuple[str, ...] = ("augbench", "kornia", "torchvision")
#: (image side, batch): ImageNet's size at a small batch, CIFAR's at a large one
SIZES: tuple[tuple[int, int], ...] = ((224, 32), (32, 128))
#: the colour case jitters hue too: an HSV jitter, which is what torchvision's hue adjustment does
COLOR = {"hue": 0.1, "saturation": 0.2, "value": 0.8}


@dataclass(frozen=True)
class OpCase:
    """One op: augbench's method that applies it and how kornia and torchvision express it.

    Each builder takes the image side and returns a callable on a (B, 3, S, S) batch; the
    torchvision builder returns a per-image transform (the bench loops over the batch).
    """

    name: str
    description: str
    method: str
    hparams: dict[str, Any]
    kornia: Callable[[int], Op] | None
    torchvision: Callable[[int], Op] | None


def _kornia() -> Any:
    import kornia.augmentation as K  # optional: `pip install 'augbench[bench]'`

    return K


def _v2() -> Any:
    from torchvision.transforms import v2

    return v2


CASES: tuple[OpCase, ...] = (
    OpCase("random-resized-crop", "area 0.1-1, aspect 3/4-4/3, bilinear, output at the input size", "random-crop",
           {"scale_min": 0.1},
           lambda s: _kornia().RandomResizedCrop((s, s), scale=(0.1, 1.0), ratio=(3 / 4, 4 / 3), p=1.0),
           lambda s: _v2().RandomResizedCrop((s, s), scale=(0.1, 1.0), ratio=(3 / 4, 4 / 3))),
    OpCase("randaugment", "2 ops at magnitude 9 of 31", "randaugment", {},
           lambda s: _kornia().auto.RandAugment(n=2, m=9), lambda s: _v2().RandAugment(num_ops=2, magnitude=9)),
    OpCase("trivialaugment", "TrivialAugmentWide, 31 bins", "trivialaugment", {},
           lambda s: _kornia().auto.TrivialAugment(), lambda s: _v2().TrivialAugmentWide()),
    OpCase("autoaugment", "the ImageNet policy", "autoaugment", {"policy": "imagenet"},
           lambda s: _kornia().auto.AutoAugment("imagenet"),
           lambda s: _v2().AutoAugment(_v2().AutoAugmentPolicy.IMAGENET)),
    OpCase("fast-autoaugment", "the ResNet-50 ImageNet policy (torchvision: its ops, image by image)",
           "fast-autoaugment", {"policy": "imagenet"}, None, lambda s: _faa_per_image("imagenet", s)),
    OpCase("rotate", "uniform angle in +-45 degrees, bilinear, zeros outside", "random-rotation", {"max_angle": 45.0},
           lambda s: _kornia().RandomRotation(45.0, p=1.0, align_corners=False),
           lambda s: _v2().RandomRotation(45.0, interpolation=_v2().InterpolationMode.BILINEAR)),
    OpCase("color", "HSV jitter: hue +-0.1 turn, saturation and value x (1 +- 0.2 / 0.8)", "random-color", COLOR,
           lambda s: _kornia().ColorJiggle(brightness=COLOR["value"], saturation=COLOR["saturation"],
                                            hue=COLOR["hue"], p=1.0),
           lambda s: _v2().ColorJitter(brightness=COLOR["value"], saturation=COLOR["saturation"], hue=COLOR["hue"])),
)


# ------------------------------------------------------------ torchvision, one image at a time
def torchvision_op(image: Tensor, name: str, magnitude: float) -> Tensor:
    """augbench's op ``name`` (`transforms.ops`) at ``magnitude`` on one (C, H, W) image, through
    torchvision v2's functional ops and its AutoAugment argument conventions.

    Posterize and Equalize go through uint8 (augbench's float semantics of those two); Cutout
    erases a square at a uniformly drawn centre, clipped at the border.
    """
    from torchvision.transforms.v2 import functional as TF

    nearest = TF.InterpolationMode.NEAREST
    no_shear, top_left = [0.0, 0.0], [0, 0]
    if name == "Identity":
        return image
    if name in ("ShearX", "ShearY"):
        angle = math.degrees(math.atan(magnitude))
        shear = [angle, 0.0] if name == "ShearX" else [0.0, angle]
        return TF.affine(image, 0.0, [0, 0], 1.0, shear, interpolation=nearest, center=top_left)
    if name in ("TranslateX", "TranslateY"):
        shift = [int(magnitude), 0] if name == "TranslateX" else [0, int(magnitude)]
        return TF.affine(image, 0.0, shift, 1.0, no_shear, interpolation=nearest)
    if name == "Rotate":
        return TF.rotate(image, angle=magnitude, interpolation=nearest)
    factors = {"Brightness": TF.adjust_brightness, "Color": TF.adjust_saturation, "Contrast": TF.adjust_contrast,
               "Sharpness": TF.adjust_sharpness}
    if name in factors:
        return factors[name](image, 1.0 + magnitude)
    levels = {"Posterize": lambda u: TF.posterize(u, bits=int(magnitude)), "Equalize": TF.equalize}
    if name in levels:
        return levels[name]((image * 255).round().to(torch.uint8)).float() / 255
    if name == "Solarize":
        return TF.solarize(image, threshold=1.0 * magnitude)
    if name == "AutoContrast":
        return TF.autocontrast(image)
    if name == "Invert":
        return TF.invert(image)
    if name == "Flip":
        return TF.horizontal_flip(image)
    if name == "Cutout":
        h, w = image.shape[-2:]
        half = magnitude * w / 2
        cy, cx = (torch.rand(2) * torch.tensor([h, w])).tolist()
        # pixel j is inside when |j + 0.5 - centre| < half, as in augbench's Cutout
        top, left = max(0, math.floor(cy - half - 0.5) + 1), max(0, math.floor(cx - half - 0.5) + 1)
        bottom, right = min(h, math.ceil(cy + half - 0.5)), min(w, math.ceil(cx + half - 0.5))
        fill = torch.tensor((125 / 255, 123 / 255, 114 / 255)).view(-1, 1, 1)[: image.shape[0]]
        return TF.erase(image, top, left, max(0, bottom - top), max(0, right - left), fill)
    raise ConfigError(f"torchvision_op: no torchvision equivalent of {name!r}")


def _faa_per_image(policy: str, side: int) -> Op:
    """Fast AutoAugment as a per-image transform: each image draws its sub-policy and applies
    its ops through torchvision (the authors' code applies it per PIL image the same way)."""
    from augbench.methods.fast_autoaugment import FastAutoAugmentSampler

    sampler = FastAutoAugmentSampler(policy)

    def transform(image: Tensor) -> Tensor:
        draw = sampler.sample(1, side, side, device="cpu")
        for op, magnitude, apply in zip(draw.op_index[0].tolist(), draw.magnitude[0].tolist(),
                                        draw.apply[0].tolist()):
            if apply:
                image = torchvision_op(image, sampler.names[op], magnitude)
        return image

    return transform


# ------------------------------------------------------------------------------ the bench
def kornia_version() -> str | None:
    """kornia's version, or None when it is not installed (its column is then left out)."""
    if importlib.util.find_spec("kornia") is None:
        return None
    import kornia

    return str(kornia.__version__)


def _augbench(case: OpCase, side: int, device: torch.device) -> Op:
    ctx = MethodContext(num_classes=10, image_shape=(3, side, side), families=frozenset({"crop", "rotation", "color"}))
    method = create_method(case.method, ctx, **case.hparams).to(device)
    step = StepContext(training=True)
    return lambda x: method.sample(x, step).x


def _build(case: OpCase, library: str, side: int, device: torch.device) -> Op | None:
    """``library``'s callable on a batch for ``case`` at ``side`` px, None where it has no equivalent."""
    if library == "augbench":
        return _augbench(case, side, device)
    if library == "kornia" and case.kornia is not None:
        module = case.kornia(side)
        return module.to(device) if isinstance(module, torch.nn.Module) else module
    if library == "torchvision" and case.torchvision is not None:
        transform = case.torchvision(side)
        return lambda x: [transform(image) for image in x]  # the data loader's way: one image per call
    return None


def run_op_bench(sizes: Sequence[tuple[int, int]] = SIZES, *, device: str | torch.device = "cpu", reps: int = 5,
                 min_time: float = 0.05, clock: str = "process", seed: int = 0, cases: Sequence[str] | None = None,
                 log: Callable[[str], None] | None = None) -> pd.DataFrame:
    """One row per (op, size, library): seconds per batch per round and images/s (median, min, max).

    ``cases``: names from `CASES` (default all). kornia is measured when installed.
    """
    log = log or logger.info
    dev = torch.device(device)
    timer = clock_for(clock, dev)
    if reps < 1 or min_time < 0:
        raise ConfigError(f"bench --ops: reps must be at least 1 and min_time at least 0, got {reps}, {min_time}")
    chosen = [c for c in CASES if cases is None or c.name in cases]
    unknown = sorted(set(cases or ()) - {c.name for c in CASES})
    if unknown:
        raise ConfigError(f"bench --ops: unknown op {unknown[0]!r}; valid: {', '.join(c.name for c in CASES)}")
    libraries = [lib for lib in LIBRARIES if lib != "kornia" or kornia_version() is not None]
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    cells: list[tuple[OpCase, int, int, str, Op, Tensor]] = []
    with torch.no_grad():
        for side, batch in sizes:
            if side < 8 or batch < 1:
                raise ConfigError(f"bench --ops: sizes need a side of at least 8 and a batch of at least 1, "
                                  f"got {side}x{batch}")
            x = (torch.randint(0, 256, (batch, 3, side, side), generator=gen, dtype=torch.uint8).float() / 255)
            x = x.to(dev)
            for case in chosen:
                for lib in libraries:
                    built = _build(case, lib, side, dev)
                    if built is not None:
                        cells.append((case, side, batch, lib, built, x))
        calls = []
        for cell in cells:  # warm up (caches, lazy tables) and calibrate
            fn, x = cell[4], cell[5]
            fn(x)
            calls.append(calls_for(time_calls(lambda: fn(x), 1, dev, timer), min_time))  # noqa: B023
        seconds: list[list[float]] = [[] for _ in cells]
        for r in range(reps):
            order = range(len(cells)) if r % 2 == 0 else range(len(cells) - 1, -1, -1)
            for i in order:
                _, _, _, _, fn, x = cells[i]
                seconds[i].append(time_calls(lambda: fn(x), calls[i], dev, timer))  # noqa: B023
            log(f"bench --ops: round {r + 1}/{reps} done")
    synchronize(dev)
    from augbench.device import device_name

    rows = []
    for (case, side, batch, lib, _, _), secs in zip(cells, seconds):
        rate = [batch / s for s in secs]
        rows.append({"op": case.name, "description": case.description, "side": side, "batch": batch,
                     "library": lib, "img_s": statistics.median(rate), "img_s_min": min(rate),
                     "img_s_max": max(rate), "rounds_ms": " ".join(f"{s * 1e3:.3f}" for s in secs),
                     "device": str(dev), "device_name": device_name(dev), "threads": torch.get_num_threads(),
                     "clock": clock, "torch": torch.__version__, "torchvision": _version("torchvision"),
                     "kornia": kornia_version() or ""})
    return pd.DataFrame(rows)


def _version(module: str) -> str:
    import importlib

    return str(getattr(importlib.import_module(module), "__version__", ""))


def paired_ratio(df: pd.DataFrame, op: str, side: int, lib: str) -> tuple[float, float, float]:
    """augbench's images/s over ``lib``'s for one op and size: median, min and max of the per-round ratios."""
    def rounds(library: str) -> list[float]:
        row = df[(df["op"] == op) & (df["side"] == side) & (df["library"] == library)]
        return [float(v) for v in row["rounds_ms"].iloc[0].split()] if len(row) else []

    mine, theirs = rounds("augbench"), rounds(lib)
    if not mine or len(mine) != len(theirs):
        return math.nan, math.nan, math.nan
    per_round = [t / m for m, t in zip(mine, theirs)]  # time ratio theirs / ours = speed ratio ours / theirs
    return statistics.median(per_round), min(per_round), max(per_round)


def format_ops(df: pd.DataFrame) -> str:
    """The table `augbench bench --ops` prints: images/s per op and size, one column per library."""
    first = df.iloc[0]
    kornia = first["kornia"]
    lines = [f"images/s of each per-sample op on {first['device']} ({first['device_name']}, {first['threads']} "
             f"threads), torch {first['torch']}, torchvision {first['torchvision']}, "
             + (f"kornia {kornia}" if kornia else "kornia not installed (pip install 'augbench[bench]')")
             + f"; {first['clock']} clock, median [min-max] over {len(first['rounds_ms'].split())} interleaved rounds",
             "augbench: the batch at once, every image its own draw; kornia: its batch augmentation; torchvision: "
             "v2 transform called per image in a Python loop; x: augbench's speed over theirs (median of per-round "
             "ratios)", ""]
    head = ["op", "size", "augbench", "kornia", "torchvision", "x kornia", "x torchvision"]
    table = []
    for (op, side), group in df.groupby(["op", "side"], sort=False):
        by_lib = group.set_index("library")
        batch = int(group["batch"].iloc[0])
        row = [op, f"{side}px x{batch}"]
        for lib in LIBRARIES:
            if lib in by_lib.index:
                r = by_lib.loc[lib]
                row.append(f"{r['img_s']:,.0f} [{r['img_s_min']:,.0f}-{r['img_s_max']:,.0f}]")
            else:
                row.append("-")
        for lib in LIBRARIES[1:]:
            med, low, high = paired_ratio(df, op, side, lib)
            row.append("-" if math.isnan(med) else f"{med:.2f} [{low:.2f}-{high:.2f}]")
        table.append(row)
    lines.append(pd.DataFrame(table, columns=head).to_string(index=False))
    if not kornia:
        lines.append("\nkornia is not installed: its column is empty (pip install 'augbench[bench]' to compare)")
    return "\n".join(lines)


__all__ = ["CASES", "LIBRARIES", "SIZES", "OpCase", "format_ops", "kornia_version", "paired_ratio", "run_op_bench",
           "torchvision_op"]
