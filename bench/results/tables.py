"""Paper tables from a run's stored rows alone (no model): Markdown, LaTeX (booktabs) and CSV.

- main: one row per method for the target value (the statistics of ``bench.results.report.method_table``: the
  dilemma is the unit, common dilemmas at every coefficient, Holm-adjusted tests); bold only where best
  and Holm-significant; methods that could not run listed with the reason. ``main_numbers.csv``: unrounded.
- pairwise: method against method, paired over the dilemmas valid for both.
- sensitivity: the headline statistics at min pmass 0 and 0.5.
- coefficients_<method>: coefficient x value (the target, the values it moved most, and a side-effects
  column: mean |change from c=0| over every non-target value).
- frameworks: mean Effect per framework family (Virtue/, MFT/, WVS/, Emotion/, Maslow/) per method.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from bench.model.loading import model_slug
from bench.results.agreement import pair_verdicts, rank_agreement
from bench.results.display import (
    cell,
    main_display,
    pairwise_display,
    save_summary,
    sensitivity_display,
    table_caption,
)
from bench.results.frontier import cross_model_frontier, write_frontier
from bench.results.paper_metrics import add_f1_columns, add_paper_columns, coherence_range, load_control_rows, value_significance
from bench.results.plots import build_plots
from bench.results.render import latex_escape, to_latex, to_markdown, write_table  # noqa: F401  (re-exported)
from bench.results.report import (
    ALPHA,
    MIN_DILEMMAS_PER_VALUE,
    framework_table,
    load_run,
    method_table,
    pairwise_table,
    run_methods,
    run_min_pmass,
    run_strength,
    sensitivity_table,
    value_effects,
)
from bench.results.stats import common_only, dilemma_scores
from bench.store import atomic_write_frame, atomic_write_json


def coefficient_table(effects: pd.DataFrame, method: str, value: str, coeffs: list[float], top: int = 5) -> pd.DataFrame:
    mine = effects[(effects["method"] == method) & (effects["n"] >= MIN_DILEMMAS_PER_VALUE)]
    others = mine[mine["value"] != value]
    moved = others.reindex(others["effect"].abs().sort_values(ascending=False).index)["value"].head(top).tolist()
    shown = [v for v in [value] + moved if v in set(mine["value"])]
    cols = [c for c in coeffs if c in mine.columns]
    frame = mine.set_index("value").loc[shown, cols].T if shown else pd.DataFrame(index=cols)
    frame.index.name = "coeff"
    base = others.set_index("value")[0.0] if 0.0 in others else None
    frame["side effects (mean |change|, non-target)"] = [
        float((others.set_index("value")[c] - base).abs().mean()) if base is not None else math.nan for c in cols]
    return frame.reset_index()


def build_tables(run_dir: Path, value: str, min_pmass: float | None = None, seed: int = 0) -> Path:
    rows, dilemmas, status = load_run(run_dir)
    if min_pmass is None:  # the threshold the run was made with
        min_pmass = run_min_pmass(run_dir)
    folder = run_dir / "tables"
    coeffs = sorted(float(c) for c in rows["coeff"].unique())
    table, stats = method_table(rows, dilemmas, status, value, min_pmass, seed)
    strength = run_strength(rows)
    save_summary(run_dir, table, value, strength)  # the run's summary, rebuilt with its tables
    scores = dilemma_scores(rows, dilemmas, min_pmass)
    significance = value_significance(scores)  # per value: Breadth, and value_effects.csv's p columns
    table = add_paper_columns(table, status, significance)
    table = add_f1_columns(table, rows, dilemmas, load_control_rows(run_dir, status), value, min_pmass)
    front = None
    if "_frontier" in status:  # a frontier run: the same rows at every budget of its ladder
        front = write_frontier(run_dir, value, min_pmass, seed)
    table["coherence_range"] = coherence_range(table, status, rows, dilemmas, value, min_pmass,
                                               front.table if front is not None else None)
    main, bold = main_display(table)
    write_table(folder, "main", main, bold, table_caption(value, strength))
    atomic_write_frame(folder / "main_numbers.csv", table)
    pairs = pairwise_table(stats, seed)
    shown, pbold = pairwise_display(pairs)
    write_table(folder, "pairwise", shown, pbold,
                f"Method against method on {value}: Effect(A) - Effect(B) on the dilemmas valid for both, paired over "
                f"dilemmas, BCa 95% CI; p Holm-adjusted across pairs (bold: Holm p < {ALPHA})")
    sens = sensitivity_table(rows, dilemmas, status, value, seed, known={min_pmass: table})
    write_table(folder, "sensitivity", sensitivity_display(sens),
                caption=f"{value}: headline statistics at min pmass 0 (every finite answer counts) and 0.5 "
                        f"(the default NaN filter)")
    effects = value_effects(scores).merge(significance, on=["method", "value"], how="left")
    methods = run_methods(rows, status)
    for m in methods:
        write_table(folder, f"coefficients_{m}", coefficient_table(effects, m, value, coeffs),
                    caption=f"{m}: mean score per coefficient (common dilemmas) for {value} and the values it moved most")
    write_table(folder, "frameworks", framework_table(effects, methods),
                caption=f"Mean Effect per framework family (values on >= {MIN_DILEMMAS_PER_VALUE} common dilemmas)")
    atomic_write_frame(folder / "value_effects.csv", effects)
    build_plots(run_dir / "plots", common_only(scores), effects, table, value, methods)
    return folder


def cross_method_comparisons(out: Path, value: str, stats_by_column: dict[str, dict], seed: int = 0) -> None:
    """The method comparison per model side by side (``cross_pairwise``: every pair's paired difference and
    Holm p, one column group per run, and with two runs whether they agree), and whether the runs rank the
    methods alike (``rank_agreement``: Kendall's tau with a paired dilemma-bootstrap interval, over all
    methods and over the methods in range in both runs)."""
    if len(stats_by_column) < 2:
        return
    pairs = {column: pairwise_table(stats, seed) for column, stats in stats_by_column.items()}
    first = next(iter(pairs.values()))
    wide = pd.DataFrame({"A": first["a"], "B": first["b"]})
    for column, table in pairs.items():
        shown, _ = pairwise_display(table.set_index(["a", "b"]).reindex(list(zip(first["a"], first["b"]))).reset_index())
        wide[f"{column}: Effect A - B [95% CI]"] = shown["Effect A - B [95% CI]"].to_numpy()
        wide[f"{column}: p (Holm)"] = shown["p (Holm)"].to_numpy()
    columns = list(pairs)
    if len(columns) == 2:
        verdicts = pair_verdicts(pairs[columns[0]], pairs[columns[1]], ALPHA)
        wide["Both models"] = [verdicts.get((a, b), "") for a, b in zip(wide["A"], wide["B"])]
    write_table(out, "cross_pairwise", wide,
                caption=f"{value}: method against method on each model (paired over dilemmas, Holm within each "
                        f"model); agree / disagree: both Holm p < {ALPHA} with the same / opposite sign")
    records = []
    for i, x in enumerate(columns):
        for y in columns[i + 1:]:
            sx, sy = stats_by_column[x], stats_by_column[y]
            for subset, keep in (("with an Effect on both", lambda m: math.isfinite(sx[m].effect * sy[m].effect)),
                                 ("in range on both", lambda m: sx[m].in_range and sy[m].in_range)):
                names = [m for m in sx if m in sy and keep(m)]
                agree = rank_agreement({m: sx[m].per_dilemma for m in names}, {m: sy[m].per_dilemma for m in names},
                                       seed)
                records.append({"Models": f"{x} vs {y}", "Methods": f"{subset} ({agree['n_methods']})",
                                "Kendall tau [95% CI]": _tau_cell(agree), "p": cell(agree["p"], True),
                                "Same best method": "" if math.isnan(agree["same_best_share"]) else
                                f"{'yes' if agree['same_best'] else 'no'} ({agree['same_best_share']:.0%} of draws)"})
    write_table(out, "rank_agreement", pd.DataFrame(records),
                caption=f"{value}: rank agreement of the methods' Effects between runs (Kendall tau; 95% CI from "
                        f"resampling dilemmas jointly for both runs; share of draws where both pick the same best)")


def _tau_cell(agree: dict) -> str:
    if math.isnan(agree["tau"]):
        return "n/a (< 3 methods)"
    return f"{agree['tau']:+.2f} [{agree['ci_low']:+.2f}, {agree['ci_high']:+.2f}]"


def cross_run_tables(run_dirs: list[Path], value: str, out: Path, seed: int = 0) -> Path:
    """Across runs: per method, one column group per run (model, strength) with Effect [CI], N common,
    Holm p, c*, dNLL and NaN at the worse end; and per method an ablation table whose columns are the
    options that differ between its runs (e.g. InnerPiSSA rank / rotate-u / loss)."""
    entries, stats_by_run = [], {}
    for run in run_dirs:
        rows, dilemmas, status = load_run(run)
        config = json.loads((run / "config.json").read_text())
        table, stats = method_table(rows, dilemmas, status, value, run_min_pmass(run), seed)
        stats_by_run[run] = stats
        shown, _ = main_display(table)
        for rec, disp in zip(table.to_dict("records"), shown.to_dict("records")):
            info = status.get(rec["method"], {})
            entries.append({"run": run.name, "path": str(run), "model": config["model"], "strength": config.get("strength", "raw"),
                            **rec, "display": disp, "options": info.get("meta", {}).get("options", {})})
    frame = pd.DataFrame(entries)
    if frame.empty or "effect" not in frame:
        return out
    # Raw and matched-strength runs of one model are different experiments: never averaged together.
    frame["column"] = frame["model"].map(model_slug) + " (" + frame["strength"] + ")"
    if frame["column"].nunique() < len(run_dirs):
        frame["column"] = frame["column"] + " " + frame["run"]
    shown_cols = ("Effect [95% CI]", "N common", "p (t, Holm)", "dNLL (eval. half)", "NaN c-/c+", "c*")
    wide = pd.DataFrame(index=pd.Index(list(dict.fromkeys(frame["method"])), name="Method"))
    for column, group in frame.groupby("column", sort=False):
        for name in shown_cols:
            wide[f"{column}: {name}"] = [  # a seeded run's p is the seeds x dilemmas bootstrap's
                next((d.get(name, d.get("p (seeds x dilemmas, Holm)", "") if name.startswith("p (") else "")
                      for m, d in zip(group["method"], group["display"]) if m == method), "")
                for method in wide.index]
    write_table(out, "cross_models", wide.reset_index(),
                caption=f"{value}: the main statistics per run (one column group per model and strength)")
    columns = {run: next(iter(frame.loc[frame["path"] == str(run), "column"]), run.name) for run in run_dirs}
    cross_method_comparisons(out, value, {columns[run]: stats for run, stats in stats_by_run.items()}, seed)
    cross_model_frontier(run_dirs, columns, value, out, seed)  # frontier runs: each model's frontier side by side
    metrics = [k for k in ("effect", "ci_low", "ci_high", "n_common", "p_holm", "retention", "in_range", "dnll", "gain",
                           "n_seeds", "effect_by_seed", "effect_sd", "sign_stable") if k in frame]
    for method, group in frame.groupby("method"):
        if len(group) < 2:
            continue
        opts = pd.DataFrame(list(group["options"]))
        differing = [c for c in opts.columns if opts[c].astype(str).nunique() > 1]
        if not differing:
            continue
        table = pd.concat([opts[differing].reset_index(drop=True),
                           group[["model", "run"] + metrics].reset_index(drop=True)], axis=1)
        write_table(out, f"ablation_{method}", table, caption=f"{method} ablation on {value}: options that differ "
                    f"(p Holm-adjusted within each run's table; with several seeds, the seeds x dilemmas bootstrap's)",
                    p_columns=("p_holm",))
    atomic_write_json(out / "sources.json", {"runs": [str(r) for r in run_dirs], "value": value})  # results/README
    return out
