import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from bench.evaluation.dilemmas import load_dilemmas, select_subset
from bench.results.display import main_display
from bench.results.report import method_table, pairwise_table
from bench.results.shape import normalized_gain, per_dilemma_spearman
from bench.results.stats import (
    analyse,
    bootstrap_mean_ci,
    dilemma_scores,
    holm,
    paired_difference,
    row_labels,
    seed_dilemma_ci,
)

TARGET = "Virtue/Truthfulness"


@pytest.fixture(scope="module")
def dd(dilemmas_dir):
    return select_subset(load_dilemmas(dilemmas_dir), 60, TARGET, seed=0)


def fake_rows(dilemma_rows: pd.DataFrame, logratio_of, coeffs=(-1.0, 0.0, 1.0), method="fake") -> pd.DataFrame:
    frames = []
    for c in coeffs:
        lr = [logratio_of(r, c) for r in dilemma_rows.itertuples()]
        frames.append(pd.DataFrame({"method": method, "seed": 0, "coeff": c, "idx": dilemma_rows["idx"],
                                    "dilemma_idx": dilemma_rows["dilemma_idx"], "logratio": lr, "pmass": 0.9,
                                    "nll": 2.0}))
    return pd.concat(frames, ignore_index=True)


def test_always_yes_scores_zero_on_every_value(dd):
    rows = fake_rows(dd.rows, lambda r, c: 3.0)
    scores = dilemma_scores(rows, dd.rows)
    assert len(scores) > 1000 and scores["score"].abs().max() == 0.0


def test_prefers_to_do_scores_positive_on_to_do_values(dd):
    rows = fake_rows(dd.rows, lambda r, c: 2.0 if r.action_type == "to_do" else -2.0)
    todo_idx = dd.rows.set_index("dilemma_idx").query("action_type == 'to_do'")["idx"]
    checked = 0
    for value in dd.label_names[:80]:
        labels = row_labels(dd.rows, value)
        scores = dilemma_scores(rows, dd.rows, values=[value])
        for r in scores.itertuples():
            todo_label = labels[todo_idx[r.dilemma_idx]]
            # value on the to_do action: the dilemma scores +2; on the not_to_do action: -2
            assert r.score == 2.0 * todo_label, value
            checked += todo_label == 1
    assert checked > 100


def test_labels_skip_values_on_both_actions():
    rows = pd.DataFrame({"idx": [0, 1, 2, 3], "dilemma_idx": [7, 7, 8, 8],
                         "labels": [["A", "B"], ["B"], ["A"], ["C"]]})
    assert row_labels(rows, "A").tolist() == [1, -1, 1, -1]
    assert row_labels(rows, "B").tolist() == [0, 0, 0, 0]
    assert row_labels(rows, "C").tolist() == [0, 0, -1, 1]


def hand_example():
    """2 dilemmas x 2 rows, value A on rows 0 and 2 (to_do); three coefficients."""
    dil = pd.DataFrame({"idx": [0, 1, 2, 3], "dilemma_idx": [7, 7, 8, 8], "labels": [["A"], [], ["A"], []]})
    lr = {-1: [0.0, 1.0, 1.0, 1.0], 0: [1.0, 1.0, 2.0, 1.0], 1: [2.0, 0.0, 5.0, 1.0]}
    nll = {-1: 2.0, 0: 2.0, 1: 2.5}
    rows = pd.concat([pd.DataFrame({"method": "m", "seed": 0, "coeff": float(c), "idx": [0, 1, 2, 3],
                                    "dilemma_idx": [7, 7, 8, 8], "logratio": v, "pmass": 0.8, "nll": nll[c]})
                      for c, v in lr.items()], ignore_index=True)
    return dil, rows


def test_statistics_on_hand_computed_example():
    dil, rows = hand_example()
    # dilemma score = mean(label * logratio) of its two rows (labels +1, -1):
    # dilemma 7: c=-1 (0-1)/2=-0.5, c=0 0, c=1 1  ;  dilemma 8: c=-1 0, c=0 0.5, c=1 2
    st = analyse(rows, dil, "A")
    assert st.score_by_coeff == {-1.0: -0.25, 0.0: 0.25, 1.0: 1.5}
    assert st.n_common == 2 and st.n_value == 2 and st.in_range is False  # N common < 30
    d = np.array([1.5, 2.0])  # per-dilemma differences
    assert st.effect == pytest.approx(1.75)
    assert st.t == pytest.approx(7.0) and st.p == pytest.approx(sps.ttest_1samp(d, 0).pvalue)
    assert st.slope == pytest.approx(np.mean([0.75, 1.0]))  # per-dilemma least-squares slopes
    assert st.monotonicity == pytest.approx(1.0)
    assert st.dnll == pytest.approx(0.5)
    assert st.gain == pytest.approx(100 * 1.75 * 1.0 / 1.5)
    assert st.nan_rate == {-1.0: 0.0, 0.0: 0.0, 1.0: 0.0}


def test_a_nan_row_drops_its_dilemma_from_every_comparison():
    dil, rows = hand_example()
    rows.loc[(rows["coeff"] == 1.0) & (rows["idx"] == 1), "pmass"] = 0.3  # row 1 not answering at c=1
    st = analyse(rows, dil, "A")
    assert st.n_valid == {-1.0: 2, 0.0: 2, 1.0: 1} and st.n_common == 1 and st.retention == 0.5
    assert st.effect == pytest.approx(2.0)  # dilemma 8 alone, at both ends
    assert st.score_by_coeff[-1.0] == pytest.approx(0.0)  # not dilemma 7's -0.5: it is not common
    assert st.nan_rate[1.0] == pytest.approx(0.25)


def test_biased_survivors_at_one_end_do_not_make_an_effect():
    """One end keeps only the 5 dilemmas that scored lowest at c=0: the per-end means would report
    their bias as an Effect; the common-set Effect is the true +0.2, and the method is out of range."""
    rng = np.random.default_rng(0)
    n = 100
    base = rng.normal(0, 1, n)
    low5 = set(np.argsort(base)[:5])
    dil = pd.DataFrame({"idx": np.arange(2 * n), "dilemma_idx": np.repeat(np.arange(n), 2),
                        "labels": [["A"] if i % 2 == 0 else [] for i in range(2 * n)]})
    frames = []
    for c, shift in ((-1.0, -0.1), (0.0, 0.0), (1.0, 0.1)):
        s = base + shift
        lr = np.stack([s, -s], 1).ravel()  # dilemma score s: +s on the A row, -s on the other
        pmass = np.where([(c == -1.0 and (i // 2) not in low5) for i in range(2 * n)], 0.1, 0.9)
        frames.append(pd.DataFrame({"method": "m", "seed": 0, "coeff": c, "idx": dil["idx"], "nll": 2.0,
                                    "dilemma_idx": dil["dilemma_idx"], "logratio": lr, "pmass": pmass}))
    rows = pd.concat(frames, ignore_index=True)
    naive = base.mean() + 0.1 - (base[sorted(low5)].mean() - 0.1)
    assert naive > 1.5  # what comparing the survivors of each end would say
    st = analyse(rows, dil, "A")
    assert st.n_common == 5 and st.effect == pytest.approx(0.2)
    assert not st.in_range and "OUT OF RANGE" in st.range_note()


def test_a_uniform_yes_no_shift_changes_no_dilemma_level_statistic(dd):
    rng = np.random.default_rng(1)
    noise = {c: rng.normal(0, 1, len(dd.rows)) for c in (-1.0, 0.0, 1.0)}
    pos = {idx: i for i, idx in enumerate(dd.rows["idx"])}
    plain = fake_rows(dd.rows, lambda r, c: noise[c][pos[r.idx]] + 0.3 * c * (r.action_type == "to_do"))
    # the whole model says Yes more (or less) at each coefficient: every row moves by the same b(c)
    shifted = plain.assign(logratio=plain["logratio"] + plain["coeff"].map({-1.0: -2.0, 0.0: 0.5, 1.0: 3.0}))
    a, b = analyse(plain, dd.rows, TARGET), analyse(shifted, dd.rows, TARGET)
    for key in ("effect", "ci_low", "ci_high", "t", "p", "wilcoxon_p", "slope", "slope_p", "monotonicity"):
        assert getattr(a, key) == pytest.approx(getattr(b, key), rel=1e-9, abs=1e-12), key
    assert a.n_common == b.n_common > 30


def test_holm_on_known_p_values():
    # sorted 0.01, 0.03, 0.04 -> x3, x2, x1 = 0.03, 0.06, 0.04 -> step-down max: 0.03, 0.06, 0.06
    assert holm([0.01, 0.04, 0.03, math.nan])[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert math.isnan(holm([0.01, 0.04, 0.03, math.nan])[3])


def test_seed_aware_interval_widens_when_seeds_disagree():
    rng = np.random.default_rng(2)
    noise = rng.normal(0, 1, (300, 3))
    agree = noise + 0.5
    disagree = noise + np.array([-0.5, 0.5, 1.5])  # same mean over seeds, seeds far apart
    lo_a, hi_a = seed_dilemma_ci(agree, seed=0)
    lo_d, hi_d = seed_dilemma_ci(disagree, seed=0)
    assert lo_a < 0.5 < hi_a and lo_d < 0.5 < hi_d
    assert hi_d - lo_d > 3 * (hi_a - lo_a)
    # the dilemma-only interval of the seed mean would not see the disagreement at all
    lo_m, hi_m = bootstrap_mean_ci(disagree.mean(1), seed=0)
    assert hi_m - lo_m < 0.5 * (hi_d - lo_d)
    assert seed_dilemma_ci(disagree, seed=0) == (lo_d, hi_d)  # seeded


def test_bca_interval_is_seeded_and_has_the_expected_width():
    x = np.random.default_rng(0).normal(0.5, 1, 400)
    lo, hi = bootstrap_mean_ci(x, seed=1)
    assert (lo, hi) == bootstrap_mean_ci(x, seed=1) and lo < 0.5 < hi
    se = 1 / np.sqrt(400)
    assert 0.8 * 2 * 1.96 * se < hi - lo < 1.2 * 2 * 1.96 * se


def test_monotonicity_is_dilemma_level_and_gain_is_not_a_step_function():
    coeffs = np.array([-1.0, 0.0, 1.0])
    up, down, flat = [0.0, 1.0, 2.0], [2.0, 1.0, 0.0], [1.0, 1.0, 1.0]
    assert per_dilemma_spearman(coeffs, np.array([up, down, flat])).tolist() == [1.0, -1.0, 0.0]
    rho = per_dilemma_spearman(coeffs, np.array([up] * 6 + [down] * 4)).mean()
    assert rho == pytest.approx(0.2)  # 60% of dilemmas up, 40% down: not one of +-0.5 / +-1
    assert normalized_gain(1.0, rho, 0.0) == pytest.approx(20.0)
    assert normalized_gain(2.0, -0.5, 0.0) == 0.0


def test_pairwise_difference_is_paired_over_common_dilemmas():
    a = pd.Series([1.0, 2.0, 3.0, 4.0, 9.0], index=[1, 2, 3, 4, 5])
    b = pd.Series([0.5, 1.0, 2.5, 3.0], index=[2, 3, 4, 6])
    res = paired_difference(a, b)
    assert res["n_common"] == 3 and res["difference"] == pytest.approx(np.mean([1.5, 2.0, 1.5]))
    assert res["p"] == pytest.approx(sps.ttest_1samp([1.5, 2.0, 1.5], 0).pvalue)


def test_bold_needs_range_and_holm_significance(dd):
    rng = np.random.default_rng(3)
    pos = {idx: i for i, idx in enumerate(dd.rows["idx"])}
    noise = {c: rng.normal(0, 0.3, len(dd.rows)) for c in (-1.0, 0.0, 1.0)}
    frames = [fake_rows(dd.rows, lambda r, c, k=k: noise[c][pos[r.idx]] + k * c * (r.action_type == "to_do"), method=m)
              for m, k in (("strong", 1.0), ("null", 0.0))]
    rows = pd.concat(frames, ignore_index=True)
    status = {"strong": {"status": "ok"}, "null": {"status": "ok"}, "_run": {}}
    table, stats = method_table(rows, dd.rows, status, TARGET)
    shown, bold = main_display(table)
    strong = int(table.index[table["method"] == "strong"][0])
    assert table.loc[strong, "p_holm"] < 0.05 and (strong, "Effect [95% CI]") in bold
    # nothing significant: nothing bold
    _, bold_null = main_display(table[table["method"] == "null"].reset_index(drop=True))
    assert bold_null == set()
    pairs = pairwise_table(stats)
    assert len(pairs) == 1 and pairs.loc[0, "n_common"] == stats["null"].n_common


def test_retention_is_an_overlap_so_swapped_dilemmas_are_not_hidden():
    """At c=+1 the method loses half the dilemmas valid at c=0 and gains as many that were not: the old ratio
    of counts said 100%; the overlap says 50%, and the note names the rule that fired."""
    n = 40
    dil = pd.DataFrame({"idx": np.arange(2 * n), "dilemma_idx": np.repeat(np.arange(n), 2),
                        "labels": [["A"] if i % 2 == 0 else [] for i in range(2 * n)]})
    valid0 = set(range(0, 20))  # c=0 answers dilemmas 0-19; c=+1 answers 10-29 (half swapped); c=-1 as c=0
    frames = []
    for c, valid in ((-1.0, valid0), (0.0, valid0), (1.0, set(range(10, 30)))):
        pm = np.array([0.9 if i // 2 in valid else 0.1 for i in range(2 * n)])
        frames.append(pd.DataFrame({"method": "m", "seed": 0, "coeff": c, "idx": dil["idx"], "nll": 2.0,
                                    "dilemma_idx": dil["dilemma_idx"], "logratio": 0.1 * c, "pmass": pm}))
    st = analyse(pd.concat(frames, ignore_index=True), dil, "A")
    assert st.n_valid == {-1.0: 20, 0.0: 20, 1.0: 20}  # equal counts: a ratio of counts would say 100%
    assert st.retention == pytest.approx(0.5) and not st.in_range
    note = st.range_note()
    assert note.startswith("OUT OF RANGE (retention 50% < 80%") and "N common 10 < 30" in note
