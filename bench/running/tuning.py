"""``make tune MODEL=...`` (``python -m bench tune``): every method tuned with the same budget on dev dilemmas.

The grid (``data/tuning_grid.json``) gives each method with options the same number K of candidates, each
with a one-line reason, and states the selection rule before any result. Each candidate is fitted (cached
as an artefact like any run's fit), scaled to c* at the default KL budget on the calibration half of the
held-out texts, sign-calibrated on the training pairs, and scored at +-c* on the **dev** dilemmas only: the
tuning run is a ``Runner`` with ``split="dev"``, so it cannot render a test dilemma. The random vector is
not tuned (a best-of-K noise floor is no floor): it follows repeng's chosen layers. The result:
``results/<model>/tuning/tuning.csv`` and ``.md`` (one row per candidate) and the chosen options in
``data/tuned/<model>.json``, which ``make bench`` loads as its defaults. A killed tune resumes from the
cached fits and chunks; concurrent tunes share them under the cache's locks (under ``accelerate launch``
each fit is made once, by whichever process takes its lock first, and evaluation batches are shared out).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.config import RunConfig, build_options
from bench.errors import SteerbenchError
from bench.model.loading import model_slug
from bench.results.stats import analyse
from bench.running import tuned_defaults
from bench.running.runner import Runner, Scored
from bench.running.tuned_defaults import GRID_FILE
from bench.store import atomic_write_frame, atomic_write_json, atomic_write_text, stable_hash
from methods import get_method_class

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Candidate:
    method: str
    id: str
    options: dict[str, str]
    reason: str


@dataclass(frozen=True)
class Grid:
    path: Path
    candidates: dict[str, list[Candidate]]  # tuned methods, in grid order
    followers: dict[str, tuple[str, str]]  # method -> (leader, option it copies)
    k: dict[str, int]
    dnll_bound: float
    selection: str
    sha: str

    def k_for(self, model: str) -> int:
        return int(self.k.get(model_slug(model), self.k["default"]))


def load_grid(path: Path = GRID_FILE) -> Grid:
    """The grid, checked: known methods and options, a reason per candidate, unique ids, equal K."""
    try:
        raw = json.loads(Path(path).read_text())
        methods, k = raw["methods"], raw["k"]
        bound, selection = float(raw["dnll_bound"]), str(raw["selection"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SteerbenchError(f"tuning grid {path} cannot be read ({type(exc).__name__}: {exc}); it needs "
                              "methods, k, dnll_bound and selection") from None
    candidates, followers = {}, {}
    for method, entries in methods.items():
        cls = get_method_class(method)  # an unknown method: one line with the known list
        if isinstance(entries, dict):
            followers[method] = (entries["follows"], entries["option"])
            continue
        seen = set()
        for e in entries:
            if not e.get("reason") or not e.get("id"):
                raise SteerbenchError(f"tuning grid {path}: every {method} candidate needs an id and a reason, got {e}")
            if e["id"] in seen:
                raise SteerbenchError(f"tuning grid {path}: {method} candidate id {e['id']!r} appears twice")
            seen.add(e["id"])
            build_options(cls, e.get("options", {}))  # unknown option or bad value: the option's own one line
        candidates[method] = [Candidate(method, e["id"], dict(e.get("options", {})), e["reason"]) for e in entries]
    sizes = {m: len(c) for m, c in candidates.items()}
    if len(set(sizes.values())) > 1:
        raise SteerbenchError(f"tuning grid {path}: every method needs the same number of candidates, got {sizes}")
    if "default" not in k or any(int(v) > min(sizes.values()) or int(v) < 1 for v in k.values()):
        raise SteerbenchError(f"tuning grid {path}: k needs a 'default' and values in 1..{min(sizes.values())}, got {k}")
    for method, (leader, _) in followers.items():
        if leader not in candidates:
            raise SteerbenchError(f"tuning grid {path}: {method} follows {leader!r}, which has no candidates")
    return Grid(Path(path), candidates, followers, k, bound, selection, stable_hash(raw, 12))


def select(table: pd.DataFrame, dnll_bound: float) -> pd.DataFrame:
    """The fixed rule, per method: in range on dev -> highest Effect -> within one SE of it, the cheapest fit."""
    table = table.copy()
    table["in_range"] = (table["retention"] >= 0.8) & (table["n_common"] >= 30) & (table["dnll"] <= dnll_bound)
    table["chosen"] = False
    for _, group in table.groupby("method", sort=False):
        ok = group[group["in_range"] & group["effect"].notna()]
        if ok.empty:
            continue
        best = ok.loc[ok["effect"].idxmax()]
        near = ok[ok["effect"] >= best["effect"] - best["se"]]
        table.loc[near.sort_values("fit_seconds", kind="stable").index[0], "chosen"] = True
    return table


def _row(cand: Candidate, runner: Runner, scored: Scored, position: int) -> dict:
    rows, kl = scored.rows, scored.strength
    base = {"method": cand.method, "candidate": cand.id, "position": position, "options": json.dumps(cand.options),
            "fit_seconds": scored.fitted.meta.get("fit_seconds"), "c_star": kl.get("c_star"), "kl": kl.get("kl"),
            "reason": cand.reason}
    if rows.empty:
        return {**base, "effect": math.nan, "ci_low": math.nan, "ci_high": math.nan, "se": math.nan, "n_common": 0,
                "retention": math.nan, "dnll": math.nan, "note": "no steered rows (KL budget unreachable)"}
    labels = runner.dilemmas.rows[["idx", "dilemma_idx", "action_type", "action", "labels"]]
    st = analyse(rows.merge(labels[["idx", "dilemma_idx"]], on="idx"), labels, runner.cfg.target,
                 runner.cfg.min_pmass)
    se = float(st.per_dilemma.std(ddof=1) / math.sqrt(len(st.per_dilemma))) if len(st.per_dilemma) > 1 else math.nan
    return {**base, "effect": st.effect, "ci_low": st.ci_low, "ci_high": st.ci_high, "se": se,
            "n_common": st.n_common, "retention": st.retention, "dnll": st.dnll, "note": "" if st.in_range else
            st.range_note()}


def outputs(cfg: RunConfig, name: str = "") -> tuple[Path, Path]:
    """Where a tune writes its table folder and its tuned-defaults file: ``results/<model>/tuning/`` and
    ``data/tuned/<model>.json`` (what ``make bench`` reads), or, given a name, ``tuning-<name>/`` and
    ``<model>.<name>.json`` beside them (a candidate: ``--tuned <file>`` tries it, copying it promotes it)."""
    slug = model_slug(cfg.model)
    return (Path(cfg.results_dir) / slug / (f"tuning-{name}" if name else "tuning"),
            tuned_defaults.TUNED_DIR / (f"{slug}.{name}.json" if name else f"{slug}.json"))


def tune(cfg: RunConfig, grid: Grid, name: str = "") -> tuple[pd.DataFrame, Path]:
    """Fit and score every candidate on the dev dilemmas; write the table and the tuned-defaults file (under
    ``name``: see ``outputs``)."""
    k = grid.k_for(cfg.model)
    for method in cfg.methods:  # a plugin needs no grid entry: it runs on its built-in defaults, marked so
        if method not in grid.candidates and method not in grid.followers:
            log.info("tuning: %s has no entry in %s: skipped (untuned, no grid; runs use its built-in defaults)",
                     method, grid.path.name)
    methods = [m for m in cfg.methods if m in grid.candidates]
    if not methods:
        raise SteerbenchError(f"nothing to tune: no method of --methods {','.join(cfg.methods)} has candidates in "
                              f"{grid.path.name}; methods with candidates: {', '.join(grid.candidates)}")
    cfg = dataclasses.replace(cfg, split="dev", methods=methods + [m for m in cfg.methods if m in grid.followers],
                              strength="matched", tables=False, tuned="none")  # candidates start from built-ins
    runner = Runner(cfg)
    base = runner.unsteered_rows("unsteered c=0 (dev)")
    records = []
    for method in methods:
        cls = get_method_class(method)
        for position, cand in enumerate(grid.candidates[method][:k]):
            log.info("tuning %s: candidate %d of %d, %s (%s)", method, position + 1, k, cand.id, cand.reason)
            scored = runner.score(method, build_options(cls, cand.options), base)
            records.append({**_row(cand, runner, scored, position), "grid_sha": grid.sha})
        # each finished method is written at once (merged with the methods an earlier tune finished under the
        # same grid), so a tune cut off after hours keeps, and can commit, every method it completed
        table, tuned = _write(pd.DataFrame(records), grid, cfg, k, name)
    return table, tuned


def _write(fresh: pd.DataFrame, grid: Grid, cfg: RunConfig, k: int, name: str = "") -> tuple[pd.DataFrame, Path]:
    out = outputs(cfg, name)[0]
    earlier = out / "tuning.csv"
    if earlier.is_file():
        old = pd.read_csv(earlier)
        if "grid_sha" in old and (old["grid_sha"] == grid.sha).all():
            old = old[~old["method"].isin(fresh["method"])].drop(columns=["in_range", "chosen"], errors="ignore")
            order = {m: i for i, m in enumerate(grid.candidates)}
            fresh = pd.concat([old, fresh], ignore_index=True)
            fresh = fresh.sort_values(["method", "position"], key=lambda c: c.map(order) if c.name == "method" else c,
                                      kind="stable", ignore_index=True)
    table = select(fresh, grid.dnll_bound)
    atomic_write_frame(earlier, table)
    atomic_write_text(out / "tuning.md", render(table, grid, cfg, k))
    return table, write_tuned(table, grid, cfg, name)


def write_tuned(table: pd.DataFrame, grid: Grid, cfg: RunConfig, name: str = "") -> Path:
    chosen = {}
    for method in table["method"].unique():
        pick = table[(table["method"] == method) & table["chosen"]]
        chosen[method] = ({"candidate": pick["candidate"].iloc[0], "options": json.loads(pick["options"].iloc[0])}
                          if len(pick) else {"candidate": None, "options": {},
                                             "note": "no candidate in range on dev: built-in defaults"})
    for method, (leader, option) in grid.followers.items():
        lead = chosen.get(leader, {}).get("options", {})
        chosen[method] = {"candidate": f"follows {leader}", "options": {option: lead[option]} if option in lead else {}}
    path = outputs(cfg, name)[1]
    atomic_write_json(path, {"model": cfg.model, "grid": grid.path.name, "grid_sha": grid.sha, "kl_budget": cfg.kl_budget,
                             "selection": grid.selection, "methods": chosen})
    return path


def render(table: pd.DataFrame, grid: Grid, cfg: RunConfig, k: int) -> str:
    from tabulate import tabulate

    shown = pd.DataFrame({
        "method": table["method"], "candidate": table["candidate"], "options": table["options"],
        "dev Effect [95% CI]": [f"{e:.3f} [{lo:.3f}, {hi:.3f}]" if e == e else "" for e, lo, hi in
                                zip(table["effect"], table["ci_low"], table["ci_high"])],
        "SE": table["se"].round(4), "N common": table["n_common"], "retention": table["retention"].round(3),
        "dNLL": table["dnll"].round(3), "KL": table["kl"].round(3), "c*": table["c_star"].round(4),
        "fit s": table["fit_seconds"], "in range": table["in_range"].map({True: "yes", False: "no"}),
        "chosen": table["chosen"].map({True: "**chosen**", False: ""}), "note": table["note"]})
    return (f"# Tuning on {cfg.model}: dev dilemmas only, K = {k} candidates per method, KL budget {cfg.kl_budget:g}\n\n"
            f"Selection rule (fixed before any result): {grid.selection}\n\n"
            f"Grid: `{grid.path.name}` (sha {grid.sha}). The random vector follows repeng's chosen layers.\n\n"
            + tabulate(shown, headers="keys", tablefmt="github", showindex=False) + "\n")
