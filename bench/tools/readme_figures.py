"""Figures quoted in README.md and docs/*.md, generated from the committed run folders.

A figure lives between two markers, and what sits between them is rewritten from the run's files:

    <!-- figures:main results/smollm2-135m/default -->            (a table: the run's method table)
    ...
    <!-- /figures -->

    AntiPaSTO's Effect was <!-- figures:ci results/smollm2-135m/default antipasto -->0.192 [0.152, 0.228]<!-- /figures -->.

Markdown shows only the figure. ``python -m bench.tools.readme_figures`` rewrites every marked figure;
``--check`` lists the stale ones and exits 1 (``tests/test_readme_figures.py`` fails on a stale one). To point
a figure at a new run, edit the path in its marker and rerun.

Tables (``KIND RUN``): ``main`` (the method table), ``frontier`` (Effect per method and KL budget),
``verdicts`` (the frontier's dominance verdicts), ``ablation CROSS`` (a cross-run folder's runs side by side),
``pairs RUN METHOD`` (its method-against-method rows), ``side RUN RUN`` (two runs' method tables side by side).
Inline (``KIND RUN ...``): ``effect``/``ci``/``retention``/``cstar``/``f1``/``ncommon``/``capbase``/``pseeds``
``RUN METHOD [BUDGET]``, ``pair RUN A B`` (Effect(A) - Effect(B) from the pairwise table), ``diff RUN A B BUDGET``
(the frontier's paired difference), ``verdict RUN A B``, ``wall RUN`` (its wall time), ``seeds RUN``.

The marker grammar, the table kinds and the check live here; the inline kinds in
``bench.tools.inline_figures``; the cached readers of a run folder and the number formats they share, in
``bench.tools.figure_sources``.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

import pandas as pd

from bench.tools.figure_sources import (
    ROOT,
    FigureError,
    ci_text,
    dominance,
    frontier_points,
    main_cells,
    method_label,
    num,
    numbers,
    p_text,
    pair_p_column,
    pairwise,
    run_status,
)
from bench.tools.inline_figures import inline

MARKER = re.compile(r"<!-- figures:(?P<spec>[^>]*?) -->(?P<body>.*?)<!-- /figures -->", re.S)


# ------------------------------------------------------------------------------------------------ tables
def _markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n\n" + "\n".join(lines) + "\n\n"


def main_table(run: str) -> str:
    table, shown = numbers(run), main_cells(run)
    seed_cols = [c for c in next(iter(shown.values())) if ("seed" in c.lower() or c == "Sign-stable") and not c.startswith("p (")]
    f1 = ["Steering F1"] if "f1" in table.columns else []  # runs made before the control items have none
    header = ["Method", "Effect [95% CI]", "N common", "p (Holm)", "dNLL", "c*", *f1, *seed_cols]
    order = table.sort_values("effect", ascending=False, na_position="last").index
    rows = []
    for m in order:
        r, md = table.loc[m], shown.get(m, {})
        bold = md.get("Effect [95% CI]", "").startswith("**")
        effect = "n/a" if math.isnan(r["effect"]) else ci_text(r)
        note = str(r.get("note") if isinstance(r.get("note"), str) else "")
        ncommon = f"{int(r['n_common'])} of {int(r['n_value'])}" + (" (out)" if not r["in_range"] else "")
        cstar = num(r["c_star"], 3 if r["c_star"] < 10 else 1) + (" (discrete)" if "discrete" in note else "")
        rows.append([method_label(run, m), f"**{effect}**" if bold else effect, ncommon, p_text(r["p_holm"]),
                     num(r["dnll"]), cstar, *[num(r["f1"], 1) for _ in f1], *[md.get(c, "") for c in seed_cols]])
    return _markdown(header, rows)


def frontier_table(run: str) -> str:
    frame = frontier_points(run)
    budgets = sorted(frame["budget"].unique())
    main = run_status(run).get("_frontier", {}).get("main", 0.1)  # the budget the run reports first
    at_main = frame[frame["budget"] == main].set_index("method")["effect"]
    order = at_main.sort_values(ascending=False, na_position="last").index
    rows = []
    for m in order:
        pts = frame[frame["method"] == m].set_index("budget")
        discrete = bool(pts["discrete"].any())
        kl = numbers(run).loc[m, "kl"] if m in numbers(run).index else math.nan
        label = method_label(run, m, f"discrete, its KL {num(kl)}" if discrete else "")
        cells = []
        for b in budgets:
            if discrete and b != main or b not in pts.index:
                cells.append("")
                continue
            p = pts.loc[b]
            cells.append("(no common dilemma)" if math.isnan(p["effect"]) else num(p["effect"]) + ("" if p["in_range"] else "*"))
        rows.append([label, *cells])
    return _markdown(["method", *[f"KL {b:g}" for b in budgets]], rows)


def verdicts_table(run: str) -> str:
    dom = dominance(run)
    rows = [[r["A"], r["B"], r["verdict"], str(r["budgets both in range"])] for _, r in dom.iterrows()
            if not str(r["verdict"]).startswith("not comparable")]
    return _markdown(["A", "B", "verdict", "budgets both in range"], rows)


def pairs_table(run: str, method: str) -> str:
    """The run's method-against-method rows that involve ``method``."""
    pw = pairwise(run)
    hit = pw[(pw["A"] == method) | (pw["B"] == method)]
    if hit.empty:
        raise FigureError(f"{run}: no pairwise row with {method!r}")
    cols = ["A", "B", "N common", "Effect A - B [95% CI]", pair_p_column(pw.columns), "Note"]
    return _markdown(cols, [[str(r[c]) for c in cols] for _, r in hit.iterrows()])


def side_table(run_a: str, run_b: str) -> str:
    """Two runs' method tables side by side (the methods both have, in the first run's order)."""
    a, b = numbers(run_a), numbers(run_b)
    order = [m for m in a.sort_values("effect", ascending=False, na_position="last").index if m in b.index]

    def cells(t: pd.DataFrame, m: str) -> list[str]:
        r = t.loc[m]
        n = f"{int(r['n_common'])}" + ("" if r["in_range"] else " (out)")
        return ["n/a" if math.isnan(r["effect"]) else ci_text(r), n, p_text(r["p_holm"])]

    name_a, name_b = (json.loads((ROOT / r / "config.json").read_text())["model"] for r in (run_a, run_b))
    header = ["Method", *[f"{name}: {c}" for name in (name_a, name_b) for c in ("Effect [95% CI]", "N common", "p (Holm)")]]
    return _markdown(header, [[m, *cells(a, m), *cells(b, m)] for m in order])


def ablation_table(cross: str) -> str:
    """A cross-run folder's runs, one row per run and method, with the options that make each run; runs with
    several training seeds add each seed's Effect, the seed SD and sign stability."""
    sources = json.loads((ROOT / cross / "sources.json").read_text())["runs"]
    seeded = any(int(numbers(run)["n_seeds"].max()) > 1 for run in sources)
    rows = []
    for run in sources:
        config = json.loads((ROOT / run / "config.json").read_text())
        table = numbers(run)
        for m in table.index:
            r = table.loc[m]
            opts = ", ".join(f"{k} {v}" for k, v in sorted((config.get("method_options") or {}).get(m, {}).items()))
            retention = f"{r['retention']:.0%}" + ("" if r["in_range"] else " (out of range)")
            row = [Path(run).name, opts or "(defaults)"]
            if seeded:
                stable = {True: "yes", False: "no"}.get(r["sign_stable"], "")
                row += [str(r["effect_by_seed"]), ci_text(r), num(r["effect_sd"]), str(int(r["n_common"])),
                        p_text(r["p_holm"]), retention, stable, str(r["sign"])]
            else:
                row += [ci_text(r), str(int(r["n_common"])), p_text(r["p_holm"]), retention, str(r["sign"])]
            rows.append(row)
    if seeded:
        return _markdown(["run", "options", "Effect per seed", "mean [95% CI, seeds x dilemmas]", "seed SD",
                          "N common", "p (Holm)", "retention", "sign-stable", "sign per seed"], rows)
    return _markdown(["run", "options", "Effect [95% CI]", "N common", "p (Holm)", "retention", "sign"], rows)


TABLES = {"main": main_table, "frontier": frontier_table, "verdicts": verdicts_table, "ablation": ablation_table,
          "pairs": pairs_table, "side": side_table}


def render(spec: str) -> str:
    kind, *args = spec.split()
    if not args:
        raise FigureError(f"figure {spec!r} names no run")
    if not (ROOT / args[0]).is_dir():
        raise FigureError(f"figure {spec!r}: {args[0]} is not a folder of this repository")
    if kind in TABLES:
        return TABLES[kind](*args)
    return inline(kind, args)


def refresh(text: str) -> str:
    return MARKER.sub(lambda m: f"<!-- figures:{m['spec']} -->{render(m['spec'])}<!-- /figures -->", text)


def stale(text: str) -> list[str]:
    """The markers whose figure differs from what the run's files say, with both."""
    return [f"{m['spec']}: quoted {m['body'].strip()[:80]!r}, the files say {render(m['spec']).strip()[:80]!r}"
            for m in MARKER.finditer(text) if m["body"] != render(m["spec"])]


def documents() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.tools.readme_figures", description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help="list stale figures and exit 1; write nothing")
    args = p.parse_args(argv)
    bad = 0
    for doc in documents():
        text = doc.read_text()
        if not MARKER.search(text):
            continue
        if args.check:
            for line in stale(text):
                print(f"{doc.relative_to(ROOT)}: stale figure {line}")
                bad += 1
        elif (new := refresh(text)) != text:
            doc.write_text(new)
            print(f"rewrote the figures of {doc.relative_to(ROOT)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
