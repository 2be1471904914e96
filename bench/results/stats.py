"""Statistics from stored rows alone (no model). The unit of every statistic is the dilemma.

Sign convention (the spec's, tested with two fake models): a row's logratio says "take this
row's action". For value ``v``, a row gets label +1 if ``v`` is among its own action's values, -1
if among the other action's values, and is skipped if on both or neither. ``score = label * logratio``.

A dilemma's score for ``v`` at a coefficient is the mean of its labelled rows' scores (for a value on
one action only: half the difference of the two rows' logratios), and exists only when both rows are
valid there (pair-complete). A yes/no shift of the whole model (+b on one row, -b on the other)
cancels inside the unit, so no statistic treats the two rows of a dilemma as independent.

Every comparison between coefficients uses the *common* dilemmas: those scored at every coefficient
(and every training seed) of the method. Comparing whatever survived at each end separately lets a
method that breaks the answer format at one end report the survivors' bias as its Effect.

How one dilemma's score follows the coefficient (slope, monotonicity, the normalised gain) is in
``bench.results.shape``; the resampling (bootstraps, seed-aware intervals, Holm) in ``bench.results.resampling``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bench.evaluation.coefficients import endpoints  # noqa: F401  (re-exported: the tables import it from here)
from bench.results.resampling import (  # noqa: F401  (re-exported: the tables import them from here)
    N_BOOT,
    bootstrap_mean_ci,
    bootstrap_p,
    holm,
    one_sample_tests,
    paired_difference,
    paired_difference_seeds,
    percentile_ci,
    seed_dilemma_bootstrap,
    seed_dilemma_ci,
)
from bench.results.shape import normalized_gain, per_dilemma_slope, per_dilemma_spearman

MIN_PMASS = 0.5
MIN_RETENTION = 0.8  # the worse end must keep this share of the dilemmas valid at c=0 ...
MIN_COMMON = 30  # ... and this many common dilemmas, or the method is out of the evaluator's range


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


def long_labels(dilemma_rows: pd.DataFrame, values: list[str] | None = None) -> pd.DataFrame:
    """Every (row idx, value, label) with label +-1 (same rule as ``row_labels``), optionally for some values."""
    keep = set(values) if values is not None else None
    records = []
    for _, g in dilemma_rows.groupby("dilemma_idx"):
        if len(g) != 2:
            continue
        (ia, la), (ib, lb) = [(r.idx, set(r.labels)) for r in g.itertuples()]
        for v in la - lb:
            if keep is None or v in keep:
                records += [(ia, v, 1), (ib, v, -1)]
        for v in lb - la:
            if keep is None or v in keep:
                records += [(ib, v, 1), (ia, v, -1)]
    return pd.DataFrame(records, columns=["idx", "value", "label"])


def dilemma_scores(rows: pd.DataFrame, dilemma_rows: pd.DataFrame, min_pmass: float = MIN_PMASS,
                   values: list[str] | None = None) -> pd.DataFrame:
    """Per (method, seed, coeff, value, dilemma): the mean score of its labelled rows, pair-complete only."""
    marked = rows if "pair_valid" in rows else mark_valid(rows, min_pmass)
    marked = marked[marked["pair_valid"]]
    if "seed" not in marked:
        marked = marked.assign(seed=0)
    long = marked[["method", "seed", "coeff", "idx", "dilemma_idx", "logratio"]].merge(
        long_labels(dilemma_rows, values), on="idx")
    long["score"] = long["label"] * long["logratio"]
    return long.groupby(["method", "seed", "coeff", "value", "dilemma_idx"], as_index=False)["score"].mean()


def common_only(scores: pd.DataFrame) -> pd.DataFrame:
    """Keep, per (method, value), the dilemmas scored at every (seed, coefficient) that method has."""
    combos = scores[["method", "seed", "coeff"]].drop_duplicates().groupby("method").size()
    have = scores.groupby(["method", "value", "dilemma_idx"])["score"].transform("size")
    return scores[have.to_numpy() == scores["method"].map(combos).to_numpy()]


def sign_stable(effects: list[float], cis: list[tuple[float, float]]) -> bool | None:
    """Every seed's Effect has the same sign, or its CI includes 0 (None: fewer than two seeds with an Effect,
    e.g. one seed, or a method with no common dilemma: nothing to compare, so no claim of stability)."""
    if sum(e == e for e in effects) < 2:
        return None
    signs = {np.sign(e) for e, (lo, hi) in zip(effects, cis) if not (lo <= 0 <= hi) and e == e}
    return len(signs) <= 1


@dataclass
class MethodStats:
    method: str
    value: str
    coeffs: list[float]
    n_value: int  # evaluated dilemmas that carry the value on one action (the most that can count)
    n_valid: dict[float, int]  # pair-complete dilemmas per coefficient (fewest over seeds)
    nan_rate: dict[float, float]  # share of invalid rows per coefficient (all evaluated rows)
    n_common: int
    retention: float  # share of the c=0-valid dilemmas still valid, at the worse end (overlap_retention)
    effect: float
    ci_low: float
    ci_high: float
    t: float
    p: float
    wilcoxon_p: float
    slope: float  # mean per-dilemma slope over every swept coefficient
    slope_t: float
    slope_p: float
    monotonicity: float
    dnll: float
    gain: float
    n_seeds: int
    effect_by_seed: list[float]  # each seed's Effect on the common dilemmas (common to every seed)
    score_by_coeff: dict[float, float]
    per_dilemma: pd.Series = field(repr=False)  # Effect's per-dilemma difference (seed mean), by dilemma_idx
    # dilemma x seed: each seed's per-dilemma difference (what seed-aware comparisons resample)
    per_dilemma_seeds: pd.DataFrame = field(default=None, repr=False)
    ci_by_seed: list[tuple[float, float]] = field(default_factory=list)  # each seed's BCa CI over dilemmas
    sign_stable: bool | None = None  # every seed's Effect has one sign or a CI with 0; None with one seed
    # the dilemma-level tests' p (t and Wilcoxon on the seed mean): conditional on the trained seeds. With
    # several seeds ``p`` is the two-level bootstrap's, which carries the seed variance as the CI does.
    p_conditional: float = math.nan
    wilcoxon_p_conditional: float = math.nan
    # the seed-level test: a t-test of the per-seed Effects against 0 (df = seeds - 1). With few seeds the
    # bootstrap's resampled seeds never stray beyond the observed ones, so its CI and p are narrower than
    # this; reported beside them, not used for bold
    p_seeds_t: float = math.nan

    @property
    def in_range(self) -> bool:
        return self.n_common >= MIN_COMMON and self.retention >= MIN_RETENTION

    @property
    def effect_sd(self) -> float:
        return float(np.std(self.effect_by_seed, ddof=1)) if self.n_seeds > 1 else math.nan

    @property
    def lo_hi(self) -> tuple[float, float]:
        return endpoints(self.coeffs)

    def range_note(self) -> str:
        """Which rule put the method out of range, with its figures."""
        lo, hi = self.lo_hi
        rules = []
        if not self.retention >= MIN_RETENTION:
            rules.append(f"retention {self.retention:.0%} < {MIN_RETENTION:.0%}: the worse end keeps {self.retention:.0%} "
                         f"of the {self.n_valid.get(0.0, 0)} dilemmas valid at c=0 (valid at c={lo:+g}: "
                         f"{self.n_valid.get(lo, 0)}, c={hi:+g}: {self.n_valid.get(hi, 0)})")
        if self.n_common < MIN_COMMON:
            rules.append(f"N common {self.n_common} < {MIN_COMMON}")
        return "OUT OF RANGE (" + "; ".join(rules) + ")"


def overlap_retention(cube: pd.DataFrame, seeds: list, lo: float, hi: float) -> float:
    """The share of the dilemmas valid at c=0 that are still valid at an end, at the worse end and seed: an
    overlap, never above 1, and a method that loses some dilemmas while it gains others is not hidden."""
    shares = []
    for s in seeds:
        if (s, 0.0) not in cube:
            return math.nan
        base = cube[(s, 0.0)].notna()
        if not base.any():
            return math.nan
        shares += [float((cube[(s, c)].notna() & base).sum() / base.sum()) for c in (lo, hi)]
    return min(shares) if shares else math.nan


def analyse(rows: pd.DataFrame, dilemma_rows: pd.DataFrame, value: str, min_pmass: float = MIN_PMASS,
            seed: int = 0) -> MethodStats:
    """Every statistic of one method's rows (one method, any number of training seeds) for ``value``."""
    marked = mark_valid(rows if "seed" in rows else rows.assign(seed=0), min_pmass)
    method = str(marked["method"].iloc[0])
    coeffs = sorted(float(c) for c in marked["coeff"].unique())
    seeds = sorted(marked["seed"].unique())
    lo, hi = endpoints(coeffs)
    nan_rate = (1.0 - marked.groupby("coeff")["valid"].mean()).to_dict()
    labelled = set(dilemma_rows.loc[dilemma_rows["idx"].map(row_labels(dilemma_rows, value)).to_numpy() != 0,
                                    "dilemma_idx"])
    evaluated = set(marked["dilemma_idx"])
    scores = dilemma_scores(marked, dilemma_rows, min_pmass, [value])
    cube = scores.pivot_table(index="dilemma_idx", columns=["seed", "coeff"], values="score")
    cube = cube.reindex(columns=pd.MultiIndex.from_product([seeds, coeffs], names=["seed", "coeff"]))
    n_valid = {c: int(min(cube[(s, c)].notna().sum() for s in seeds)) for c in coeffs}
    common = cube.dropna()
    arr = common.to_numpy().reshape(len(common), len(seeds), len(coeffs))  # dilemma x seed x coeff
    c_arr = np.array(coeffs)
    ilo, ihi = coeffs.index(lo), coeffs.index(hi)
    d = arr[:, :, ihi] - arr[:, :, ilo]  # dilemma x seed
    dbar = d.mean(1)
    t, p, wp = one_sample_tests(dbar)
    if len(coeffs) > 2:
        slopes = per_dilemma_slope(c_arr, arr).mean(1)
        st, sp, _ = one_sample_tests(slopes)
        slope = float(slopes.mean()) if len(slopes) else math.nan
    else:  # two coefficients: the slope test is the difference test
        slope = float(dbar.mean() / (hi - lo)) if len(dbar) else math.nan
        st, sp = t, p
    mono = float(per_dilemma_spearman(c_arr, arr).mean()) if len(arr) else math.nan
    p_conditional, wp_conditional = p, wp
    if len(seeds) > 1 and len(d) >= 3:  # the seed-aware test: the two-level bootstrap behind the CI
        boots = seed_dilemma_bootstrap(d, seed)
        ci, p, wp = percentile_ci(boots), bootstrap_p(boots), math.nan
    else:
        ci = seed_dilemma_ci(d, seed) if len(d) else (math.nan, math.nan)
    effect_by_seed = [float(x) for x in d.mean(0)] if len(d) else [math.nan] * len(seeds)
    ci_by_seed = [bootstrap_mean_ci(d[:, j], seed) for j in range(len(seeds))] if len(seeds) > 1 and len(d) else []
    effect = float(np.mean(effect_by_seed))
    nll = marked.groupby(["seed", "coeff"])["nll"].first().groupby("coeff").mean()
    dnll = max((float(nll.get(c, math.nan) - nll.get(0.0, math.nan)) for c in (lo, hi)), default=math.nan)
    retention = overlap_retention(cube, seeds, lo, hi)
    return MethodStats(
        method=method, value=value, coeffs=coeffs, n_value=len(labelled & evaluated), n_valid=n_valid,
        nan_rate=nan_rate, n_common=len(common), retention=retention, effect=effect, ci_low=ci[0], ci_high=ci[1],
        t=t, p=p, wilcoxon_p=wp, slope=slope, slope_t=st, slope_p=sp, monotonicity=mono, dnll=dnll,
        gain=normalized_gain(effect, mono, dnll), n_seeds=len(seeds), effect_by_seed=effect_by_seed,
        score_by_coeff={c: float(arr[:, :, i].mean()) if len(arr) else math.nan for i, c in enumerate(coeffs)},
        per_dilemma=pd.Series(dbar, index=common.index, name=method),
        per_dilemma_seeds=pd.DataFrame(d, index=common.index, columns=[int(x) for x in seeds]),
        ci_by_seed=ci_by_seed, sign_stable=sign_stable(effect_by_seed, ci_by_seed),
        p_conditional=p_conditional, wilcoxon_p_conditional=wp_conditional,
        p_seeds_t=one_sample_tests(np.array(effect_by_seed))[1] if len(seeds) > 1 and len(d) else math.nan,
    )
