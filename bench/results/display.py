"""How a run's tables are shown: numbers as cells, the main table's columns and bold cells, the pairwise
and sensitivity tables, the caption, and the summary a run prints. Data comes from ``bench.results.report``."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
from tabulate import tabulate

from bench.results.report import ALPHA, SENSITIVITY_PMASS, load_run, method_table, run_min_pmass, run_strength
from bench.results.stats import MIN_COMMON, MIN_RETENTION
from bench.store import atomic_write_frame, atomic_write_text


def cell(x: object, is_p: bool = False) -> object:
    """3 decimals; p-values below 0.001 in scientific notation; NaN as an empty cell."""
    if isinstance(x, float):
        if math.isnan(x):
            return ""
        if is_p and x < 1e-3:
            return f"{x:.1e}"
        return f"{x:.3f}".replace("-0.000", "0.000")
    return x


def _interval(est: float, lo: float, hi: float) -> str:
    if math.isnan(est):
        return ""
    return f"{est:.3f} [{lo:.3f}, {hi:.3f}]" if not math.isnan(lo) else f"{est:.3f}"


def _pct(x: float) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def main_display(table: pd.DataFrame) -> tuple[pd.DataFrame, set[tuple[int, str]]]:
    """The main table as strings, and the cells to bold: the best Effect and gain among in-range, sign-stable
    methods whose positive Effect is Holm-significant at ALPHA; nothing is bold when none is."""
    shown = pd.DataFrame({"Method": table["method"]})
    has = "effect" in table
    col = table.get
    shown["Effect [95% CI]"] = [_interval(*v) for v in zip(col("effect"), col("ci_low"), col("ci_high"))] if has else ""
    if has:
        shown["N common"] = [("" if math.isnan(n) else f"{int(n)}/{int(v)}") for n, v in zip(table["n_common"], table["n_value"])]
        shown["NaN c=0"] = [_pct(x) for x in table["nan_c0"]]
        shown["NaN c-/c+"] = [("" if math.isnan(a) else f"{_pct(a)} / {_pct(b)}") for a, b in zip(table["nan_lo"], table["nan_hi"])]
        seeded = (table["n_seeds"].fillna(1) > 1).any()
        # several seeds: the main p is the two-level bootstrap's (seeds and dilemmas), as its CI; the
        # dilemma-level tests are conditional on the trained seeds and stay in main_numbers.csv only
        shown["p (seeds x dilemmas, Holm)" if seeded else "p (t, Holm)"] = [cell(x, True) for x in table["p_holm"]]
        if not seeded:
            shown["p (Wilcoxon, Holm)"] = [cell(x, True) for x in table["wilcoxon_p_holm"]]
        shown["Slope"] = [cell(x) for x in table["slope"]]
        shown["Monotonicity"] = [cell(x) for x in table["monotonicity"]]
        shown["dNLL (eval. half)"] = [cell(x) for x in table["dnll"]]
        shown["Norm. gain"] = [cell(x) for x in table["gain"]]
        if "c_star" in table:
            shown["c*"] = [cell(x) for x in table["c_star"]]
            shown["KL (calib. half)"] = [cell(x) for x in table["kl"]]
        if "yesno_lo" in table:
            shown["Yes/No probe c-/c+"] = [("" if math.isnan(a) else f"{_pct(a)} / {_pct(b)}")
                                         for a, b in zip(table["yesno_lo"], table["yesno_hi"])]
        if "coherence" in table:
            shown["Coherence term (train)"] = [cell(x) for x in table["coherence"]]
        if "outside_lo" in table:
            shown["Tokens outside trust region c-/c+ (train)"] = [
                "" if a != a else f"{_pct(a)} / {_pct(b)}" for a, b in zip(table["outside_lo"], table["outside_hi"])]
        if "n_parameters" in table:
            shown["Parameters"] = ["" if n != n else f"{int(n):,}" for n in table["n_parameters"]]
            shown["Efficiency"] = ["n/a" if n == 0 else cell(x) for x, n in zip(table["efficiency"], table["n_parameters"])]
            shown["Breadth (values)"] = ["" if b != b else f"{int(b)} of {int(o)}"
                                         for b, o in zip(table["breadth"], table["breadth_of"])]
        if "f1" in table:
            shown["Steering F1"] = [cell(x) for x in table["f1"]]
            kept = table["capability_kept"] if "capability_kept" in table else [math.nan] * len(table)
            shown["Capability kept"] = ["" if x != x else _pct(x) for x in kept]
        if "coherence_range" in table:
            shown["Coherence range"] = table["coherence_range"].fillna("")
        if seeded:
            shown["Seeds"] = [("" if math.isnan(n) else str(int(n))) for n in table["n_seeds"]]
            shown["Effect per seed"] = table["effect_by_seed"].fillna("")
            shown["Effect sd (seeds)"] = [cell(x) for x in table["effect_sd"]]
            shown["p over seeds (t, Holm)"] = [cell(x, True) for x in table["p_seeds_t_holm"]]
            shown["Sign-stable"] = [{True: "yes", False: "NO"}.get(x, "") for x in table["sign_stable"]]
        shown["Sign"] = table["sign"].fillna("")
    shown["Note"] = table["note"].fillna("") if "note" in table else ""
    bold: set[tuple[int, str]] = set()
    if has:
        # a significant Effect against the intended direction is not "best": only positive Effects compete
        # and with several seeds only a sign-stable one (every seed the same sign, or its CI holds 0)
        stable = table["sign_stable"] != False if "sign_stable" in table else True  # noqa: E712
        eligible = table[(table["in_range"] == True) & (table["p_holm"] < ALPHA) & (table["effect"] > 0) & stable]  # noqa: E712
        for key, name in (("effect", "Effect [95% CI]"), ("gain", "Norm. gain")):
            if len(eligible) and eligible[key].notna().any():
                bold.add((int(eligible[key].idxmax()), name))
    return shown, bold


def pairwise_display(pairs: pd.DataFrame) -> tuple[pd.DataFrame, set[tuple[int, str]]]:
    shown = pd.DataFrame({
        "A": pairs["a"], "B": pairs["b"], "N common": pairs["n_common"].astype(int).astype(str),
        "Effect A - B [95% CI]": [_interval(*v) for v in zip(pairs["difference"], pairs["ci_low"], pairs["ci_high"])],
        "p (Holm)": [cell(x, True) for x in pairs["p_holm"]],
        "test": ["seeds x dilemmas bootstrap" if aware is True else "t over dilemmas"
                 for aware in pairs.get("seed_aware", pd.Series(False, index=pairs.index))],
        "Note": ["" if ok else "an out-of-range method" for ok in pairs["in_range"]],
    })
    bold = {(i, "Effect A - B [95% CI]") for i, p in enumerate(pairs["p_holm"]) if p < ALPHA}
    return shown, bold


def sensitivity_display(sens: pd.DataFrame) -> pd.DataFrame:
    shown = pd.DataFrame({"Method": sens["method"]})
    for threshold in SENSITIVITY_PMASS:
        k = f"@{threshold:g}"
        if f"effect {k}" not in sens:
            continue
        shown[f"Effect [95% CI], min pmass {threshold:g}"] = [
            _interval(*v) for v in zip(sens[f"effect {k}"], sens[f"ci_low {k}"], sens[f"ci_high {k}"])]
        shown[f"N common {k}"] = [("" if math.isnan(n) else str(int(n))) for n in sens[f"n_common {k}"]]
        shown[f"p (t, Holm) {k}"] = [cell(x, True) for x in sens[f"p_holm {k}"]]
        shown[f"in range {k}"] = ["yes" if ok is True else ("no" if ok is False else "") for ok in sens[f"in_range {k}"]]
    return shown


def table_caption(value: str, strength: str) -> str:
    label = "matched strength (c in multiples of each method's KL-matched c*)" if strength == "matched" \
        else "raw coefficients"
    return (f"Steering methods on DailyDilemmas, target value {value}, {label}. Unit: the dilemma. Effect = mean "
            f"over the N common dilemmas (valid at every coefficient) of score(c+) - score(c-), BCa 95% bootstrap CI "
            f"over dilemmas; p: paired t-test and Wilcoxon signed-rank over dilemmas, Holm-adjusted across methods. "
            f"With several training seeds, the CI and p come from one two-level bootstrap (seeds, then dilemmas), so "
            f"they carry the seed variance and agree; p over seeds (t, Holm): a t-test of the per-seed Effects (df = "
            f"seeds - 1), stricter with few seeds, since the bootstrap never resamples beyond the observed seeds; "
            f"sign-stable: every seed's Effect has one sign or a CI with 0. "
            f"Bold: best positive Effect among in-range, sign-stable methods with Holm p < {ALPHA}. "
            f"Out of range: worse end keeps < {MIN_RETENTION:.0%} of c=0's valid dilemmas or "
            f"N common < {MIN_COMMON}. The random vector is never sign-calibrated (it is the noise floor).")


def save_summary(run_dir: Path, table: pd.DataFrame, value: str, strength: str) -> str:
    """``summary.md`` and ``summary.csv`` from a run's method table (``report.method_table``); returns the text.
    ``build_tables`` calls it with the table it builds on, so the summary is rebuilt with every table."""
    shown, _ = main_display(table)
    body = tabulate(shown.values.tolist(), headers=list(shown.columns), tablefmt="github", disable_numparse=True)
    text = f"{table_caption(value, strength)}\n\n{body}"
    atomic_write_frame(run_dir / "summary.csv", table)
    atomic_write_text(run_dir / "summary.md", text + "\n")
    return text


def write_summary(run_dir: Path, value: str, min_pmass: float | None = None, seed: int = 0) -> str:
    """The summary alone (``bench summary``, or a run made with ``--no-tables``), at the run's own min pmass
    unless ``min_pmass`` is given."""
    rows, dilemmas, status = load_run(run_dir)
    if min_pmass is None:
        min_pmass = run_min_pmass(run_dir)
    table, _ = method_table(rows, dilemmas, status, value, min_pmass, seed)
    return save_summary(run_dir, table, value, run_strength(rows))
