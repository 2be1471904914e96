"""Paper tables from a run's stored rows alone (no model): Markdown, LaTeX (booktabs) and CSV.

- main: one row per method for the target value, Effect with a seeded 95% bootstrap CI over dilemmas;
  best values in bold; methods that could not run listed with the reason.
- coefficients_<method>: coefficient x value (the target, the values it moved most, and a side-effects
  column: mean |change from c=0| over every non-target value).
- frameworks: mean Effect per framework family (Virtue/, MFT/, WVS/, Emotion/, Maslow/) per method.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from bench.dilemmas import FRAMEWORKS
from bench.report import COLUMNS, cell, load_run, method_table, seed_columns
from bench.stats import MIN_PMASS, _endpoints, bootstrap_effect_ci, dilemma_scores
from bench.store import atomic_write_frame, atomic_write_text

MIN_DILEMMAS_PER_VALUE = 10  # a value measured on fewer dilemmas is too noisy to rank or average
HIGHER_IS_BETTER = {"effect": True, "gain": True, "paired_t": True, "rho": True, "dnll": False, "nan_rate": False}
LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                 "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    return "".join(LATEX_ESCAPES.get(ch, ch) for ch in str(text))


def to_markdown(frame: pd.DataFrame, bold: set[tuple[int, str]] = frozenset()) -> str:
    cols = list(frame.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for i, row in enumerate(frame.itertuples(index=False)):
        cells = [f"**{v}**" if (i, c) in bold and v != "" else str(v) for c, v in zip(cols, row)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def to_latex(frame: pd.DataFrame, bold: set[tuple[int, str]] = frozenset(), caption: str = "") -> str:
    cols = list(frame.columns)
    spec = "l" + "r" * (len(cols) - 1)
    out = [f"% {latex_escape(caption)}" if caption else "%", rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
           " & ".join(latex_escape(c) for c in cols) + r" \\", r"\midrule"]
    for i, row in enumerate(frame.itertuples(index=False)):
        cells = [latex_escape(v) for v in row]
        cells = [rf"\textbf{{{v}}}" if (i, c) in bold and v != "" else v for c, v in zip(cols, cells)]
        out.append(" & ".join(cells) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(out) + "\n"


def write_table(folder: Path, name: str, frame: pd.DataFrame, bold: set[tuple[int, str]] = frozenset(),
                caption: str = "") -> None:
    atomic_write_frame(folder / f"{name}.csv", frame)
    shown = frame.map(lambda x: cell(x) if isinstance(x, float) else x)
    atomic_write_text(folder / f"{name}.md", (f"{caption}\n\n" if caption else "") + to_markdown(shown, bold))
    atomic_write_text(folder / f"{name}.tex", to_latex(shown, bold, caption))


def value_effects(scores: pd.DataFrame, coeffs: list[float]) -> pd.DataFrame:
    """Per (method, value): mean score at each coefficient, Effect, and the dilemma count."""
    means = scores.groupby(["method", "value", "coeff"])["score"].mean().unstack("coeff")
    counts = scores.groupby(["method", "value"])["dilemma_idx"].nunique().rename("n")
    lo, hi = _endpoints(coeffs)
    out = means.join(counts)
    out["effect"] = (out[hi] - out[lo]) if hi in out and lo in out else math.nan
    return out.reset_index()


def main_table(rows, dilemmas, status, value, scores, min_pmass=MIN_PMASS, seed=0) -> tuple[pd.DataFrame, set, pd.DataFrame]:
    table = method_table(rows, dilemmas, status, value, min_pmass)
    coeffs = sorted(rows["coeff"].unique())
    lo, hi = _endpoints(coeffs)
    ci = []
    for m in table["method"]:
        sub = scores[(scores["method"] == m) & (scores["value"] == value)]
        ci.append(bootstrap_effect_ci(sub, lo, hi, seed=seed) if len(sub) else (math.nan, math.nan))
    table.insert(2, "ci_low", [c[0] for c in ci])
    table.insert(3, "ci_high", [c[1] for c in ci])
    shown = pd.DataFrame({"Method": table["method"]})
    shown["Effect [95% CI]"] = [
        "" if math.isnan(e) else f"{e:.3f} [{a:.3f}, {b:.3f}]" if not math.isnan(a) else f"{e:.3f}"
        for e, a, b in zip(table.get("effect", [math.nan] * len(table)), table["ci_low"], table["ci_high"])]
    for key in ("slope", "t", "p", "paired_t", "paired_p", "rho", "dnll", "nan_rate", "gain", "n_dilemmas",
                "c_star", "kl", *seed_columns(table)):
        if key in table:
            shown[COLUMNS[key]] = [cell(x, key in ("p", "paired_p")) for x in table[key]]
    shown["Note"] = table.get("note", "").fillna("") if "note" in table else ""
    bold = set()
    for key, higher in HIGHER_IS_BETTER.items():
        if key not in table or table[key].isna().all():
            continue
        best = table[key].idxmax() if higher else table[key].idxmin()
        col = "Effect [95% CI]" if key == "effect" else COLUMNS[key]
        bold.add((int(best), col))
    return shown, bold, table


def coefficient_table(effects: pd.DataFrame, method: str, value: str, coeffs: list[float], top: int = 5) -> pd.DataFrame:
    mine = effects[(effects["method"] == method) & (effects["n"] >= MIN_DILEMMAS_PER_VALUE)]
    others = mine[mine["value"] != value]
    moved = others.reindex(others["effect"].abs().sort_values(ascending=False).index)["value"].head(top).tolist()
    shown = [v for v in [value] + moved if v in set(mine["value"])]
    frame = mine.set_index("value").loc[shown, coeffs].T if shown else pd.DataFrame(index=coeffs)
    frame.index.name = "coeff"
    base = others.set_index("value")[0.0] if 0.0 in others else None
    frame["side effects (mean |change|, non-target)"] = [
        float((others.set_index("value")[c] - base).abs().mean()) if base is not None else math.nan for c in coeffs]
    return frame.reset_index()


def framework_table(effects: pd.DataFrame, methods: list[str]) -> pd.DataFrame:
    usable = effects[effects["n"] >= MIN_DILEMMAS_PER_VALUE].copy()
    usable["family"] = usable["value"].str.split("/").str[0]
    table = usable[usable["family"].isin(FRAMEWORKS)].groupby(["method", "family"])["effect"].mean().unstack()
    return table.reindex(index=[m for m in methods if m in table.index], columns=list(FRAMEWORKS)).reset_index()


def build_tables(run_dir: Path, value: str, min_pmass: float | None = None, seed: int = 0) -> Path:
    rows, dilemmas, status = load_run(run_dir)
    if min_pmass is None:  # the threshold the run was made with
        min_pmass = json.loads((run_dir / "config.json").read_text()).get("min_pmass", MIN_PMASS)
    folder = run_dir / "tables"
    coeffs = sorted(float(c) for c in rows["coeff"].unique())
    scores = dilemma_scores(rows, dilemmas, min_pmass)
    effects = value_effects(scores, coeffs)
    seed_scores = dilemma_scores(rows, dilemmas, min_pmass, by_seed=True)  # CIs of the mean over seeds
    main, bold, raw = main_table(rows, dilemmas, status, value, seed_scores, min_pmass, seed)
    strength = rows["strength"].iloc[0] if "strength" in rows and len(rows) else "raw"
    label = "matched strength (c in multiples of each method's KL-matched c*)" if strength == "matched" \
        else "raw coefficients"
    write_table(folder, "main", main, bold, f"Steering methods on DailyDilemmas, target value {value}, {label} "
                f"(Effect = score(c=+1) - score(c=-1), 95% bootstrap CI over dilemmas)")
    methods = [m for m in status if not m.startswith("_") and m in set(rows["method"])]
    for m in methods:
        write_table(folder, f"coefficients_{m}", coefficient_table(effects, m, value, coeffs),
                    caption=f"{m}: mean score per coefficient for {value} and the values it moved most")
    write_table(folder, "frameworks", framework_table(effects, methods),
                caption="Mean Effect per framework family (values on >= 10 dilemmas)")
    atomic_write_frame(folder / "value_effects.csv", effects)
    from bench.plots import build_plots

    build_plots(run_dir / "plots", scores, effects, raw, value, methods)
    return folder


def cross_run_tables(run_dirs: list[Path], value: str, out: Path) -> Path:
    """Across runs: one table with a column per model, and per method an ablation table whose
    columns are the options that differ between its runs (e.g. InnerPiSSA rank / rotate-u / loss)."""
    entries = []
    for run in run_dirs:
        rows, dilemmas, status = load_run(run)
        config = json.loads((run / "config.json").read_text())
        table = method_table(rows, dilemmas, status, value, config.get("min_pmass", MIN_PMASS))
        for rec in table.to_dict("records"):
            info = status.get(rec["method"], {})
            options = info.get("meta", {}).get("options", {})
            entries.append({"run": run.name, "model": config["model"], "strength": config.get("strength", "raw"),
                            "seed": config.get("seed"), **rec, "options": options})
    frame = pd.DataFrame(entries)
    if frame.empty:
        return out
    metrics = [k for k in ("effect", "paired_t", "paired_p", "rho", "dnll", "gain") if k in frame]
    # Raw and matched-strength runs of one model are different experiments: never average them together.
    frame["column"] = frame["model"] + (" (" + frame["strength"] + ")" if frame["strength"].nunique() > 1 else "")
    by_model = frame.pivot_table(index="method", columns="column", values=["effect", "gain"], aggfunc="mean")
    by_model.columns = [f"{m} {COLUMNS[k]}" for k, m in by_model.columns]
    write_table(out, "cross_models", by_model.reset_index().rename(columns={"method": "Method"}),
                caption=f"{value}: Effect and normalized gain per model")
    for method, group in frame.groupby("method"):
        if len(group) < 2:
            continue
        opts = pd.DataFrame(list(group["options"]))
        differing = [c for c in opts.columns if opts[c].astype(str).nunique() > 1]
        if not differing:
            continue
        table = pd.concat([opts[differing].reset_index(drop=True),
                           group[["model", "run"] + metrics].reset_index(drop=True)], axis=1)
        table = table.rename(columns={k: COLUMNS.get(k, k) for k in metrics})
        write_table(out, f"ablation_{method}", table, caption=f"{method} ablation on {value}: options that differ")
    return out
