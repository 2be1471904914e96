"""The development / test split of DailyDilemmas, by dilemma.

Tuning sees only ``dev`` dilemmas and every reported statistic only ``test`` ones (the fair protocol:
AxBench, SteeringControl and ReFT all tune on data disjoint from what they report). The split is a pure
function of the dataset, the target value and ``SPLIT_SEED``: it never depends on a run's ``--seed`` or
``--n-dilemmas``, so a tune with one seed and a bench with another can never swap a dilemma between the
sides. It is stratified by whether the target value sits on exactly one action (the dilemmas that count)
or on both, and dilemmas without the target are split too (for runs that evaluate beyond it).
"""

from __future__ import annotations

import random

import pandas as pd

from bench.errors import SteerbenchError
from bench.evaluation.dilemmas import Dilemmas

SPLIT_SEED = 20260  # fixed for the project: changing it changes every tuned choice and test table
DEV_FRACTION = 0.25
SPLITS = ("test", "dev", "all")


def _stratum(group: pd.DataFrame, target: str) -> str:
    carries = [target in labels for labels in group["labels"]]
    return "one action" if sum(carries) == 1 else "both actions" if all(carries) else "untagged"


def dilemma_split(dilemmas: Dilemmas, target: str, dev_fraction: float = DEV_FRACTION,
                  seed: int = SPLIT_SEED) -> pd.Series:
    """``dilemma_idx -> "dev" | "test"``: a seeded ``dev_fraction`` of each stratum is dev."""
    strata: dict[str, list[int]] = {}
    for idx, group in dilemmas.rows.groupby("dilemma_idx", sort=True):
        strata.setdefault(_stratum(group, target), []).append(int(idx))
    out = {}
    for name in sorted(strata):
        ids = sorted(strata[name])
        random.Random(f"{seed}:{target}:{name}").shuffle(ids)
        n_dev = round(dev_fraction * len(ids))
        out.update({i: "dev" for i in ids[:n_dev]} | {i: "test" for i in ids[n_dev:]})
    return pd.Series(out, name="split").sort_index()


def restrict(dilemmas: Dilemmas, target: str, split: str) -> tuple[Dilemmas, pd.Series]:
    """The dilemmas of one side (``all``: both), and the full split for the record."""
    if split not in SPLITS:
        raise SteerbenchError(f"--split {split!r} is not accepted; accepted: {', '.join(SPLITS)}")
    sides = dilemma_split(dilemmas, target)
    if split == "all":
        return dilemmas, sides
    keep = set(sides.index[sides == split])
    rows = dilemmas.rows[dilemmas.rows["dilemma_idx"].isin(keep)].reset_index(drop=True)
    return Dilemmas(rows=rows, label_names=sorted({lab for labs in rows["labels"] for lab in labs})), sides
