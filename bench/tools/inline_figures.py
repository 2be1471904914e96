"""The inline figures of the README and docs (``<!-- figures:KIND RUN ... -->``, one number or phrase in a
sentence): ``effect``/``ci``/``retention``/``cstar``/``f1``/``ncommon``/``capbase``/``pseeds`` ``RUN METHOD [BUDGET]``,
``pair RUN A B``, ``diff RUN A B BUDGET``, ``verdict RUN A B``, ``wall RUN``, ``seeds RUN``. The marker grammar
and the tables are in ``bench.tools.readme_figures``.
"""

from __future__ import annotations

from bench.tools.figure_sources import (
    FigureError,
    ci_text,
    dominance,
    figure_row,
    n_seeds,
    num,
    p_text,
    pair_p_column,
    pairwise,
    run_status,
)


def inline(kind: str, args: list[str]) -> str:
    run = args[0]
    if kind == "wall":
        seconds = run_status(run)["_run"]["wall_seconds"]
        return f"{seconds / 60:.1f} min"
    if kind == "seeds":
        return str(n_seeds(run))
    if kind == "verdict":
        dom = dominance(run)
        hit = dom[(dom["A"] == args[1]) & (dom["B"] == args[2])]
        if hit.empty:
            raise FigureError(f"{run}: no verdict for {args[1]} against {args[2]} (pairs are listed A < B)")
        return str(hit.iloc[0]["verdict"])
    if kind == "pair":
        pw = pairwise(run)
        hit = pw[(pw["A"] == args[1]) & (pw["B"] == args[2])]
        if hit.empty:
            raise FigureError(f"{run}: no pairwise row {args[1]} - {args[2]} (pairs are listed A < B)")
        r = hit.iloc[0]
        return f"{r['Effect A - B [95% CI]']}, Holm p {r[pair_p_column(r.index)]}"
    if kind == "diff":
        dom = dominance(run)
        hit = dom[(dom["A"] == args[1]) & (dom["B"] == args[2])]
        cell = hit.iloc[0].get(f"KL {args[3]}") if len(hit) else None
        if not isinstance(cell, str):
            raise FigureError(f"{run}: no difference {args[1]} - {args[2]} at KL {args[3]}")
        return cell.replace(" p_holm ", ", Holm p ")
    r = figure_row(run, args[1], args[2] if len(args) > 2 else None)
    if kind == "effect":
        return num(r["effect"])
    if kind == "ci":
        return ci_text(r)
    if kind == "retention":
        return f"{r['retention']:.0%}"
    if kind == "cstar":
        return num(r["c_star"], 3 if r["c_star"] < 10 else 1)
    if kind == "f1":
        return num(r["f1"], 1)
    if kind == "ncommon":
        return str(int(r["n_common"]))
    if kind == "pseeds":  # the t-test over the per-seed Effects: unadjusted, then Holm over the seeded methods
        return f"{p_text(r['p_seeds_t'])} ({p_text(r['p_seeds_t_holm'])} Holm)"
    if kind == "capbase":  # the share of the arithmetic control items the unsteered model answers right
        return f"{r['capability_c0']:.0%}"
    raise FigureError(f"unknown figure kind {kind!r}")
