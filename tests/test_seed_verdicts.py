"""Verdicts over training seeds: with several seeds the p-value carries the seed variance as the CI does (a CI
spanning 0 beside p = 1e-9 cannot happen), bold needs sign stability, and a pairwise or dominance verdict
resamples seeds. Each test was checked to fail against the seed-blind code it guards (p from the t-test on
the seed mean; bold without the stability mask; pairs compared on seed means)."""

import numpy as np
import pandas as pd
import pytest

from bench.evaluation.dilemmas import load_dilemmas, select_subset
from bench.results.display import main_display
from bench.results.frontier import Frontier, dominance
from bench.results.report import method_table, pairwise_table
from bench.results.resampling import bootstrap_p, percentile_ci, seed_dilemma_bootstrap
from bench.results.stats import analyse, row_labels

TARGET = "Virtue/Truthfulness"


@pytest.fixture(scope="module")
def dd(dilemmas_dir):
    return select_subset(load_dilemmas(dilemmas_dir), 120, TARGET, seed=0)


def seeded_rows(dilemma_rows: pd.DataFrame, method: str, effects: list[float], noise: float = 0.01) -> pd.DataFrame:
    """Rows whose per-seed Effect on the target is ``effects[s]`` plus small per-dilemma noise."""
    label = dilemma_rows["idx"].map(row_labels(dilemma_rows, TARGET)).to_numpy()
    frames = []
    for s, k in enumerate(effects):
        jitter = np.random.default_rng(s).normal(0, noise, len(dilemma_rows))
        for c in (-1.0, 0.0, 1.0):
            frames.append(pd.DataFrame({"method": method, "seed": s, "coeff": c, "idx": dilemma_rows["idx"],
                                        "dilemma_idx": dilemma_rows["dilemma_idx"], "pmass": 0.9, "nll": 2.0,
                                        "logratio": label * c * (k + jitter)}))
    return pd.concat(frames, ignore_index=True)


def table_of(dd, methods: dict[str, list[float]]):
    rows = pd.concat([seeded_rows(dd.rows, m, e) for m, e in methods.items()], ignore_index=True)
    status = {m: {"status": "ok"} for m in methods}
    return method_table(rows, dd.rows, status, TARGET, 0.0)


def test_a_ci_spanning_zero_never_sits_beside_a_tiny_p(dd):
    table, stats = table_of(dd, {"coin": [0.3, 0.05, -0.2], "steady": [0.1, 0.11, 0.09]})
    coin = table.set_index("method").loc["coin"]
    assert coin["ci_low"] < 0 < coin["ci_high"]
    assert coin["p_conditional"] < 1e-6  # the seed-blind test: "significant", from one set of draws
    assert coin["p"] >= 0.05 and coin["p_holm"] >= 0.05  # the seed-aware one agrees with the CI
    assert stats["coin"].sign_stable is False and stats["steady"].sign_stable is True
    steady = table.set_index("method").loc["steady"]
    assert steady["ci_low"] > 0 and steady["p_holm"] < 0.05


def test_the_seed_level_t_test_is_reported_beside_the_bootstrap(dd):
    """Three seeds all above 0 but far apart: the bootstrap cannot resample beyond the observed seeds, so its CI
    excludes 0; the t-test over the three seed Effects (df 2) does not. Both are in the table; one seed: none."""
    from scipy import stats as sps

    table, stats = table_of(dd, {"spread": [0.11, 0.19, 0.08], "steady": [0.1, 0.11, 0.09]})
    t = table.set_index("method")
    spread = stats["spread"]
    assert spread.ci_low > 0 and spread.p < 0.05  # the bootstrap: "significant"
    assert t.loc["spread", "p_seeds_t"] == pytest.approx(sps.ttest_1samp(spread.effect_by_seed, 0.0).pvalue, rel=1e-9)
    assert 0.05 < t.loc["spread", "p_seeds_t"] < 0.1  # over seeds alone: not
    assert t.loc["spread", "p_seeds_t_holm"] >= t.loc["spread", "p_seeds_t"]
    assert t.loc["steady", "p_seeds_t"] < 0.05
    shown, _ = main_display(table)
    assert "p over seeds (t, Holm)" in shown
    one, _ = table_of(dd, {"single": [0.1]})
    assert one["p_seeds_t"].isna().all()


@pytest.mark.parametrize("draw", range(6))
def test_the_bootstrap_p_and_percentile_ci_always_agree(draw):
    rng = np.random.default_rng(draw)
    d = rng.normal(rng.normal(0, 0.05), 0.3, size=(80, 3)) + rng.normal(0, 0.05, size=3)
    boots = seed_dilemma_bootstrap(d, 0)
    lo, hi = percentile_ci(boots)
    assert (lo <= 0 <= hi) == (bootstrap_p(boots) >= 0.05 - 1e-12)


def test_bold_needs_sign_stability(dd):
    # one seed of five reverses, significantly: best Effect, Holm-significant over seeds, but not sign-stable
    table, _ = table_of(dd, {"coin": [0.9, 0.8, 0.7, 0.6, -0.05], "steady": [0.1, 0.11, 0.09, 0.1, 0.1]})
    t = table.set_index("method")
    assert t.loc["coin", "effect"] > t.loc["steady", "effect"] and not t.loc["coin", "sign_stable"]
    assert t.loc["coin", "p_holm"] < 0.05 and t.loc["steady", "sign_stable"]
    shown, bold = main_display(table)
    bolded = {shown.loc[i, "Method"] for i, col in bold if col == "Effect [95% CI]"}
    assert bolded == {"steady"}
    assert "Sign-stable" in shown and "Effect per seed" in shown and "p (seeds x dilemmas, Holm)" in shown


def test_pairwise_comparisons_resample_seeds(dd):
    _, stats = table_of(dd, {"coin": [0.3, 0.05, -0.2], "steady": [0.01, 0.012, 0.009]})
    pairs = pairwise_table(stats)
    row = pairs.iloc[0]
    assert bool(row["seed_aware"]) and row["p_conditional"] < 1e-6  # seed-blind: "coin beats steady"
    assert row["ci_low"] < 0 < row["ci_high"] and row["p_holm"] >= 0.05


def test_dominance_over_budgets_says_undecided_by_seed_spread(dd):
    stats, records = {}, []
    for b in (0.01, 0.1):
        for method, effects in (("coin", [0.3, 0.05, -0.2]), ("steady", [0.01, 0.012, 0.009])):
            st = analyse(seeded_rows(dd.rows, method, effects), dd.rows, TARGET, 0.0)
            stats[(method, b)] = st
            records.append({"method": method, "budget": b, "in_range": True})
    verdicts = dominance(Frontier(pd.DataFrame(records), stats, [0.01, 0.1], 0.1))
    said = verdicts.iloc[0]["verdict"]
    assert said.startswith("undecided (seed spread") and "coin dominates" in said, said


def test_a_method_with_no_common_dilemma_is_not_called_sign_stable(dd):
    # LoRA on Gemma: three seeds, none keeps a dilemma answerable at c = -c*, so no seed has an Effect. The table
    # must not call that "sign-stable" (an empty set of signs agrees trivially) nor print "+nan" per seed.
    rows = pd.concat([seeded_rows(dd.rows, "broken", [0.2, 0.1, 0.3]), seeded_rows(dd.rows, "steady", [0.1] * 3)])
    rows.loc[(rows["method"] == "broken") & (rows["coeff"] == -1.0), "logratio"] = np.nan  # no Yes/No answer
    table, stats = method_table(rows, dd.rows, {m: {"status": "ok"} for m in ("broken", "steady")}, TARGET, 0.0)
    assert stats["broken"].sign_stable is None and stats["steady"].sign_stable is True
    assert table.set_index("method").loc["broken", "effect_by_seed"] == "n/a / n/a / n/a"
