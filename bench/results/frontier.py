"""The effect-cost frontier: every method at a ladder of KL budgets, on the test dilemmas.

One budget is one operating point, and rankings flip between budgets. A frontier run (``--kl-budgets``;
``make frontier`` uses 0.01, 0.03, 0.1, 0.3) evaluates each method at +-c*(b) for every budget b, each c*
read from the method's one KL-versus-c curve (``bench.running.sweep``). From its rows alone this module builds:

- ``frontier``: method x budget, Effect [CI], N common, retention, dNLL, c*, KL reached, in or out of range;
- ``dominance``: each method pair over the budgets where both are in range, paired over dilemmas (and,
  when either method has several training seeds, resampling seeds too: ``report.compare``), p
  Holm-adjusted across that pair's budgets. Verdicts: *dominates* / *dominated* (significantly better /
  worse at every shared budget), *crosses at b* (significantly better at one budget and significantly worse
  at another; b is the first budget whose significant sign differs from the one before it), *undecided*
  (anything else, e.g. better at some budgets and tied at the rest; the per-budget cells say which);
  *undecided (seed spread; ...)* when the seed-fixed test would have decided but the seed-aware one does not;
- ``coherence_range``: per method, the largest budget at which it is still in the evaluator's range.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.results.plots import frontier_plot, save
from bench.results.render import write_table
from bench.results.report import ALPHA, compare, load_run, run_methods, run_min_pmass
from bench.results.stats import MIN_PMASS, MethodStats, analyse, holm


@dataclass
class Frontier:
    table: pd.DataFrame  # one record per method x budget
    stats: dict[tuple[str, float], MethodStats]  # in-range or not, every (method, budget) with steered rows
    budgets: list[float]
    main: float


def frontier(rows: pd.DataFrame, dilemmas: pd.DataFrame, status: dict, value: str,
             min_pmass: float = MIN_PMASS, seed: int = 0) -> Frontier:
    """Every method's statistics at every budget of a frontier run (``rows``: all budgets)."""
    info = status["_frontier"]
    budgets, records, stats = [float(b) for b in info["budgets"]], [], {}
    for method in run_methods(rows, status):
        mine = rows[rows["method"] == method]
        facts = status[method].get("frontier", {})
        discrete = bool(status[method].get("strength", {}).get("discrete"))  # one strength: its own KL
        for b in budgets:
            at = mine[mine["budget"] == b]
            strength = facts.get(f"{b:g}", {}).get("strength", {})
            rec = {"method": method, "budget": b, "c_star": strength.get("c_star", math.nan),
                   "kl": strength.get("kl", math.nan), "discrete": discrete}
            if not (at["coeff"] != 0).any():
                why = ("discrete: evaluated at its own KL only (main budget)" if discrete
                       else f"KL budget {b:g} not reached within the search range")
                records.append({**rec, "in_range": False, "note": why})
                continue
            st = analyse(at, dilemmas, value, min_pmass, seed)
            stats[(method, b)] = st
            records.append({**rec, "effect": st.effect, "ci_low": st.ci_low, "ci_high": st.ci_high,
                            "n_common": st.n_common, "retention": st.retention, "dnll": st.dnll, "p": st.p,
                            "in_range": st.in_range, "note": "" if st.in_range else st.range_note()})
    return Frontier(pd.DataFrame(records), stats, budgets, float(info["main"]))


def dominance(front: Frontier, seed: int = 0) -> pd.DataFrame:
    """Each method pair over the budgets where both are in range (Holm across the pair's budgets)."""
    ok = {(r.method, r.budget) for r in front.table.itertuples() if r.in_range}
    methods = list(dict.fromkeys(front.table["method"]))
    records = []
    for a, b in itertools.combinations(methods, 2):
        shared = [x for x in front.budgets if (a, x) in ok and (b, x) in ok]
        diffs = [compare(front.stats[(a, x)], front.stats[(b, x)], seed) for x in shared]
        p_holm = holm([d["p"] for d in diffs]) if diffs else []
        signs = [(1 if d["difference"] > 0 else -1) if ph < ALPHA else 0 for d, ph in zip(diffs, p_holm)]
        said = verdict(a, b, shared, signs)
        if any(d.get("seed_aware") for d in diffs):  # what the seed-fixed test would have said, had seeds not varied
            fixed = holm([d["p_conditional"] for d in diffs])
            fixed_signs = [(1 if d["difference"] > 0 else -1) if ph < ALPHA else 0 for d, ph in zip(diffs, fixed)]
            if verdict(a, b, shared, fixed_signs) != said and said.startswith("undecided"):
                said = f"undecided (seed spread; one draw of each would say: {verdict(a, b, shared, fixed_signs)})"
        cells = {f"KL {x:g}": f"{d['difference']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}] p_holm {ph:.2g}"
                 for x, d, ph in zip(shared, diffs, p_holm)}
        records.append({"A": a, "B": b, "verdict": said,
                        "budgets both in range": ", ".join(f"{x:g}" for x in shared) or "none", **cells})
    cols = ["A", "B", "verdict", "budgets both in range"] + [f"KL {x:g}" for x in front.budgets]
    return pd.DataFrame(records).reindex(columns=cols).fillna("") if records else pd.DataFrame(columns=cols)


def verdict(a: str, b: str, shared: list[float], signs: list[int]) -> str:
    """The pair's verdict from the Holm-significant signs of Effect(A) - Effect(B), budget by budget."""
    if not shared:
        return "not comparable (never both in range)"
    if all(s == 1 for s in signs):
        return f"{a} dominates"
    if all(s == -1 for s in signs):
        return f"{a} dominated (by {b})"
    significant = [(x, s) for x, s in zip(shared, signs) if s != 0]
    for (_, s0), (x1, s1) in zip(significant, significant[1:]):
        if s1 != s0:
            return f"crosses at {x1:g}"
    if significant:
        ahead = a if significant[0][1] == 1 else b
        return f"undecided ({ahead} ahead at {len(significant)} of {len(shared)} budgets, tied at the rest)"
    return f"undecided (tied at all {len(shared)} budgets)"


def coherence_range(front: Frontier) -> pd.DataFrame:
    """Per method: the largest budget still in range, and the budgets in range."""
    records = []
    for method, g in front.table.groupby("method", sort=False):
        inside = g.loc[g["in_range"].astype(bool), "budget"].tolist()
        largest = max(inside) if inside else math.nan
        gaps = [b for b in front.budgets if b < largest and b not in inside] if inside else []
        note = ("discrete: one strength, its own KL, shown at the main budget" if g["discrete"].any() else
                ("out of range at " + ", ".join(f"{b:g}" for b in gaps) + " below it") if gaps else "")
        records.append({"method": method, "coherence range (largest budget in range)": largest,
                        "budgets in range": ", ".join(f"{b:g}" for b in inside) or "none", "note": note})
    return pd.DataFrame(records)


def display(front: Frontier) -> pd.DataFrame:
    t = front.table
    fmt = lambda x, d=3: "" if x != x else f"{x:.{d}f}"  # noqa: E731
    return pd.DataFrame({
        "method": t["method"], "KL budget": t["budget"].map(lambda b: f"{b:g}"),
        "Effect [95% CI]": [f"{e:.3f} [{lo:.3f}, {hi:.3f}]" if e == e else "" for e, lo, hi in
                            zip(t.get("effect", math.nan), t.get("ci_low", math.nan), t.get("ci_high", math.nan))],
        "N common": t.get("n_common", pd.Series(math.nan, index=t.index)).map(lambda n: "" if n != n else f"{n:.0f}"),
        "retention": t.get("retention", pd.Series(math.nan, index=t.index)).map(lambda r: "" if r != r else f"{r:.0%}"),
        "dNLL": t.get("dnll", pd.Series(math.nan, index=t.index)).map(fmt),
        "c*": t["c_star"].map(lambda c: fmt(c, 4)), "KL reached": t["kl"].map(fmt),
        "in range": t["in_range"].map({True: "yes", False: "no"}), "note": t["note"]})


def load_frontier_rows(run_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """A frontier run's rows at every budget (``load_run`` alone keeps the main budget only)."""
    return load_run(run_dir, all_budgets=True)


def write_frontier(run_dir: Path, value: str, min_pmass: float, seed: int = 0) -> Frontier | None:
    """The frontier, dominance and coherence-range tables and the frontier plot (a frontier run only)."""
    rows, dilemmas, status = load_frontier_rows(run_dir)
    if "_frontier" not in status:
        return None
    front = frontier(rows, dilemmas, status, value, min_pmass, seed)
    folder, ladder = run_dir / "tables", ", ".join(f"{b:g}" for b in front.budgets)
    write_table(folder, "frontier", display(front),
                caption=f"{value} on the test dilemmas at every KL budget ({ladder} nats/token; the main table is at "
                        f"{front.main:g}): Effect at +-c*(budget), c* read from one KL-versus-c curve per method")
    write_table(folder, "dominance", dominance(front, seed),
                caption=f"Method pairs over the budgets where both are in range: Effect(A) - Effect(B) paired over "
                        f"dilemmas, BCa 95% CI, p Holm-adjusted across the pair's budgets (alpha {ALPHA})")
    write_table(folder, "coherence_range", coherence_range(front),
                caption="Coherence range: the largest KL budget at which each method stays in the evaluator's range "
                        "(retention >= 80% of the c=0-valid dilemmas at both ends, N common >= 30)")
    (folder / "frontier_numbers.json").write_text(json.dumps(
        front.table.to_dict(orient="records"), indent=1, default=str))
    save(frontier_plot(front.table, value), run_dir / "plots", "frontier")
    return front


def cross_model_frontier(run_dirs: list[Path], columns: dict[Path, str], value: str, out: Path, seed: int = 0) -> None:
    """Across frontier runs (one per model): each model's frontier Effects and dominance verdicts side by side."""
    effects, verdicts = [], []
    for run in run_dirs:
        rows, dilemmas, status = load_frontier_rows(run)
        if "_frontier" not in status:
            continue
        front = frontier(rows, dilemmas, status, value, run_min_pmass(run), seed)
        shown = display(front)
        effects.append(shown.assign(model=columns[run], cell=[
            f"{e}{'' if ok == 'yes' else ' (out)'}" if e else "n/a" for e, ok in zip(shown["Effect [95% CI]"],
                                                                                   shown["in range"])]))
        verdicts.append(dominance(front, seed)[["A", "B", "verdict"]].assign(model=columns[run]))
    if not effects:
        return
    eff = pd.concat(effects)
    wide = eff.pivot_table(index="method", columns=["model", "KL budget"], values="cell", aggfunc="first", sort=False)
    wide.columns = [f"{m}: KL {b}" for m, b in wide.columns]
    write_table(out, "cross_models_frontier", wide.reset_index().fillna(""),
                caption=f"{value}: every model's frontier (Effect [95% CI] per KL budget; '(out)': out of range)")
    ver = pd.concat(verdicts).pivot_table(index=["A", "B"], columns="model", values="verdict", aggfunc="first", sort=False)
    write_table(out, "cross_models_dominance", ver.reset_index().fillna("(pair not in this run)"),
                caption="Dominance verdicts over each model's frontier, side by side (Holm across each pair's budgets)")
