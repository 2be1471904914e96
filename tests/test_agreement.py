"""Cross-model rank agreement: a paired dilemma bootstrap of Kendall's tau, and per-pair verdicts."""

import numpy as np
import pandas as pd

from bench.results.agreement import pair_verdicts, rank_agreement


def per_dilemma(means: dict[str, float], sd: float, seed: int, n: int = 300) -> dict[str, pd.Series]:
    rng = np.random.default_rng(seed)
    return {m: pd.Series(mu + rng.normal(0, sd, n), index=pd.RangeIndex(n, name="dilemma_idx")) for m, mu in means.items()}


def test_the_same_clear_ranking_agrees_and_a_reversed_one_disagrees():
    means = {"a": 0.0, "b": 0.1, "c": 0.2, "d": 0.3}
    same = rank_agreement(per_dilemma(means, 0.2, 0), per_dilemma(means, 0.2, 1))
    assert same["tau"] == 1.0 and same["ci_low"] > 0.5 and same["same_best"] and same["same_best_share"] > 0.9
    reversed_means = {m: -mu for m, mu in means.items()}
    flipped = rank_agreement(per_dilemma(means, 0.2, 0), per_dilemma(reversed_means, 0.2, 1))
    assert flipped["tau"] == -1.0 and flipped["ci_high"] < -0.5 and not flipped["same_best"]


def test_methods_that_cannot_be_told_apart_give_a_wide_interval():
    means = {"a": 0.0, "b": 0.001, "c": 0.002, "d": 0.003}
    noisy = rank_agreement(per_dilemma(means, 1.0, 0), per_dilemma(means, 1.0, 1))
    assert noisy["ci_low"] < 0 < noisy["ci_high"]


def test_each_method_keeps_its_own_valid_dilemmas():
    a = per_dilemma({"a": 0.0, "b": 0.1, "c": 0.2}, 0.05, 0)
    b = {m: s.iloc[: 100 + 50 * i] for i, (m, s) in enumerate(per_dilemma({"a": 0.0, "b": 0.1, "c": 0.2}, 0.05, 1).items())}
    agree = rank_agreement(a, b)
    for m in "abc":
        assert np.isclose(agree["effects_b"][m], b[m].mean())


def test_pair_verdicts_need_significance_on_both_models():
    first = pd.DataFrame({"a": ["x", "x", "y"], "b": ["y", "z", "z"], "difference": [0.1, 0.1, 0.1],
                          "p_holm": [0.001, 0.001, 0.2]})
    second = first.assign(difference=[0.2, -0.2, 0.1], p_holm=[0.01, 0.01, 0.01])
    verdicts = pair_verdicts(first, second)
    assert verdicts[("x", "y")] == "agree" and verdicts[("x", "z")] == "disagree" and verdicts[("y", "z")] == "undecided"
