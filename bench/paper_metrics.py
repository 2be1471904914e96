"""The columns the method's papers print (journal 2025-11-08 "Metrics"): parameters, Efficiency, Breadth.

- **Parameters**: the numbers a method fits (``bench.parameters``, recorded in the run's status at fit time).
- **Efficiency** = Effect / log10(parameters): the journal's "Effect / log(parameters)", base 10; n/a for a
  method that fits nothing (prompting).
- **Breadth**: the journal's "Generalization Breadth = # of values significantly shifted": among the values
  measured on at least ``BREADTH_MIN_DILEMMAS`` common dilemmas, those whose Effect (per-dilemma difference of
  the value's score between the sweep's ends) is significant at 0.05 in a t-test over dilemmas after Holm
  across the method's values. Which ones: ``value_effects.csv`` (columns ``p``, ``p_holm``, ``significant``).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as sps

from bench.stats import common_only, endpoints, holm

BREADTH_MIN_DILEMMAS = 30
ALPHA = 0.05


def value_significance(scores: pd.DataFrame) -> pd.DataFrame:
    """(method, value, n, p, p_holm, significant) for every value on >= BREADTH_MIN_DILEMMAS common dilemmas."""
    common = common_only(scores)
    coeffs = sorted(float(c) for c in scores["coeff"].unique())
    if not coeffs:
        return pd.DataFrame(columns=["method", "value", "p", "p_holm", "significant"])
    lo, hi = endpoints(coeffs)
    per = common[common["coeff"].isin([lo, hi])].groupby(["method", "value", "dilemma_idx", "coeff"])["score"].mean()
    wide = per.unstack("coeff")
    diff = (wide[hi] - wide[lo]).dropna().rename("d").reset_index()
    records = []
    for (method, value), g in diff.groupby(["method", "value"]):
        if len(g) >= BREADTH_MIN_DILEMMAS:
            d = g["d"].to_numpy()
            p = float(sps.ttest_1samp(d, 0.0).pvalue) if np.std(d) > 0 else (0.0 if d.mean() != 0 else 1.0)
            records.append({"method": method, "value": value, "p": p})
    out = pd.DataFrame(records, columns=["method", "value", "p"])
    out["p_holm"] = math.nan
    for _, idx in out.groupby("method").groups.items():
        out.loc[idx, "p_holm"] = holm(out.loc[idx, "p"].tolist())
    out["significant"] = out["p_holm"] < ALPHA
    return out


def add_paper_columns(table: pd.DataFrame, status: dict, significance: pd.DataFrame) -> pd.DataFrame:
    """The main table with ``n_parameters``, ``efficiency`` and ``breadth`` (and ``breadth_of``: how many were
    measured) per method."""
    table = table.copy()
    params = [status.get(m, {}).get("n_parameters") for m in table["method"]]
    table["n_parameters"] = [math.nan if p is None else float(p) for p in params]
    effect = table["effect"] if "effect" in table else pd.Series(math.nan, index=table.index)
    table["efficiency"] = [e / math.log10(n) if n == n and n > 1 and e == e else math.nan
                           for e, n in zip(effect, table["n_parameters"])]
    counts = significance.groupby("method")["significant"].agg(["sum", "count"])
    table["breadth"] = [float(counts.loc[m, "sum"]) if m in counts.index else math.nan for m in table["method"]]
    table["breadth_of"] = [float(counts.loc[m, "count"]) if m in counts.index else math.nan for m in table["method"]]
    return table
