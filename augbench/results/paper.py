"""The paper's tables as data: which augbench runs fill which cell, and the paper's own numbers.

Each `TableSpec` lists rows in the paper's order and its column groups. A cell is the runs of
one benchmark whose method and variant match the row and whose collected `hp.*` / `set.*`
columns match the row's and column's `where` filters; its value is the metric named by the
column (or the row's override), with `{placeholders}` filled from the row's `params`.

The paper's numbers come from `augbench/data/paper_results.csv` (transcribed from the paper),
keyed by (table, method, variant, setting), where setting is the column's and the row's
`paper_setting` joined by ";".

Names of benchmark settings and hyperparameters that other modules define live here only, so
reconciling a rename is a one-line change: see `HP` and `SETTING`.
"""

from __future__ import annotations

import functools
import importlib.resources
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from augbench.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

# Hyperparameter and setting names used by the tables and figures (collected as hp.<name>, set.<name>).
HP = {
    "hmin": "hp.h_min",  # InstaAug dynamic-lambda bounds (Table E.1)
    "hmax": "hp.h_max",
    "lambda_rule": "hp.lambda_rule",  # "dynamic" (paper) or "fixed" (Figure E.1)
    "lam0": "hp.lambda0",  # initial (or fixed) lambda
    "hue": "hp.hue",  # random-color sweep (Figure 7)
    "saturation": "hp.saturation",
    "value": "hp.value",
    "scale_min": "hp.scale_min",  # random-crop sweep (Table 1)
}
SETTING = {
    "lightings": "set.data.random_lightings",  # Table 4: number of training lightings (0: D45 alone, Table 3)
}
FIXED_LAMBDA_RULE = "fixed"


@dataclass(frozen=True)
class RowSpec:
    """One row: which runs fill it and how it is labelled."""

    label: str
    method: str
    variant: str = ""
    metric: str | None = None  # overrides the column's metric (e.g. no TTA for "none")
    where: Mapping[str, Any] = field(default_factory=dict)
    paper_setting: str = ""
    extra: Mapping[str, str] = field(default_factory=dict)  # text columns (Instance, Test aug?, ...)
    params: Mapping[str, Any] = field(default_factory=dict)  # fills {placeholders} in metric names


@dataclass(frozen=True)
class ColumnSpec:
    """One column group: a metric (template) and the runs' filters that distinguish it."""

    label: str
    metric: str = "tta_acc"
    where: Mapping[str, Any] = field(default_factory=dict)
    paper_setting: str = ""


@dataclass(frozen=True)
class TableSpec:
    """A paper table: benchmark, rows in the paper's order, column groups, extra text columns."""

    id: str
    title: str
    benchmark: str
    rows: tuple[RowSpec, ...]
    columns: tuple[ColumnSpec, ...]
    extra_columns: tuple[str, ...] = ()
    protocol: str = ""  # how augbench's protocol differs from the paper's, where that shifts numbers

    def metric(self, row: RowSpec, col: ColumnSpec) -> str:
        """The collected metric name of a cell."""
        return (row.metric or col.metric).format(**row.params)

    def paper_key(self, row: RowSpec, col: ColumnSpec) -> tuple[str, str, str, str]:
        setting = ";".join(p for p in (col.paper_setting, row.paper_setting) if p)
        return (self.id, row.method, row.variant, setting)


# Protocol differences that shift numbers, stated under each table (the recipes are in docs/recipes.md).
PROTOCOL_SELECTED_ON_TEST = (
    "Protocol: augbench trains on the training images less a validation split (train.val_fraction, 10%) and "
    "makes every choice on that split: the reported epoch, the learning-rate plateau, lambda's updates and swept "
    "hyperparameters; the paper's code trained on all training images and made those choices on the test set, "
    "which favours its numbers")
PROTOCOL_TTA = (
    "Protocol: augbench trains phi on the training images less a validation split (train.val_fraction, 10%) and "
    "reports the epoch best on that split; the paper does not say how it chose phi's epoch (the public code "
    "has this experiment's configuration, not its training loop)")
PROTOCOL_CONTRASTIVE = (
    "Protocol: augbench holds out a validation split of the training images (train.val_fraction, 10%: its k-NN "
    "monitor) and trains SimCLR on the rest; the paper's code trained on all of them. Both report the last "
    "epoch, and both linear probes train on the whole training set")


def _instance(flag: str) -> dict[str, str]:
    return {"Instance": flag}


_ACC = (ColumnSpec("Accuracy (%)", "tta_acc"),)

TABLE_1 = TableSpec(
    "1", "Test accuracy for Tiny-ImageNet with cropping augmentation (TTA with 50 samples where used)",
    "tinyimagenet-crop",
    rows=(
        RowSpec("No augmentation", "none", metric="acc", extra=_instance("no")),
        RowSpec("Random crop", "random-crop", paper_setting="scale=[0.1;1]", extra=_instance("no")),
        RowSpec("MixUp", "mixup", extra=_instance("no")),
        RowSpec("CutMix", "cutmix", extra=_instance("no")),
        RowSpec("MixMo", "mixmo", extra=_instance("no")),
        RowSpec("Puzzle-Mix", "puzzle-mix", extra=_instance("no")),
        RowSpec("Co-Mixup", "co-mixup", extra=_instance("no")),
        RowSpec("Saliency grafting", "saliency-grafting", extra=_instance("no")),
        RowSpec("Augerino", "augerino", extra=_instance("no")),
        RowSpec("AdaAug", "adaaug", extra=_instance("yes")),
        RowSpec("- w/ LRP", "adaaug", "lrp", extra=_instance("yes")),
        RowSpec("InstaAug (ours)", "instaaug", "lrp", extra=_instance("yes")),
        RowSpec("- w/o LRP", "instaaug", "uniform", extra=_instance("yes")),
        RowSpec("- w/o input", "instaaug", "input-free", extra=_instance("no")),
        RowSpec("- class-specific", "instaaug", "class-specific", extra=_instance("class")),
        # not in the InstaAug paper: FlowInv's own Tiny-ImageNet number (its paper's Table 1), beside augbench's runs
        RowSpec("FlowInv (Singhal et al., 2023)", "flowinv", extra=_instance("yes")),
    ),
    columns=_ACC, extra_columns=("Instance",), protocol=PROTOCOL_SELECTED_ON_TEST,
)

_T2_SAMPLES = (("No aug", "none", "", 1), ("Random crop", "random-crop", "", 4), ("AutoAug", "autoaugment", "", 4),
               ("Fast AutoAug", "fast-autoaugment", "", 4), ("InstaAug", "instaaug", "lrp", 4),
               ("Random crop", "random-crop", "", 10), ("AutoAug", "autoaugment", "", 10),
               ("Fast AutoAug", "fast-autoaugment", "", 10), ("InstaAug", "instaaug", "lrp", 10))
TABLE_2 = TableSpec(
    "2", "Test-time augmentation on ImageNet with a fixed classifier (module trained on ResNet-50)",
    "imagenet-tta",
    rows=tuple(RowSpec(label, m, v, paper_setting=f"samples={n}", extra={"#Sample": str(n)}, params={"samples": n})
               for label, m, v, n in _T2_SAMPLES),
    columns=(ColumnSpec("ResNet50", "tta_acc@{samples}", paper_setting="resnet50"),
             ColumnSpec("ResNet18", "resnet18/tta_acc@{samples}", paper_setting="resnet18"),
             ColumnSpec("XCiT", "xcit/tta_acc@{samples}", paper_setting="xcit")),
    extra_columns=("#Sample",), protocol=PROTOCOL_TTA,
)


def _t3(label: str, method: str, variant: str, tta: bool, setting: str = "") -> RowSpec:
    flag = "yes" if tta else "no"
    paper = f"train=D45;tta={flag}" + (f";{setting}" if setting else "")
    return RowSpec(label, method, variant, metric="tta_acc" if tta else "acc", paper_setting=paper,
                   where={SETTING["lightings"]: 0}, extra={"Test aug?": flag})


TABLE_3 = TableSpec(
    "3", "RawFooT trained on D45 (daylight 4500 K): accuracy over all lighting conditions", "rawfoot-color",
    rows=(
        _t3("No aug", "none", "", False),
        _t3("Random aug", "random-color", "", False, "hsv=0.0/0.2/0.8"),
        _t3("Augerino", "augerino", "", False),
        _t3("AdaAug", "adaaug", "", False),
        _t3("InstaAug", "instaaug", "uniform", False),
        _t3("Random aug", "random-color", "", True),
        _t3("Augerino", "augerino", "", True),
        _t3("AdaAug", "adaaug", "", True),
        _t3("InstaAug", "instaaug", "uniform", True),
    ),
    columns=_ACC, extra_columns=("Test aug?",), protocol=PROTOCOL_SELECTED_ON_TEST,
)

TABLE_4 = TableSpec(
    "4", "RawFooT accuracy by number of training lighting conditions (TTA for random aug and InstaAug)",
    "rawfoot-color",
    rows=(RowSpec("No aug", "none", metric="acc"), RowSpec("Random augmentation", "random-color"),
          RowSpec("InstaAug", "instaaug", "uniform")),
    columns=tuple(ColumnSpec(f"{n} lighting" + ("s" if n > 1 else ""), "tta_acc", where={SETTING["lightings"]: n},
                             paper_setting=f"lighting_conditions={n}") for n in (1, 2, 4, 8)),
    protocol=PROTOCOL_SELECTED_ON_TEST,
)

TABLE_5 = TableSpec(
    "5", "Contrastive learning on Tiny-ImageNet: linear-probe accuracy (TTA with 10 crops)",
    "tinyimagenet-contrastive",
    rows=(RowSpec("Un-Mix", "un-mix"), RowSpec("Random crop", "random-crop"),
          RowSpec("InstaAug (without input)", "instaaug", "input-free"), RowSpec("InstaAug", "instaaug", "lrp")),
    columns=_ACC, protocol=PROTOCOL_CONTRASTIVE,
)

E1_INTERVALS = ((0.0, 0.5), (0.5, 1.0), (1.0, 1.5), (1.5, 2.0), (2.0, 2.5), (2.5, 3.0), (3.0, 3.5), (3.5, 4.0),
                (4.0, 4.5), (4.5, 5.0), (0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, 4.0), (4.0, 5.0))
TABLE_E1 = TableSpec(
    "E.1", "InstaAug (LRP) on Tiny-ImageNet cropping with different [Hmin, Hmax]", "tinyimagenet-crop",
    rows=tuple(RowSpec(f"[{lo:.1f}, {hi:.1f}]", "instaaug", "lrp", where={HP["hmin"]: lo, HP["hmax"]: hi},
                       paper_setting=f"hmin={lo:.1f};hmax={hi:.1f}", extra={"Hmin": f"{lo:.1f}", "Hmax": f"{hi:.1f}"})
               for lo, hi in E1_INTERVALS),
    columns=_ACC, extra_columns=("Hmin", "Hmax"), protocol=PROTOCOL_SELECTED_ON_TEST,
)

TABLES: dict[str, TableSpec] = {t.id: t for t in (TABLE_1, TABLE_2, TABLE_3, TABLE_4, TABLE_5, TABLE_E1)}
TABLE_ALIASES = {"E1": "E.1", "e1": "E.1", "e.1": "E.1"}


def get_table(table_id: str) -> TableSpec:
    """The spec of a paper table by id ("1".."5", "E1" or "E.1")."""
    key = TABLE_ALIASES.get(table_id, table_id)
    if key not in TABLES:
        raise ConfigError(f"unknown table {table_id!r}; valid: {', '.join(TABLES)}, auto")
    return TABLES[key]


@functools.lru_cache(maxsize=1)
def _paper_csv() -> str:
    return importlib.resources.files("augbench").joinpath("data/paper_results.csv").read_text()


def paper_results() -> pd.DataFrame:
    """The paper's reported numbers (percent), one row per (table, method, variant, setting)."""
    import pandas as pd  # the table specs above are read by the CLI parser, which must not load pandas

    df = pd.read_csv(io.StringIO(_paper_csv()), dtype={"table": str, "variant": str, "setting": str, "note": str},
                     keep_default_na=False, na_values={"mean": [""], "std": [""], "n_runs": [""]})
    return df


def paper_value(key: tuple[str, str, str, str]) -> tuple[float, float, float] | None:
    """(mean, std, n_runs) the paper reports for a cell key, or None; std/n are NaN when not given."""
    return _paper_index().get(key)


@functools.lru_cache(maxsize=1)
def _paper_index() -> dict[tuple[str, str, str, str], tuple[float, float, float]]:
    df = paper_results()
    return {(r.table, r.method, r.variant, r.setting): (float(r.mean), float(r.std), float(r.n_runs))
            for r in df.itertuples(index=False)}
