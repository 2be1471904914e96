"""Resampling and tests over dilemmas and training seeds: the one-sample tests, the BCa bootstrap over
dilemmas, the two-level (seeds, then dilemmas) bootstrap with its p-value, paired method differences (seed-
aware when either method has several seeds) and Holm's adjustment. ``bench.results.stats`` applies them."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats as sps

N_BOOT = 2000


def one_sample_tests(x: np.ndarray) -> tuple[float, float, float]:
    """(t, p of the t-test, p of the Wilcoxon signed-rank test) of ``x`` against 0."""
    if len(x) < 2 or not np.isfinite(x).all():
        return (math.nan,) * 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a constant sample: t undefined, reported NaN
        res = sps.ttest_1samp(x, 0.0)
    try:
        wp = float(sps.wilcoxon(x, zero_method="wilcox").pvalue) if np.any(x != 0) else math.nan
    except ValueError:
        wp = math.nan
    return float(res.statistic), float(res.pvalue), wp


def bootstrap_mean_ci(x: np.ndarray, seed: int = 0, level: float = 0.95, n_boot: int = N_BOOT) -> tuple[float, float]:
    """BCa bootstrap CI of the mean of ``x`` (one value per dilemma), seeded."""
    if len(x) < 3 or np.ptp(x) == 0:
        return (math.nan, math.nan) if len(x) < 3 else (float(x[0]), float(x[0]))
    with warnings.catch_warnings():  # BCa on a nearly degenerate sample warns and falls back: fine
        warnings.simplefilter("ignore")
        res = sps.bootstrap((x,), np.mean, n_resamples=n_boot, confidence_level=level, method="BCa",
                            vectorized=True, rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def seed_dilemma_bootstrap(d: np.ndarray, seed: int = 0, n_boot: int = N_BOOT) -> np.ndarray:
    """Bootstrap means over training seeds of the mean over dilemmas of ``d`` (dilemmas x seeds): dilemmas
    resampled, then seeds (two-level), so seed-to-seed disagreement widens the spread."""
    n, s = d.shape
    rng = np.random.default_rng(seed)
    dil = rng.integers(0, n, size=(n_boot, n))
    seeds = rng.integers(0, s, size=(n_boot, s))
    col_means = np.stack([d[pick].mean(0) for pick in dil])  # n_boot x seeds: each seed on the same dilemmas
    return np.take_along_axis(col_means, seeds, axis=1).mean(1)


def bootstrap_p(boots: np.ndarray) -> float:
    """Two-sided bootstrap p of "the mean is 0": twice the smaller share of resamples on either side of 0,
    floored at 1/(n_boot + 1). It rejects at alpha exactly when the percentile (1 - alpha) CI excludes 0, so
    the table's p and CI cannot disagree."""
    if not len(boots) or not np.isfinite(boots).all():
        return math.nan
    share = min(float(np.mean(boots <= 0)), float(np.mean(boots >= 0)))
    return min(1.0, max(2 * share, 1 / (len(boots) + 1)))


def percentile_ci(boots: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    tail = (1 - level) / 2 * 100
    return float(np.percentile(boots, tail)), float(np.percentile(boots, 100 - tail))


def seed_dilemma_ci(d: np.ndarray, seed: int = 0, level: float = 0.95, n_boot: int = N_BOOT) -> tuple[float, float]:
    """Percentile CI of the mean over training seeds of the mean over dilemmas of ``d`` (dilemmas x seeds),
    resampling seeds *and* dilemmas (two-level bootstrap); one seed: the BCa CI over dilemmas."""
    if d.shape[1] == 1:
        return bootstrap_mean_ci(d[:, 0], seed, level, n_boot)
    return percentile_ci(seed_dilemma_bootstrap(d, seed, n_boot), level)


def holm(pvalues: list[float]) -> list[float]:
    """Holm-adjusted p-values over the finite entries (NaN stays NaN)."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = multipletests(p[ok], method="holm")[1]
    return out.tolist()


def paired_difference_seeds(a: pd.DataFrame, b: pd.DataFrame, seed: int = 0, n_boot: int = N_BOOT) -> dict:
    """Effect(A) - Effect(B) on the dilemmas common to both, from per-dilemma differences per training seed
    (dilemmas x seeds each). With several seeds on either side the interval and p come from a bootstrap
    that resamples the shared dilemmas and, independently, each method's seeds (``seed_aware``); with one
    seed each it is ``paired_difference`` of the seed means."""
    joined = a.join(b, how="inner", lsuffix="_a", rsuffix="_b").dropna()
    da, db = joined.iloc[:, : a.shape[1]].to_numpy(), joined.iloc[:, a.shape[1]:].to_numpy()
    if a.shape[1] == 1 and b.shape[1] == 1 or len(joined) < 3:
        out = paired_difference(pd.Series(da.mean(1), index=joined.index), pd.Series(db.mean(1), index=joined.index), seed)
        return {**out, "seed_aware": False, "p_conditional": out["p"]}
    rng = np.random.default_rng(seed)
    n = len(joined)
    boots = np.empty(n_boot)
    for i in range(n_boot):
        pick = rng.integers(0, n, n)
        sa, sb = rng.integers(0, da.shape[1], da.shape[1]), rng.integers(0, db.shape[1], db.shape[1])
        boots[i] = da[pick][:, sa].mean() - db[pick][:, sb].mean()
    diff = da.mean(1) - db.mean(1)
    t, p_conditional, _ = one_sample_tests(diff)
    lo, hi = percentile_ci(boots)
    return {"n_common": n, "difference": float(diff.mean()), "ci_low": lo, "ci_high": hi, "t": t,
            "p": bootstrap_p(boots), "wilcoxon_p": math.nan, "seed_aware": True, "p_conditional": p_conditional}


def paired_difference(a: pd.Series, b: pd.Series, seed: int = 0) -> dict:
    """Effect of ``a`` minus Effect of ``b`` on the dilemmas common to both, paired over dilemmas."""
    joined = pd.concat([a, b], axis=1, join="inner").dropna()
    diff = (joined.iloc[:, 0] - joined.iloc[:, 1]).to_numpy()
    t, p, wp = one_sample_tests(diff)
    lo, hi = bootstrap_mean_ci(diff, seed) if len(diff) else (math.nan, math.nan)
    return {"n_common": len(diff), "difference": float(diff.mean()) if len(diff) else math.nan,
            "ci_low": lo, "ci_high": hi, "t": t, "p": p, "wilcoxon_p": wp}
