"""The run-folder readers and number formats behind the docs' figures (``bench.tools.readme_figures``).

Each reader is cached: a document quotes one run many times, and the files do not change during a rewrite.
A missing file, run or method raises ``FigureError`` with the command that would make it.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[2]


class FigureError(ValueError):
    """A marker that names an unknown kind, a missing run or a method the run does not have."""


@lru_cache(maxsize=None)
def numbers(run: str) -> pd.DataFrame:
    path = ROOT / run / "tables" / "main_numbers.csv"
    if not path.is_file():
        raise FigureError(f"{run}: no tables/main_numbers.csv (make tables RUN={run})")
    return pd.read_csv(path).set_index("method")


@lru_cache(maxsize=None)
def run_status(run: str) -> dict:
    return json.loads((ROOT / run / "status.json").read_text())


@lru_cache(maxsize=None)
def frontier_points(run: str) -> pd.DataFrame:
    path = ROOT / run / "tables" / "frontier_numbers.json"
    if not path.is_file():
        raise FigureError(f"{run}: no tables/frontier_numbers.json (not a frontier run?)")
    return pd.DataFrame(json.loads(path.read_text()))


@lru_cache(maxsize=None)
def dominance(run: str) -> pd.DataFrame:
    return pd.read_csv(ROOT / run / "tables" / "dominance.csv")


@lru_cache(maxsize=None)
def pairwise(run: str) -> pd.DataFrame:
    return pd.read_csv(ROOT / run / "tables" / "pairwise.csv", dtype=str, keep_default_na=False)


@lru_cache(maxsize=None)
def main_cells(run: str) -> dict[str, dict[str, str]]:
    """The rendered method table (tables/main.md), cell by cell: where the table code put bold, and why."""
    lines = [ln for ln in (ROOT / run / "tables" / "main.md").read_text().splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    out = {}
    for ln in lines[2:]:
        cells = [c.strip() for c in ln.strip("|").split("|")]
        out[cells[0]] = dict(zip(header, cells))
    return out


def figure_row(run: str, method: str, budget: str | None = None) -> dict:
    if budget is None:
        table = numbers(run)
        if method not in table.index:
            raise FigureError(f"{run}: no method {method!r} (has {', '.join(table.index)})")
        return table.loc[method].to_dict()
    frame = frontier_points(run)
    hit = frame[(frame["method"] == method) & (frame["budget"] == float(budget))]
    if hit.empty:
        raise FigureError(f"{run}: no frontier point for {method} at KL {budget}")
    return hit.iloc[0].to_dict()


def num(x: float, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def p_text(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return f"{x:.1e}" if x < 0.001 else f"{x:.3f}" if x < 0.01 else f"{x:.2f}" if x < 0.995 else "1.0"


def ci_text(r: dict) -> str:
    return f"{num(r['effect'])} [{num(r['ci_low'])}, {num(r['ci_high'])}]"


def method_label(run: str, method: str, *more: str) -> str:
    """The method with the options it ran on (the tuned candidate, or why it has none) and ``more``."""
    tuning = run_status(run).get(method, {}).get("tuning") or {}
    cand = tuning.get("candidate")
    if tuning.get("untuned"):
        what = "built-in"
    elif tuning.get("none_in_range"):
        what = "none in range on dev"
    elif not cand:
        what = ""
    elif cand == "builtin":
        what = "built-in, chosen"
    elif cand.startswith("follows"):
        what = cand
    else:
        what = f"tuned: {cand}"
    details = [d for d in (what, *more) if d]
    return f"{method} ({'; '.join(details)})" if details else method


def n_seeds(run: str) -> int:
    config = json.loads((ROOT / run / "config.json").read_text())
    return int(config.get("n_seeds", 1))


def pair_p_column(columns) -> str:
    """The pairwise table's Holm p column: "p (Holm)", or "p (t, Holm)" in tables made before seeds."""
    return "p (Holm)" if "p (Holm)" in columns else "p (t, Holm)"
