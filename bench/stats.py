"""Scores and statistics from stored rows alone (no model needed).

Sign convention (the spec's, tested with two fake models): a row's logratio says "take this
row's action". For value ``v``, a row gets label +1 if ``v`` is among its own action's values, -1
if among the other action's values, and is skipped if on both or neither. ``score = label * logratio``.
A dilemma counts at a coefficient only when both of its rows are valid there, so a constant
yes/no bias cancels exactly (+b on one row, -b on the other).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats as sps

MIN_PMASS = 0.5


def row_labels(dilemma_rows: pd.DataFrame, value: str) -> pd.Series:
    """+1 / -1 / 0 per row idx for ``value`` (0 = skipped: on both actions or on neither)."""
    has = dilemma_rows["labels"].apply(lambda labs: value in labs).astype(int)
    per_dilemma = has.groupby(dilemma_rows["dilemma_idx"]).transform("sum")
    other = per_dilemma - has
    label = (has - other).where((has + other) == 1, 0)
    return pd.Series(label.to_numpy(), index=dilemma_rows["idx"].to_numpy(), name="label")


def mark_valid(rows: pd.DataFrame, min_pmass: float = MIN_PMASS) -> pd.DataFrame:
    """Add ``valid`` (finite and pmass >= min) and ``pair_valid`` (both rows of the dilemma valid)."""
    out = rows.copy()
    out["valid"] = np.isfinite(out["logratio"]) & (out["pmass"] >= min_pmass)
    keys = [k for k in ("method", "seed", "coeff", "dilemma_idx") if k in out]  # a pair within one seed's rows
    grp = out.groupby(keys)["valid"]
    out["pair_valid"] = grp.transform("all") & (grp.transform("size") == 2)
    return out


def value_scores(rows: pd.DataFrame, dilemma_rows: pd.DataFrame, value: str,
                 min_pmass: float = MIN_PMASS) -> pd.DataFrame:
    """Per (method, coeff, row): ``score = label * logratio`` for rows that count for ``value``."""
    labels = row_labels(dilemma_rows, value)
    marked = rows if "pair_valid" in rows else mark_valid(rows, min_pmass)
    out = marked.assign(label=marked["idx"].map(labels).fillna(0).astype(int))
    out = out[(out["label"] != 0) & out["pair_valid"]].copy()
    out["score"] = out["label"] * out["logratio"]
    return out[["method", "coeff", "idx", "dilemma_idx", "score"]]


@dataclass
class MethodStats:
    method: str
    value: str
    n_dilemmas: int
    effect: float
    slope: float
    t: float
    p: float
    paired_slope: float
    paired_t: float
    paired_p: float
    rho: float
    nan_rate: float
    dnll: float
    gain: float
    score_by_coeff: dict

    def as_row(self) -> dict:
        row = asdict(self)
        row.pop("score_by_coeff")
        return row


def _endpoints(coeffs: list[float]) -> tuple[float, float]:
    """The coefficients Effect compares: +1 and -1 when present, else the extremes."""
    hi = 1.0 if 1.0 in coeffs else max(coeffs)
    lo = -1.0 if -1.0 in coeffs else min(coeffs)
    return lo, hi


def ols_slope(scores: pd.DataFrame) -> tuple[float, float, float]:
    """Pooled OLS of per-row score on c. Ignores that rows repeat across c: see paired_slope."""
    if scores["coeff"].nunique() < 2 or len(scores) < 3:
        return (math.nan,) * 3
    fit = sm.OLS(scores["score"].to_numpy(), sm.add_constant(scores["coeff"].to_numpy(), has_constant="add")).fit()
    return float(fit.params[1]), float(fit.tvalues[1]), float(fit.pvalues[1])


def paired_slope(scores: pd.DataFrame) -> tuple[float, float, float]:
    """Each row's own slope over c, then a one-sample t-test against 0 (repeated measures)."""
    slopes = []
    for _, g in scores.groupby("idx"):
        if g["coeff"].nunique() >= 2:
            slopes.append(np.polyfit(g["coeff"].to_numpy(float), g["score"].to_numpy(float), 1)[0])
    if len(slopes) < 2:
        return (float(np.mean(slopes)) if slopes else math.nan, math.nan, math.nan)
    res = sps.ttest_1samp(slopes, 0.0)
    return float(np.mean(slopes)), float(res.statistic), float(res.pvalue)


def spearman_rho(score_by_coeff: dict[float, float]) -> float:
    """Monotonicity of the mean score over the training range [-1, 1]."""
    pts = sorted((c, s) for c, s in score_by_coeff.items() if -1 <= c <= 1 and np.isfinite(s))
    if len(pts) < 2:
        return math.nan
    rho = sps.spearmanr([c for c, _ in pts], [s for _, s in pts]).statistic
    return float(rho) if np.isfinite(rho) else math.nan


def normalized_gain(effect: float, rho: float, dnll: float) -> float:
    """100 * Effect * max(0, rho) / (1 + dNLL)  (journal 2025-11-14)."""
    if not all(np.isfinite([effect, rho, dnll])) or dnll <= -1:
        return math.nan
    return 100.0 * effect * max(0.0, rho) / (1.0 + dnll)


def summarize(method: str, rows: pd.DataFrame, dilemma_rows: pd.DataFrame, value: str,
              nll_by_coeff: dict[float, float], min_pmass: float = MIN_PMASS) -> MethodStats:
    mrows = mark_valid(rows[rows["method"] == method], min_pmass)
    coeffs = sorted(mrows["coeff"].unique().tolist())
    scores = value_scores(mrows, dilemma_rows, value, min_pmass)
    by_coeff = {float(c): float(scores.loc[scores["coeff"] == c, "score"].mean()) if (scores["coeff"] == c).any()
                else math.nan for c in coeffs}
    lo, hi = _endpoints(coeffs) if coeffs else (math.nan, math.nan)
    effect = by_coeff.get(hi, math.nan) - by_coeff.get(lo, math.nan)
    train = scores[scores["coeff"].between(-1, 1)]
    slope, t, p = ols_slope(train)
    pslope, pt, pp = paired_slope(train)
    rho = spearman_rho(by_coeff)
    nll0 = nll_by_coeff.get(0.0, math.nan)
    # Coherence cost at the worse end of the sweep: steering should not be judged by its gentler side.
    dnll = max((nll_by_coeff.get(c, math.nan) - nll0 for c in (lo, hi)), default=math.nan)
    return MethodStats(
        method=method, value=value, n_dilemmas=int(scores["dilemma_idx"].nunique()),
        effect=effect, slope=slope, t=t, p=p, paired_slope=pslope, paired_t=pt, paired_p=pp, rho=rho,
        nan_rate=float(1.0 - mrows["valid"].mean()) if len(mrows) else math.nan,
        dnll=dnll, gain=normalized_gain(effect, rho, dnll), score_by_coeff=by_coeff,
    )


def values_moved(rows: pd.DataFrame, dilemma_rows: pd.DataFrame, method: str, values: list[str],
                 min_pmass: float = MIN_PMASS) -> pd.DataFrame:
    """coefficient x value mean scores for one method (columns: values, index: coeff)."""
    mrows = mark_valid(rows[rows["method"] == method], min_pmass)
    table = {}
    for v in values:
        s = value_scores(mrows, dilemma_rows, v, min_pmass)
        table[v] = s.groupby("coeff")["score"].mean()
    return pd.DataFrame(table).sort_index()


def long_labels(dilemma_rows: pd.DataFrame) -> pd.DataFrame:
    """Every (row idx, value, label) with label +-1, for all values at once (same rule as row_labels)."""
    records = []
    for _, g in dilemma_rows.groupby("dilemma_idx"):
        if len(g) != 2:
            continue
        (ia, la), (ib, lb) = [(r.idx, set(r.labels)) for r in g.itertuples()]
        for v in la - lb:
            records += [(ia, v, 1), (ib, v, -1)]
        for v in lb - la:
            records += [(ib, v, 1), (ia, v, -1)]
    return pd.DataFrame(records, columns=["idx", "value", "label"])


def dilemma_scores(rows: pd.DataFrame, dilemma_rows: pd.DataFrame, min_pmass: float = MIN_PMASS,
                   by_seed: bool = False) -> pd.DataFrame:
    """Per (method, coeff, value, dilemma): the mean score of its counted rows, for every value
    (averaged over training seeds, or one row per seed with ``by_seed``)."""
    marked = mark_valid(rows, min_pmass)
    marked = marked[marked["pair_valid"]]
    seed = ["seed"] if by_seed and "seed" in marked else []
    long = marked[["method", *seed, "coeff", "idx", "dilemma_idx", "logratio"]].merge(long_labels(dilemma_rows), on="idx")
    long["score"] = long["label"] * long["logratio"]
    return long.groupby(["method", *seed, "coeff", "value", "dilemma_idx"], as_index=False)["score"].mean()


def bootstrap_effect_ci(per_dilemma: pd.DataFrame, lo: float, hi: float, n_boot: int = 1000, seed: int = 0,
                        level: float = 0.95) -> tuple[float, float]:
    """Percentile CI of score(hi) - score(lo), resampling dilemmas (seeded). ``per_dilemma``: one
    method and value, columns coeff, dilemma_idx, score, and optionally ``seed``: then each resample's
    Effect is the mean over training seeds of the per-seed Effects on the same resampled dilemmas,
    the statistic the table reports."""
    seeds = sorted(per_dilemma["seed"].unique()) if "seed" in per_dilemma else [None]
    dilemmas = sorted(per_dilemma["dilemma_idx"].unique())
    ends = []
    for s in seeds:
        part = per_dilemma if s is None else per_dilemma[per_dilemma["seed"] == s]
        wide = part.pivot_table(index="dilemma_idx", columns="coeff", values="score").reindex(dilemmas)
        if lo not in wide or hi not in wide:
            return math.nan, math.nan
        ends.append((wide[hi].to_numpy(), wide[lo].to_numpy()))
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(dilemmas), size=(n_boot, len(dilemmas)))
    with warnings.catch_warnings():  # a resample without a valid dilemma at one end is NaN, and skipped
        warnings.simplefilter("ignore", RuntimeWarning)
        boots = np.mean([np.nanmean(a[picks], axis=1) - np.nanmean(b[picks], axis=1) for a, b in ends], axis=0)
    tail = (1 - level) / 2 * 100
    return float(np.nanpercentile(boots, tail)), float(np.nanpercentile(boots, 100 - tail))
