"""Do two models rank the steering methods the same way, and how sure can we be?

Both models are scored on the same DailyDilemmas, so the question has a paired answer: resample the
dilemmas once per draw, recompute every method's Effect on *both* models from that one draw, and read
off the rank correlation. The interval then carries the dilemma sampling noise of both tables at once
(and their shared part: a hard dilemma is hard for every method on both models).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import scipy.stats as sps

from bench.results.stats import N_BOOT


def _effects_under_draws(per_dilemma: dict[str, pd.Series], ids: pd.Index, weights: np.ndarray) -> np.ndarray:
    """(draws x methods) Effects: each method's weighted mean over its own valid dilemmas."""
    matrix = pd.DataFrame({m: s.groupby(level=0).mean() for m, s in per_dilemma.items()}).reindex(ids)
    valid = matrix.notna().to_numpy(dtype=float)
    values = np.nan_to_num(matrix.to_numpy(dtype=float))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (weights @ (values * valid)) / (weights @ valid)


def rank_agreement(a: dict[str, pd.Series], b: dict[str, pd.Series], seed: int = 0, n_boot: int = N_BOOT,
                   level: float = 0.95) -> dict:
    """Kendall's tau between the methods' Effects on model A and model B (per-dilemma Effects given as
    ``{method: Series indexed by dilemma_idx}``), with a percentile interval from a paired dilemma bootstrap,
    and the share of draws in which the two models pick the same best method."""
    methods = [m for m in a if m in b]
    if len(methods) < 3:
        return {"n_methods": len(methods), "methods": methods, "tau": math.nan, "ci_low": math.nan,
                "ci_high": math.nan, "p": math.nan, "same_best": math.nan, "same_best_share": math.nan}
    ids = pd.Index(sorted(set().union(*(a[m].index for m in methods), *(b[m].index for m in methods))))
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(len(ids), np.full(len(ids), 1 / len(ids)), size=n_boot).astype(float)
    weights = np.vstack([np.ones((1, len(ids))), draws])  # row 0: the data as observed; then the draws
    (effect_a, *boot_a), (effect_b, *boot_b) = (
        _effects_under_draws({m: side[m] for m in methods}, ids, weights) for side in (a, b))
    boot_a, boot_b = np.array(boot_a), np.array(boot_b)
    tau, p = sps.kendalltau(effect_a, effect_b)
    taus = np.array([sps.kendalltau(x, y)[0] for x, y in zip(boot_a, boot_b)])
    taus = taus[np.isfinite(taus)]
    alpha = (1 - level) / 2
    same_best = bool(np.argmax(effect_a) == np.argmax(effect_b))
    same_best_share = float(np.mean(np.argmax(boot_a, axis=1) == np.argmax(boot_b, axis=1)))
    return {"n_methods": len(methods), "methods": methods, "tau": float(tau), "p": float(p),
            "ci_low": float(np.quantile(taus, alpha)) if len(taus) else math.nan,
            "ci_high": float(np.quantile(taus, 1 - alpha)) if len(taus) else math.nan,
            "same_best": same_best, "same_best_share": same_best_share,
            "effects_a": dict(zip(methods, effect_a.tolist())), "effects_b": dict(zip(methods, effect_b.tolist()))}


def pair_verdicts(pairs_a: pd.DataFrame, pairs_b: pd.DataFrame, alpha: float = 0.05) -> pd.Series:
    """Per method pair (rows of two ``pairwise_table``s, same order): "agree" when both models find a
    Holm-significant difference of the same sign, "disagree" when both do with opposite signs, and
    "undecided" when at most one model's difference is significant."""
    joined = pairs_a.merge(pairs_b, on=["a", "b"], suffixes=("_a", "_b"))

    def verdict(row) -> str:
        if row["p_holm_a"] < alpha and row["p_holm_b"] < alpha:
            return "agree" if np.sign(row["difference_a"]) == np.sign(row["difference_b"]) else "disagree"
        return "undecided"

    return pd.Series([verdict(r) for _, r in joined.iterrows()], index=pd.MultiIndex.from_frame(joined[["a", "b"]]))
