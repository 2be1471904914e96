"""How one dilemma's score follows the steering coefficient: its least-squares slope, its Spearman
monotonicity, and the normalised gain that weighs an Effect by both and by the coherence cost.

Each function takes a dilemmas x coefficients array of one method's scores on its common dilemmas
(``bench.results.stats``), so a dilemma, not a row, is the unit here too.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps


def normalized_gain(effect: float, monotonicity: float, dnll: float) -> float:
    """100 * Effect * max(0, monotonicity) / (1 + dNLL)  (journal 2025-11-14, with the dilemma-level
    monotonicity in place of the three-point Spearman rho of the means, which is a step function)."""
    if not all(np.isfinite([effect, monotonicity, dnll])) or dnll <= -1:
        return math.nan
    return 100.0 * effect * max(0.0, monotonicity) / (1.0 + dnll)


def per_dilemma_spearman(coeffs: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Spearman rho of each row of ``scores`` (dilemmas x coefficients) against ``coeffs``; 0 where a
    dilemma's scores are all tied (no order to speak of)."""
    ranks = sps.rankdata(scores, axis=-1)
    cr = sps.rankdata(coeffs)
    rc = ranks - ranks.mean(-1, keepdims=True)
    cc = cr - cr.mean()
    denom = np.sqrt((rc ** 2).sum(-1) * (cc ** 2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (rc * cc).sum(-1) / denom
    return np.where(denom > 0, rho, 0.0)


def per_dilemma_slope(coeffs: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Least-squares slope of each row of ``scores`` over ``coeffs``."""
    cc = coeffs - coeffs.mean()
    return ((scores - scores.mean(-1, keepdims=True)) * cc).sum(-1) / (cc ** 2).sum()
