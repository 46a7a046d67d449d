"""`fast-autoaugment`: the published policies exactly as data, each image as the authors apply it.

The reference below applies a policy one image at a time, following Fast AutoAugment's
documented semantics (one uniform sub-policy; each op with its probability; value =
level * (high - low) + low over the op's range; shears, translations and rotation negated
with probability 1/2), consuming the same random numbers in the same order as the batched
method: sub-policy indices (B,), apply coins (B, 2), sign coins (B, 2), then Cutout centres
step by step for the images that apply Cutout, in image order.
"""

from __future__ import annotations

import csv
import importlib.resources
from pathlib import Path

import pytest
import torch

from augbench.cli import main
from augbench.errors import ConfigError
from augbench.methods import MethodContext, StepContext, create_method, list_methods
from augbench.methods.fast_autoaugment import POLICY_FILES, FastAutoAugmentSampler, load_policy
from augbench.sweep.grid import load_grid
from augbench.transforms import ops

CTX = MethodContext(num_classes=10, image_shape=(3, 12, 16), families=frozenset({"crop"}))
COUNTS = {"imagenet": 498, "cifar10": 493, "svhn": 497}
# Fast AutoAugment's op ranges (its augment_list); None: the op takes no value.
RANGES: dict[str, tuple[float, float] | None] = {
    "ShearX": (-0.3, 0.3), "ShearY": (-0.3, 0.3), "TranslateX": (-0.45, 0.45), "TranslateY": (-0.45, 0.45),
    "Rotate": (-30.0, 30.0), "AutoContrast": None, "Invert": None, "Equalize": None, "Solarize": (0.0, 256.0),
    "Posterize": (4.0, 8.0), "Contrast": (0.1, 1.9), "Color": (0.1, 1.9), "Brightness": (0.1, 1.9),
    "Sharpness": (0.1, 1.9), "Cutout": (0.0, 0.2),
}
MIRRORED = {"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate"}
GREY = torch.tensor([125.0, 123.0, 114.0]) / 255


def csv_rows(policy: str) -> list[dict[str, str]]:
    path = importlib.resources.files("augbench").joinpath(f"data/fast_autoaugment/{POLICY_FILES[policy]}")
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


# ------------------------------------------------------------------------------ policy data
@pytest.mark.parametrize("policy", list(POLICY_FILES))
def test_policy_is_parsed_exactly_as_in_the_data(policy):
    rows = csv_rows(policy)
    subs = load_policy(policy)
    assert len(subs) == COUNTS[policy] and all(len(s) == 2 for s in subs)
    assert len(rows) == 2 * COUNTS[policy]
    for row in rows:
        op, prob, level = subs[int(row["subpolicy"])][int(row["position"])]
        assert (op, prob, level) == (row["op"], float(row["probability"]), float(row["level"]))
        assert 0.0 <= level <= 1.0 and 0.0 <= prob <= 1.0
    sampler = FastAutoAugmentSampler(policy)  # the tensors keep the CSV's float64 values
    assert sampler._prob.flatten().tolist() == [float(r["probability"]) for r in rows]
    assert sampler._level.flatten().tolist() == [float(r["level"]) for r in rows]
    assert [sampler.names[i] for i in sampler._op.flatten().tolist()] == [r["op"] for r in rows]


def test_the_three_policies_use_the_fifteen_published_ops():
    names = {op for p in POLICY_FILES for sub in load_policy(p) for op, _, _ in sub}
    assert names == set(RANGES)


def test_package_data_is_the_reference_verbatim():
    ref = Path("/work/shared/reference/fast-autoaugment")
    if not ref.exists():
        pytest.skip("reference copy not available")
    data = importlib.resources.files("augbench").joinpath("data/fast_autoaugment")
    for name in POLICY_FILES.values():
        assert data.joinpath(name).read_bytes() == (ref / name).read_bytes(), name
    assert "MIT" in data.joinpath("NOTICE").read_text()


# ------------------------------------------------------------------------- per-image reference
def apply_one(img: torch.Tensor, name: str, v: float, centre: torch.Tensor | None) -> torch.Tensor:
    """One op with Fast AutoAugment value ``v`` on one image (C, H, W) in [0, 1].

    Intermediate images stay float, as in augbench; Posterize works on round(255 x).
    """
    _, height, width = img.shape
    levels = torch.round(img * 255)
    one = img[None]
    if name in ("ShearX", "ShearY", "Rotate"):  # shear coefficient, degrees
        fn = {"ShearX": ops.shear_x, "ShearY": ops.shear_y, "Rotate": ops.rotate}[name]
        return fn(one, torch.tensor([v]))[0]
    if name == "TranslateX":  # fraction of the width -> whole pixels
        return ops.translate_x(one, torch.tensor([float(int(v * width))]))[0]
    if name == "TranslateY":
        return ops.translate_y(one, torch.tensor([float(int(v * height))]))[0]
    if name in ("Contrast", "Color", "Brightness", "Sharpness"):  # PIL enhance factor v
        fn = {"Contrast": ops.contrast, "Color": ops.color, "Brightness": ops.brightness,
              "Sharpness": ops.sharpness}[name]
        return fn(one, torch.tensor([v - 1.0]))[0]
    if name == "AutoContrast":
        return ops.autocontrast(one)[0]
    if name == "Equalize":
        return ops.equalize(one)[0]
    if name == "Invert":
        return 1.0 - img
    if name == "Solarize":  # PIL: grey levels >= v are inverted (levels are 255 x on floats)
        return torch.where(img * 255 >= v, 1.0 - img, img)
    if name == "Posterize":  # PIL: keep the top int(v) bits
        mask = (0xFF << (8 - int(v))) & 0xFF
        return (levels.to(torch.int64) & mask).float() / 255
    if name == "Cutout":  # a square of side v * width centred at the drawn point, clipped
        assert centre is not None
        half = v * width / 2
        cols = (torch.arange(width) + 0.5 - centre[0] * width).abs() < half
        rows = (torch.arange(height) + 0.5 - centre[1] * height).abs() < half
        inside = rows[:, None] & cols[None, :]
        return torch.where(inside, GREY.view(3, 1, 1), img)
    raise AssertionError(name)


def reference(x: torch.Tensor, policy: str, g: torch.Generator) -> tuple[torch.Tensor, list[str]]:
    """The policy applied image by image; also the names of the ops that were applied."""
    subs = [[(r["op"], float(r["probability"]), float(r["level"])) for r in pair]
            for pair in zip(*[iter(csv_rows(policy))] * 2, strict=True)]
    batch = x.shape[0]
    sub = torch.randint(len(subs), (batch,), generator=g).tolist()
    coin = torch.rand((batch, 2), generator=g).tolist()
    sign = torch.rand((batch, 2), generator=g).tolist()
    plans: list[list[tuple[str, float] | None]] = []
    for i in range(batch):
        plan: list[tuple[str, float] | None] = []
        for pos, (name, prob, level) in enumerate(subs[sub[i]]):
            if coin[i][pos] > prob:
                plan.append(None)
                continue
            low, high = RANGES[name] or (0.0, 1.0)
            value = level * (high - low) + low
            plan.append((name, -value if name in MIRRORED and sign[i][pos] < 0.5 else value))
        plans.append(plan)
    centres: dict[tuple[int, int], torch.Tensor] = {}
    for pos in range(2):
        who = [i for i in range(batch) if plans[i][pos] is not None and plans[i][pos][0] == "Cutout"]
        drawn = torch.rand((len(who), 2), generator=g)
        centres.update({(i, pos): drawn[k] for k, i in enumerate(who)})
    out, applied = [], []
    for i in range(batch):
        img = x[i]
        for pos, step in enumerate(plans[i]):
            if step is not None:
                img = apply_one(img, step[0], step[1], centres.get((i, pos)))
                applied.append(step[0])
        out.append(img)
    return torch.stack(out), applied


@pytest.mark.parametrize("policy", list(POLICY_FILES))
def test_batched_equals_the_per_image_reference(policy):
    method = create_method("fast-autoaugment", CTX, policy=policy)
    x = torch.randint(0, 256, (256, 3, 12, 16), generator=torch.Generator().manual_seed(1)).float() / 255
    torch.manual_seed(7)
    out = method.sample(x, StepContext()).x
    ref, applied = reference(x, policy, torch.Generator().manual_seed(7))
    assert set(applied) == set(RANGES), "every op exercised"
    assert torch.allclose(out, ref, atol=2e-6), (out - ref).abs().flatten(1).amax(1).nonzero().flatten().tolist()


def test_seeded_generator_gives_the_same_draws_and_images_get_their_own():
    sampler = FastAutoAugmentSampler("imagenet")
    a = sampler.sample(512, 12, 16, device="cpu", generator=torch.Generator().manual_seed(3))
    b = sampler.sample(512, 12, 16, device="cpu", generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    assert torch.unique(a.op_index[:, 0]).numel() == 15
    rate = a.apply.double().mean().item()
    expected = sum(p for sub in load_policy("imagenet") for _, p, _ in sub) / (2 * 498)
    assert abs(rate - expected) < 0.06


def count_ops(fn) -> int:
    """ATen operator calls of one call of ``fn``: a per-sample loop makes this grow with the batch."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return sum(1 for event in prof.events() if event.name.startswith("aten::"))


def test_no_per_sample_loop():
    method = create_method("fast-autoaugment", CTX)

    def n_ops(batch: int) -> int:
        x = torch.rand(batch, 3, 12, 16)
        torch.manual_seed(0)
        method.sample(x, StepContext())
        torch.manual_seed(0)
        return count_ops(lambda: method.sample(x, StepContext()))

    small, large = n_ops(128), n_ops(512)
    assert large <= 1.25 * small + 16, f"{small} ATen ops for 128 images, {large} for 512"


def test_registered_with_its_policies_and_test_views():
    assert "fast-autoaugment" in list_methods()
    method = create_method("fast-autoaugment", CTX).eval()
    assert method.hp == {"policy": "imagenet"}
    assert method.test_views(torch.rand(4, 3, 12, 16), 3, StepContext(training=False)).shape == (12, 3, 12, 16)
    with pytest.raises(ConfigError, match="policy"):
        create_method("fast-autoaugment", CTX, policy="reduced-imagenet")


# ------------------------------------------------------------------------------------ Table 2
def test_table2_expands_every_paper_cell_without_skips(tmp_path, capsys):
    with importlib.resources.files("augbench").joinpath("data/paper_results.csv").open(newline="") as fh:
        paper = {r["method"] for r in csv.DictReader(fh) if r["table"] == "2"}
    grid = load_grid("table2")
    exp = grid.expand(skip_unregistered=True)
    assert exp.skipped == []
    assert {r.config.method for r in exp.runs} == paper
    assert len(exp.runs) == len(grid.entries) * 3
    faa = [r for r in exp.runs if r.config.method == "fast-autoaugment"]
    assert len(faa) == 3 and all(r.config.hparams == {"policy": "imagenet"} for r in faa)

    assert main(["sweep", "launch", "table2", "--dry-run", "--root", str(tmp_path / "sweep")]) == 0
    printed = capsys.readouterr().out
    assert "15 runs" in printed and "Fast AutoAugment" in printed and "not registered" not in printed
    assert not (tmp_path / "sweep").exists()
