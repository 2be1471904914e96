"""The method table of a run, rebuilt from its stored rows alone (no model)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from bench.stats import MIN_PMASS, summarize
from bench.store import atomic_write_frame, atomic_write_text

COLUMNS = {
    "method": "Method", "effect": "Effect", "slope": "Slope", "t": "t", "p": "p",
    "paired_t": "paired t", "paired_p": "paired p", "rho": "Spearman rho", "nan_rate": "NaN rate",
    "dnll": "dNLL", "gain": "Norm. gain", "n_dilemmas": "N dilemmas", "c_star": "c*", "kl": "KL",
    "n_seeds": "Seeds", "effect_sd": "Effect sd (seeds)", "gain_sd": "Gain sd (seeds)",
}
SEED_SPREAD = ("effect", "gain")  # shown as sd over training seeds next to their mean


def load_run(run_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    rows = pd.read_parquet(run_dir / "rows.parquet")
    dilemmas = pd.read_parquet(run_dir / "dilemmas.parquet")
    dilemmas["labels"] = dilemmas["labels"].apply(list)
    status = json.loads((run_dir / "status.json").read_text())
    return rows, dilemmas, status


def method_table(rows: pd.DataFrame, dilemmas: pd.DataFrame, status: dict, value: str,
                 min_pmass: float = MIN_PMASS) -> pd.DataFrame:
    records = []
    for method, info in status.items():
        if method.startswith("_"):
            continue
        if info.get("status") != "ok" or method not in set(rows["method"]):
            records.append({"method": method, "note": f"FAILED: {info.get('reason', 'no rows')}"})
            continue
        stats = seed_summary(method, rows, dilemmas, value, min_pmass)
        notes = []
        if info.get("sign") == -1:
            notes.append("sign flipped")
        if info.get("unsupported_coeffs"):
            notes.append("no rows at c=" + ",".join(f"{c:g}" for c in info["unsupported_coeffs"]))
        strength = info.get("strength")
        if strength:
            stats["c_star"] = strength.get("c_star") if strength.get("reached") is not False else math.nan
            stats["kl"] = strength.get("kl")
            if strength.get("reached") is False:
                notes.append(f"KL budget not reached (KL {strength['kl']:.3g} at the search limit)")
            if strength.get("discrete"):
                notes.append("discrete: KL at +-1")
        stats["note"] = "; ".join(notes)
        records.append(stats)
    return pd.DataFrame(records)


def seed_summary(method: str, rows: pd.DataFrame, dilemmas: pd.DataFrame, value: str, min_pmass: float) -> dict:
    """The method's statistics; with several training seeds, each seed is summarised on its own and the
    table gets the mean over seeds, their count, and the sd of Effect and gain (evaluation is deterministic,
    so this sd is the training noise)."""
    mine = rows[rows["method"] == method]
    seeds = sorted(mine["seed"].unique()) if "seed" in mine else [None]
    per_seed = []
    for seed in seeds:
        sub = mine if seed is None else mine[mine["seed"] == seed]
        nll = sub.groupby("coeff")["nll"].first().to_dict()
        per_seed.append(summarize(method, sub, dilemmas, value, nll, min_pmass).as_row())
    if len(per_seed) == 1:
        return {**per_seed[0], "n_seeds": 1}
    frame = pd.DataFrame(per_seed)
    out = {k: (frame[k].mean() if pd.api.types.is_numeric_dtype(frame[k]) else frame[k].iloc[0]) for k in frame}
    out["n_seeds"] = len(per_seed)
    for k in SEED_SPREAD:
        out[f"{k}_sd"] = float(frame[k].std(ddof=1))
    return out


def seed_columns(table: pd.DataFrame) -> list[str]:
    """Seed count and spread columns, only for tables with several training seeds somewhere."""
    if "n_seeds" not in table or not (table["n_seeds"].fillna(1) > 1).any():
        return []
    return ["n_seeds"] + [f"{k}_sd" for k in SEED_SPREAD]


def cell(x: object, is_p: bool = False) -> object:
    """3 decimals; p-values below 0.001 in scientific notation; NaN as an empty cell."""
    if isinstance(x, float):
        if math.isnan(x):
            return ""
        if is_p and x < 1e-3:
            return f"{x:.1e}"
        return f"{x:.3f}".replace("-0.000", "0.000")
    return x


def format_table(table: pd.DataFrame, value: str, fmt: str = "github", strength: str = "raw") -> str:
    seed_only = {"n_seeds", *(f"{k}_sd" for k in SEED_SPREAD)}
    cols = [c for c in COLUMNS if c in table.columns and c not in seed_only] + seed_columns(table)
    cols += ["note"] if "note" in table.columns else []
    shown = table[cols].copy()
    for col in cols:
        is_p = col in ("p", "paired_p")
        shown[col] = [cell(x, is_p) for x in shown[col]]
    shown = shown.rename(columns={**COLUMNS, "note": "Note"})
    label = "matched strength: coefficients are multiples of each method's c*" if strength == "matched" \
        else "raw coefficients"
    body = tabulate(shown.values.tolist(), headers=list(shown.columns), tablefmt=fmt, disable_numparse=True)
    return f"Method table for {value} ({label})\n{body}"


def write_summary(run_dir: Path, value: str, min_pmass: float = MIN_PMASS) -> str:
    rows, dilemmas, status = load_run(run_dir)
    table = method_table(rows, dilemmas, status, value, min_pmass)
    strength = rows["strength"].iloc[0] if "strength" in rows and len(rows) else "raw"
    text = format_table(table, value, strength=strength)
    atomic_write_frame(run_dir / "summary.csv", table)
    atomic_write_text(run_dir / "summary.md", text + "\n")
    return text
