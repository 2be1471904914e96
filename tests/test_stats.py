import math

import numpy as np
import pandas as pd
import pytest

from bench.dilemmas import load_dilemmas, select_subset
from bench.stats import (
    mark_valid,
    normalized_gain,
    paired_slope,
    row_labels,
    spearman_rho,
    summarize,
    value_scores,
)

TARGET = "Virtue/Truthfulness"


@pytest.fixture(scope="module")
def dd(dilemmas_dir):
    return select_subset(load_dilemmas(dilemmas_dir), 60, TARGET, seed=0)


def fake_rows(dilemma_rows: pd.DataFrame, logratio_of, coeffs=(-1.0, 0.0, 1.0)) -> pd.DataFrame:
    frames = []
    for c in coeffs:
        lr = [logratio_of(r, c) for r in dilemma_rows.itertuples()]
        frames.append(pd.DataFrame({"method": "fake", "coeff": c, "idx": dilemma_rows["idx"],
                                    "dilemma_idx": dilemma_rows["dilemma_idx"], "logratio": lr, "pmass": 0.9}))
    return pd.concat(frames, ignore_index=True)


def test_always_yes_scores_zero_on_every_value(dd):
    rows = fake_rows(dd.rows, lambda r, c: 3.0)
    for value in dd.label_names[:60] + [TARGET]:
        scores = value_scores(rows, dd.rows, value)
        if len(scores):
            assert scores["score"].mean() == pytest.approx(0.0, abs=1e-12), value


def test_prefers_to_do_scores_positive_on_to_do_values_from_both_rows(dd):
    rows = fake_rows(dd.rows, lambda r, c: 2.0 if r.action_type == "to_do" else -2.0)
    action = dd.rows.set_index("idx")["action_type"]
    checked = 0
    for value in dd.label_names:
        labels = row_labels(dd.rows, value)
        scores = value_scores(rows, dd.rows, value).assign(action=lambda f: f["idx"].map(action))
        for _, g in scores.groupby(["coeff", "dilemma_idx"]):
            todo_label = labels[g.loc[g["action"] == "to_do", "idx"]].iloc[0]
            assert len(g) == 2  # both rows score
            # value on the to_do action: positive from both rows; on the not_to_do action: negative
            assert (np.sign(g["score"]) == todo_label).all(), value
            checked += todo_label == 1
    assert checked > 100


def test_labels_skip_values_on_both_actions():
    rows = pd.DataFrame({"idx": [0, 1, 2, 3], "dilemma_idx": [7, 7, 8, 8],
                         "labels": [["A", "B"], ["B"], ["A"], ["C"]]})
    assert row_labels(rows, "A").tolist() == [1, -1, 1, -1]
    assert row_labels(rows, "B").tolist() == [0, 0, 0, 0]
    assert row_labels(rows, "C").tolist() == [0, 0, -1, 1]


def hand_example():
    """2 dilemmas x 2 rows, value A on row 0 and 2 (to_do); three coefficients."""
    dil = pd.DataFrame({"idx": [0, 1, 2, 3], "dilemma_idx": [7, 7, 8, 8], "labels": [["A"], [], ["A"], []]})
    lr = {  # logratio per (coeff, idx)
        -1: [0.0, 1.0, 1.0, 1.0],
        0: [1.0, 1.0, 2.0, 1.0],
        1: [2.0, 0.0, 4.0, 1.0],
    }
    rows = pd.concat([pd.DataFrame({"method": "m", "coeff": float(c), "idx": [0, 1, 2, 3],
                                    "dilemma_idx": [7, 7, 8, 8], "logratio": v, "pmass": 0.8})
                      for c, v in lr.items()], ignore_index=True)
    return dil, rows


def test_statistics_on_hand_computed_example():
    dil, rows = hand_example()
    # scores: row0 = lr, row1 = -lr, row2 = lr, row3 = -lr
    # c=-1: [0,-1,1,-1] mean -0.25 ; c=0: [1,-1,2,-1] mean 0.25 ; c=1: [2,0,4,-1] mean 1.25
    st = summarize("m", rows, dil, "A", {-1.0: 2.0, 0.0: 2.0, 1.0: 2.5})
    assert st.score_by_coeff == {-1.0: -0.25, 0.0: 0.25, 1.0: 1.25}
    assert st.effect == pytest.approx(1.5)
    assert st.rho == pytest.approx(1.0)
    assert st.dnll == pytest.approx(0.5)
    assert st.gain == pytest.approx(100 * 1.5 * 1.0 / 1.5)
    # pooled OLS slope of score on c equals the slope of the means here (balanced design): 0.75
    assert st.slope == pytest.approx(0.75)
    # per-row slopes: row0 1, row1 0.5, row2 1.5, row3 0 -> mean 0.75, sd 0.6455, t = 0.75/(0.6455/2)
    assert st.paired_slope == pytest.approx(0.75)
    assert st.paired_t == pytest.approx(0.75 / (np.std([1, 0.5, 1.5, 0], ddof=1) / 2))
    assert st.nan_rate == 0.0 and st.n_dilemmas == 2


def test_nan_rows_drop_their_whole_dilemma_and_are_counted():
    dil, rows = hand_example()
    rows.loc[(rows["coeff"] == 1.0) & (rows["idx"] == 1), "pmass"] = 0.3  # row 1 not answering at c=1
    rows.loc[(rows["coeff"] == 1.0) & (rows["idx"] == 3), "logratio"] = np.nan  # NaN logits at c=1
    marked = mark_valid(rows)
    assert marked["valid"].sum() == 10 and marked["pair_valid"].sum() == 8
    st = summarize("m", rows, dil, "A", {})
    assert math.isnan(st.score_by_coeff[1.0])  # both dilemmas lost a row at c=1
    assert st.nan_rate == pytest.approx(2 / 12)


def test_gain_clips_reversed_steering():
    assert normalized_gain(2.0, -0.5, 0.0) == 0.0
    assert spearman_rho({-1.0: 3.0, 0.0: 2.0, 1.0: 1.0}) == pytest.approx(-1.0)
    assert math.isnan(paired_slope(pd.DataFrame({"idx": [0], "coeff": [0.0], "score": [1.0]}))[1])
