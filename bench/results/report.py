"""A run's tables as data, rebuilt from its stored rows alone (no model): the method table, the
method-against-method table, the min-pmass sensitivity table, per-value effects and framework means.
How they are shown lives in ``bench.results.display``; files in ``bench.results.tables``; plots in
``bench.results.plots``; all read from here."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from bench.errors import SteerbenchError
from bench.evaluation.dilemmas import FRAMEWORKS
from bench.results.stats import (
    MIN_PMASS,
    MethodStats,
    analyse,
    common_only,
    endpoints,
    holm,
    paired_difference,
    paired_difference_seeds,
)

ALPHA = 0.05
# the built-in methods whose fit makes random choices, for runs recorded before status carried "seeded"
SEEDED_BUILTINS = frozenset({"random", "innerpissa", "antipasto", "lora", "sft"})
MIN_DILEMMAS_PER_VALUE = 10  # a value measured on fewer common dilemmas is too noisy to rank or average
SENSITIVITY_PMASS = (0.0, 0.5)


def load_run(run_dir: Path, all_budgets: bool = False) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """A run's rows (a frontier run's at its main budget unless ``all_budgets``), dilemmas and status."""
    try:
        rows = pd.read_parquet(run_dir / "rows.parquet")
        dilemmas = pd.read_parquet(run_dir / "dilemmas.parquet")
        status = json.loads((run_dir / "status.json").read_text())
    except FileNotFoundError as exc:
        raise SteerbenchError(f"{run_dir} is not a finished run folder: {Path(exc.filename).name} is missing") from None
    except Exception as exc:  # truncated parquet / JSON: one line, the run folder untouched
        raise SteerbenchError(f"{run_dir}: a stored result file cannot be read ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    dilemmas["labels"] = dilemmas["labels"].apply(list)
    return (rows if all_budgets else main_budget(rows, status)), dilemmas, status


def main_budget(rows: pd.DataFrame, status: dict) -> pd.DataFrame:
    """A frontier run's rows at its main KL budget (what every table but the frontier's reports)."""
    frontier = status.get("_frontier")
    if not frontier or "budget" not in rows:
        return rows
    return rows[(rows["budget"] == frontier["main"]) | rows["budget"].isna()].reset_index(drop=True)


def run_strength(rows: pd.DataFrame) -> str:
    return str(rows["strength"].iloc[0]) if "strength" in rows and len(rows) else "raw"


def run_min_pmass(run_dir: Path) -> float:
    """The answer-mass threshold the run was made with (its ``config.json``), else the default."""
    try:
        return float(json.loads((run_dir / "config.json").read_text()).get("min_pmass", MIN_PMASS))
    except (OSError, ValueError):
        return MIN_PMASS


def run_methods(rows: pd.DataFrame, status: dict) -> list[str]:
    """Methods in table order: as run, the ones with rows and status ok."""
    return [m for m, info in status.items() if not m.startswith("_") and info.get("status") == "ok"
            and m in set(rows["method"])]


def sign_label(info: dict) -> str:
    """The sign applied and whether calibration determined it (per seed when seeds differ)."""
    seeds = info.get("seeds") or {}
    first = info.get("calibration") or info.get("meta", {}).get("calibration") or {"sign": info.get("sign", 1)}
    cals = [v.get("calibration") or (first if i == 0 else {"sign": v.get("sign", 1)})
            for i, v in enumerate(seeds.values())] or [first]
    labels = [_one_sign(c) for c in cals]
    if len(set(labels)) > 1:
        return "; ".join(f"seed {s}: {lab}" for s, lab in zip(seeds, labels))
    return labels[0]


def _one_sign(cal: dict) -> str:
    if cal.get("skipped"):
        return "not calibrated" if cal.get("reason") else "+1 (calibration off)"
    if cal.get("determined") is False:
        return f"undetermined (p={cal['p']:.2g}): +1" if "p" in cal else "undetermined: +1"
    text = "-1 (flipped)" if int(cal.get("sign", 1)) < 0 else "+1"
    return text + (f", p={cal['p']:.2g}" if "p" in cal else "")


def method_table(rows: pd.DataFrame, dilemmas: pd.DataFrame, status: dict, value: str,
                 min_pmass: float = MIN_PMASS, seed: int = 0) -> tuple[pd.DataFrame, dict[str, MethodStats]]:
    """One record per method (failed ones with their reason), Holm-adjusted across the methods."""
    records, stats = [], {}
    for method, info in status.items():
        if method.startswith("_"):
            continue
        if info.get("status") != "ok" or method not in set(rows["method"]):
            records.append({"method": method, "note": f"FAILED: {info.get('reason', 'no rows')}"})
            continue
        st = analyse(rows[rows["method"] == method], dilemmas, value, min_pmass, seed)
        stats[method] = st
        lo, hi = st.lo_hi
        rec = {"method": method, "effect": st.effect, "ci_low": st.ci_low, "ci_high": st.ci_high,
               "n_common": st.n_common, "n_value": st.n_value, "nan_c0": st.nan_rate.get(0.0, math.nan),
               "nan_lo": st.nan_rate.get(lo, math.nan), "nan_hi": st.nan_rate.get(hi, math.nan),
               "retention": st.retention, "in_range": st.in_range, "t": st.t, "p": st.p,
               "wilcoxon_p": st.wilcoxon_p, "slope": st.slope, "slope_p": st.slope_p,
               "monotonicity": st.monotonicity, "dnll": st.dnll, "gain": st.gain, "n_seeds": st.n_seeds,
               "effect_sd": st.effect_sd, "sign": sign_label(info),
               "effect_by_seed": " / ".join("n/a" if e != e else f"{e:+.3f}" for e in st.effect_by_seed) if st.n_seeds > 1 else "",
               "sign_stable": st.sign_stable, "p_conditional": st.p_conditional,
               "wilcoxon_p_conditional": st.wilcoxon_p_conditional, "p_seeds_t": st.p_seeds_t}
        notes = [] if st.in_range else [st.range_note()]
        if st.sign_stable is False:
            notes.append("sign-unstable: seeds' Effects disagree in sign")
        if st.n_seeds == 1 and info.get("seeded", method in SEEDED_BUILTINS):
            notes.append("one training seed: seed spread not measured")
        tuning = info.get("tuning", {})
        if tuning.get("untuned"):
            notes.append("untuned (no grid)" if tuning.get("no_grid") else "untuned (built-in defaults)")
        if tuning.get("none_in_range"):
            notes.append("tuned: no candidate in range on dev (built-in defaults)")
        if info.get("unsupported_coeffs"):
            notes.append("no rows at c=" + ",".join(f"{c:g}" for c in info["unsupported_coeffs"]))
        strength = info.get("strength")
        if strength:
            rec["c_star"] = strength.get("c_star") if strength.get("reached") is not False else math.nan
            rec["kl"] = strength.get("kl")
            if strength.get("reached") is False:
                notes.append(f"KL budget not reached (KL {strength['kl']:.3g} at the search limit)")
            if strength.get("discrete"):
                notes.append("discrete: KL at +-1")
            per_seed = [v["strength"].get("c_star") for v in info.get("seeds", {}).values() if "strength" in v]
            if len(set(per_seed)) > 1:
                notes.append("c* per seed: " + ", ".join(f"{c:.3g}" for c in per_seed))
        yesno = info.get("yesno")
        if yesno:
            rec["yesno_lo"], rec["yesno_hi"] = yesno["minus"]["answered"], yesno["plus"]["answered"]
        described = info.get("meta", {}).get("describe", {})
        if described.get("coherence_term") is not None:  # artefacts of the mean-margin InnerPiSSA loss
            rec["coherence"] = described["coherence_term"]
        outside = described.get("tokens_outside_margin")
        if outside:  # per-token trust regions (InnerPiSSA, AntiPaSTO): share of tokens beyond it at each end
            rec["outside_lo"], rec["outside_hi"] = outside["minus"], outside["plus"]
        rec["note"] = "; ".join(notes)
        records.append(rec)
    table = pd.DataFrame(records)
    if "p" in table:
        table["p_holm"] = holm(table["p"].tolist())
        table["wilcoxon_p_holm"] = holm(table["wilcoxon_p"].tolist())
        table["p_seeds_t_holm"] = holm(table["p_seeds_t"].tolist())  # over the seeded methods (NaN: unseeded)
    return table, stats


def compare(a: MethodStats, b: MethodStats, seed: int = 0) -> dict:
    """Effect(A) - Effect(B) on the dilemmas both have, resampling each method's training seeds when either
    has several (``paired_difference_seeds``), else paired over dilemmas."""
    if a.per_dilemma_seeds is None or b.per_dilemma_seeds is None:
        return {**paired_difference(a.per_dilemma, b.per_dilemma, seed), "seed_aware": False}
    return paired_difference_seeds(a.per_dilemma_seeds, b.per_dilemma_seeds, seed)


def pairwise_table(stats: dict[str, MethodStats], seed: int = 0) -> pd.DataFrame:
    """Every pair of methods with rows: Effect(A) - Effect(B) on the dilemmas valid for both (``compare``),
    Holm-adjusted across the pairs. Out-of-range methods are compared too, and flagged."""
    names = list(stats)
    records = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            rec = {"a": a, "b": b, **compare(stats[a], stats[b], seed)}
            rec["in_range"] = stats[a].in_range and stats[b].in_range
            records.append(rec)
    table = pd.DataFrame(records, columns=["a", "b", "n_common", "difference", "ci_low", "ci_high", "t", "p",
                                           "wilcoxon_p", "in_range", "seed_aware", "p_conditional"])
    table["p_holm"] = holm(table["p"].tolist())
    return table


def sensitivity_table(rows: pd.DataFrame, dilemmas: pd.DataFrame, status: dict, value: str,
                      seed: int = 0, thresholds: tuple[float, ...] = SENSITIVITY_PMASS,
                      known: dict[float, pd.DataFrame] | None = None) -> pd.DataFrame:
    """The headline statistics at each NaN-filter threshold, so a reader sees whether a conclusion
    depends on it. ``known``: method tables already computed, by threshold (not recomputed)."""
    out = None
    for threshold in thresholds:
        table = (known or {}).get(threshold)
        if table is None:
            table, _ = method_table(rows, dilemmas, status, value, threshold, seed)
        if "effect" not in table:
            continue
        part = table[["method", "effect", "ci_low", "ci_high", "n_common", "p_holm", "in_range"]].set_index("method")
        part.columns = [f"{c} @{threshold:g}" for c in part.columns]
        out = part if out is None else out.join(part)
    return out.reset_index() if out is not None else pd.DataFrame()


def value_effects(scores: pd.DataFrame) -> pd.DataFrame:
    """Per (method, value), on that method's common dilemmas: mean score at each coefficient (mean over
    seeds), Effect, and the common dilemma count."""
    common = common_only(scores)
    means = common.groupby(["method", "value", "seed", "coeff"])["score"].mean().groupby(
        ["method", "value", "coeff"]).mean().unstack("coeff")
    counts = common.groupby(["method", "value"])["dilemma_idx"].nunique().rename("n")
    coeffs = sorted(float(c) for c in scores["coeff"].unique())
    lo, hi = endpoints(coeffs) if coeffs else (math.nan, math.nan)
    out = means.join(counts)
    out["effect"] = (out[hi] - out[lo]) if hi in out and lo in out else math.nan
    return out.reset_index()


def framework_table(effects: pd.DataFrame, methods: list[str]) -> pd.DataFrame:
    usable = effects[effects["n"] >= MIN_DILEMMAS_PER_VALUE].copy()
    usable["family"] = usable["value"].str.split("/").str[0]
    table = usable[usable["family"].isin(FRAMEWORKS)].groupby(["method", "family"])["effect"].mean().unstack()
    return table.reindex(index=[m for m in methods if m in table.index], columns=list(FRAMEWORKS)).reset_index()
