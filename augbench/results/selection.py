"""Model selection over collected runs: which runs finished, and which configuration they report.

A run's validation score is the trainer's best-epoch criterion (validation `acc`, else `score`,
else -`loss`) at the epoch it reports (`best_epoch` of its test record), else its best over
epochs. When several configurations could fill one cell (a sweep, or runs with other
hyperparameters in the same folder), the one with the best mean validation score is chosen, as
the paper selects its random-crop scale (Section 5.2, Appendix E.3); the test split never
takes part. Configurations whose mean validation scores are equal (e.g. two rotation ranges
both at 100% validation accuracy) are a tie, broken by `TIE_RULE`, and the choice says it was.
Tables and figures both choose here, so a figure shows the runs its table reports.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from augbench.rundir import RunState

VAL_SCORE = (("acc", 1.0), ("score", 1.0), ("loss", -1.0))  # validation criterion, as the trainer's
TIE_RULE = "more seeds, then the first in sorted order of the configuration's values"
TIE_TOLERANCE = 1e-9  # mean validation scores closer than this are equal
# which seed a figure of single runs shows (`representatives` with `by` a test metric): of an even
# count the lower middle one, of equal scores the lower seed
SEED_RULE = "the median seed by {metric}"


def finished_runs(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per finished run: its test record plus `val_acc`, the validation score it is selected by."""
    if frame.empty or "split" not in frame:
        return frame.iloc[0:0].assign(val_acc=pd.Series(dtype=float))
    test = frame[(frame["split"] == "test") & (frame["state"] == RunState.DONE)].drop_duplicates("run_id", keep="last")
    test = test.reset_index(drop=True)
    val = frame[frame["split"] == "val"]
    score = pd.Series(np.nan, index=val.index)
    for col, sign in VAL_SCORE:  # the trainer's best-epoch criterion: acc, else score, else -loss
        if col in val:
            score = score.fillna(sign * pd.to_numeric(val[col]).astype(float))
    if score.isna().all():
        return test.assign(val_acc=np.nan)
    val = pd.DataFrame({"run_id": val["run_id"], "epoch": pd.to_numeric(val["epoch"]).astype(float),
                        "val_acc": score}).dropna(subset=["val_acc"])
    best = val.groupby("run_id")["val_acc"].max()
    epoch = pd.to_numeric(test["best_epoch"]).astype(float) if "best_epoch" in test else np.nan
    at = pd.DataFrame({"run_id": test["run_id"], "epoch": epoch}).merge(
        val.drop_duplicates(["run_id", "epoch"], keep="last"), on=["run_id", "epoch"], how="left")
    return test.assign(val_acc=at["val_acc"].fillna(test["run_id"].map(best)).to_numpy())


def _same(value: Any, wanted: Any) -> bool:
    if isinstance(wanted, (int, float)) and not isinstance(wanted, bool):
        try:
            return bool(np.isclose(float(value), float(wanted)))
        except (TypeError, ValueError):
            return False
    return str(value) == str(wanted)


def select(df: pd.DataFrame, benchmark: str, method: str, variant: str | None,
           where: Mapping[str, Any]) -> pd.DataFrame:
    """Rows of one benchmark, method and variant whose `where` columns equal the given values."""
    if df.empty:
        return df
    mask = (df["benchmark"] == benchmark) & (df["method"] == method)
    if variant is not None:
        mask &= df["variant"].fillna("") == variant
    for col, wanted in where.items():
        if col not in df:
            return df.iloc[0:0]
        mask &= df[col].map(lambda v, w=wanted: _same(v, w))
    return df[mask]


def _config_columns(df: pd.DataFrame) -> list[str]:
    return [c for c in df.columns if c.startswith(("hp.", "set."))]


def _config_keys(df: pd.DataFrame, cols: list[str]) -> pd.Series:
    if not cols:
        return pd.Series("", index=df.index)
    return df[cols].apply(lambda r: json.dumps([None if pd.isna(v) else str(v) for v in r]), axis=1)


def display_value(value: Any) -> str:
    """A configuration value for a note."""
    return str(value.item() if hasattr(value, "item") else value)


class Choice(NamedTuple):
    """What `choose_config` chose and how."""

    runs: pd.DataFrame  # the chosen configuration's runs
    selected: str  # what distinguishes it ("" when only one configuration matched)
    candidates: int  # configurations it was chosen from
    by_validation: bool  # False: no validation score anywhere, the most seeds decided
    tie: int  # configurations tied at the best mean validation score (0: no tie); TIE_RULE broke it


def choose_config(done: pd.DataFrame) -> Choice:
    """The runs of the configuration with the best mean validation accuracy, and how it was chosen.

    A configuration is everything in `hp.*` and `set.*`; equal mean validation scores are a tie,
    broken by `TIE_RULE` (more seeds, then the first in sorted order), so the choice is
    deterministic. The test split plays no part.
    """
    cols = _config_columns(done)
    keys = _config_keys(done, cols)
    groups = {k: g for k, g in done.groupby(keys, sort=True)}
    if len(groups) <= 1:
        return Choice(done, "", len(groups), True, 0)

    def val(k: str) -> float:
        v = groups[k]["val_acc"].mean()
        return -math.inf if pd.isna(v) else float(v)

    top = max(val(k) for k in groups)
    tied = [k for k in sorted(groups) if val(k) == top or abs(val(k) - top) <= TIE_TOLERANCE]
    chosen = groups[max(tied, key=lambda k: len(groups[k]))]  # max keeps the first of equals: sorted order
    differing = [c for c in cols if done[c].astype(str).nunique(dropna=False) > 1]
    desc = ", ".join(f"{c.split('.', 1)[1]}={display_value(chosen[c].iloc[0])}" for c in differing)
    by_validation = bool(done["val_acc"].notna().any())
    return Choice(chosen, desc, len(groups), by_validation, len(tied) if by_validation and len(tied) > 1 else 0)


def representatives(done: pd.DataFrame, usable: Callable[[str], bool] | None = None,
                    by: str | None = None) -> pd.DataFrame:
    """One finished run per (method, variant) of the configuration chosen by validation, among the
    runs whose directory `usable` accepts (all when None); none if no run does.

    With `by` (a test metric, e.g. a ground-truth score), the run of median `by` (`SEED_RULE`);
    without it, or where no usable run reports `by`, the lowest seed. Column `shown` says which
    seed was taken and why, for the figure to print.
    """
    out, notes = [], []
    for _, group in done.groupby(["method", "variant"], sort=True, dropna=False):
        chosen = choose_config(group)[0].sort_values(["seed", "run_id"])
        ok = chosen[[usable is None or usable(str(d)) for d in chosen["run_dir"]]]
        if ok.empty:
            continue
        index, note = _median_run(ok, by)
        out.append(index)
        notes.append(note)
    return done.loc[out].assign(shown=notes)



def _median_run(runs: pd.DataFrame, by: str | None) -> tuple[Any, str]:
    """The index of the run of median `by` among `runs` (sorted by seed) and a note naming its seed and the rule."""
    scores = pd.to_numeric(runs[by], errors="coerce") if by is not None and by in runs else None
    n = len(runs)
    if n == 1:
        return runs.index[0], f"seed {display_value(runs['seed'].iloc[0])}, the only seed"
    if scores is None or scores.isna().all():
        why = f" (none reports {by})" if by is not None else ""
        return runs.index[0], f"seed {display_value(runs['seed'].iloc[0])}, the lowest of {n} seeds{why}"
    ranked = runs.assign(_score=scores).dropna(subset=["_score"]).sort_values(["_score", "seed"], kind="stable")
    pick = ranked.index[(len(ranked) - 1) // 2]
    return pick, f"seed {display_value(runs.at[pick, 'seed'])}, median {by} of {len(ranked)} seeds"
