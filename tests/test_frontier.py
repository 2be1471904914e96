"""The effect-cost frontier: c* for a ladder of budgets read from one KL-versus-c curve, rows carrying a
budget column with c=0 shared, the main tables unchanged at the main budget, and the frontier, dominance
and coherence-range tables recomputable from the stored rows."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from bench.config import parse_budgets
from bench.errors import SteerbenchError
from bench.evaluation.strength import matched_strength
from bench.results.frontier import verdict
from tests.helpers import tiny_runner

TARGET = "Virtue/Truthfulness"


class QuadraticProbe:
    """A KL probe whose KL is 0.02 c^2 (both signs): counts every evaluation."""

    def __init__(self):
        self.forward_passes = 0

    def kl(self, steering, coeff: float) -> float:
        self.forward_passes += 1
        return 0.02 * coeff**2


def test_a_ladder_of_budgets_is_read_from_one_curve():
    fresh = {}
    for b in (0.01, 0.03, 0.1, 0.3):
        probe = QuadraticProbe()
        res = matched_strength(probe, None, b)
        fresh[b] = (res, probe.forward_passes)
        assert res.reached and res.c_star == pytest.approx(math.sqrt(b / 0.02), rel=0.06)
    probe, curve, shared = QuadraticProbe(), {}, {}
    for b in (0.1, 0.01, 0.3, 0.03):  # any order: later budgets start from the curve the earlier ones measured
        before = probe.forward_passes
        shared[b] = (matched_strength(probe, None, b, curve=curve), probe.forward_passes - before)
    for b, (res, cost) in shared.items():
        assert res.reached and res.c_star == pytest.approx(fresh[b][0].c_star, rel=0.06)
    assert sum(c for _, c in shared.values()) < sum(c for _, c in fresh.values())
    again = QuadraticProbe()
    res = matched_strength(again, None, 0.03, curve=curve)  # already on the curve: no forward pass at all
    assert again.forward_passes == 0 and res.c_star == shared[0.03][0].c_star


def test_an_unreachable_budget_stays_unreachable_on_a_shared_curve():
    class Saturating(QuadraticProbe):
        def kl(self, steering, coeff):
            self.forward_passes += 1
            return min(0.02 * coeff**2, 0.05)

    probe, curve = Saturating(), {}
    assert matched_strength(probe, None, 0.01, curve=curve, max_coeff=64).reached
    res = matched_strength(probe, None, 0.1, curve=curve, max_coeff=64)
    assert not res.reached and math.isnan(res.c_star)


@pytest.mark.parametrize("spec, message", [
    ("0.1,abc", "KL budget 'abc' is not a number"),
    ("0.1,-0.3", "KL budget -0.3 is out of range"),
    ("0.1,0.1", "KL budget 0.1 is listed twice"),
])
def test_bad_budgets_fail_in_one_line(spec, message):
    with pytest.raises(SteerbenchError, match=message):
        parse_budgets(spec)


def test_budgets_at_raw_strength_are_refused_before_any_work(tiny_model_dir, small_data_dir, tmp_path):
    with pytest.raises(SteerbenchError, match="--kl-budgets 0.01,0.1 needs --strength matched"):
        tiny_runner(tiny_model_dir, small_data_dir, tmp_path, strength="raw", kl_budgets=[0.01, 0.1])


@pytest.mark.parametrize("signs, expected", [
    ([1, 1, 1], "A dominates"),
    ([-1, -1], "A dominated (by B)"),
    ([1, 0, -1], "crosses at 0.3"),
    ([0, -1, 1], "crosses at 0.3"),
    ([1, 0, 0], "undecided (A ahead at 1 of 3 budgets, tied at the rest)"),
    ([0, 0, 0], "undecided (tied at all 3 budgets)"),
])
def test_the_dominance_verdicts(signs, expected):
    budgets = [0.03, 0.1, 0.3][: len(signs)] if len(signs) == 3 else [0.03, 0.1]
    assert verdict("A", "B", budgets, signs) == expected
    assert verdict("A", "B", [], []) == "not comparable (never both in range)"


@pytest.fixture(scope="module")
def frontier_run(tiny_model_dir, small_data_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("frontier")
    runner = tiny_runner(tiny_model_dir, small_data_dir, tmp, methods=("repeng", "random", "prompting"),
                         strength="matched", kl_budget=0.01, kl_budgets=[0.003, 0.01], run_name="frontier",
                         n_dilemmas=12)
    return runner, runner.run(), tmp


def test_a_frontier_run_has_every_budget_with_c0_shared(frontier_run):
    runner, run_dir, _ = frontier_run
    rows = pd.read_parquet(run_dir / "rows.parquet")
    for method in ("repeng", "random"):
        mine = rows[rows["method"] == method]
        assert sorted(mine["budget"].unique()) == [0.003, 0.01]
        c0 = mine[mine["coeff"] == 0]
        assert c0["shared_c0"].all() and c0.groupby("budget").size().nunique() == 1  # the same c=0 rows per budget
        stars = {b: runner.status[method]["frontier"][f"{b:g}"]["strength"]["c_star"] for b in (0.003, 0.01)}
        assert stars[0.003] < stars[0.01]  # a smaller budget is a smaller strength
        plus = mine[mine["coeff"] == 1].groupby("budget")["effective_coeff"].first().abs()
        assert plus.to_dict() == pytest.approx(stars)
        curves = [p for p in runner.cache.rglob("kl-curve-*.json") if p.parent.name.startswith(method + "-")]
        assert len(curves) == 1  # one KL-versus-c curve per method, every budget read from it
        points = json.loads(curves[0].read_text())["points"]
        assert {round(c, 9) for c, _, _ in points} >= {round(c, 9) for c in stars.values()}
    assert set(rows.loc[rows["method"] == "prompting", "budget"]) == {0.01}  # discrete: its own KL, main budget


def test_the_main_table_is_the_single_budget_run(frontier_run, tiny_model_dir, small_data_dir):
    from bench.results.report import load_run, method_table

    runner, run_dir, tmp = frontier_run
    single = tiny_runner(tiny_model_dir, small_data_dir, tmp, methods=("repeng", "random", "prompting"),
                         strength="matched", kl_budget=0.01, run_name="single", n_dilemmas=12)
    single_dir = single.run()
    assert single.work["fits"] == 0 and single.work["evaluations"] == 0  # every chunk came from the frontier's cache
    a, b = (method_table(*load_run(d), TARGET, 0.0)[0] for d in (run_dir, single_dir))
    pd.testing.assert_frame_equal(a.drop(columns="note"), b.drop(columns="note"))


def test_frontier_tables_recompute_from_the_rows(frontier_run):
    from bench.results.tables import build_tables

    _, run_dir, _ = frontier_run
    build_tables(run_dir, TARGET, 0.0)
    for name in ("frontier", "dominance", "coherence_range"):
        for ext in ("md", "tex", "csv"):
            assert (run_dir / "tables" / f"{name}.{ext}").is_file()
    assert (run_dir / "plots" / "frontier.png").is_file() and (run_dir / "plots" / "frontier.pdf").is_file()
    table = pd.read_csv(run_dir / "tables" / "frontier.csv")
    assert len(table) == 3 * 2  # method x budget, the discrete method's other budget listed with its reason
    # An independent recomputation of repeng's Effect at each budget from rows.parquet and dilemmas.parquet.
    rows, dilemmas = pd.read_parquet(run_dir / "rows.parquet"), pd.read_parquet(run_dir / "dilemmas.parquet")
    has = dilemmas.assign(has=dilemmas["labels"].apply(lambda labs: TARGET in list(labs)))
    one = has.groupby("dilemma_idx")["has"].transform("sum") == 1
    label = dict(zip(has["idx"], np.where(has["has"], 1.0, -1.0)[:, None].ravel() * one.to_numpy()))
    for budget in (0.003, 0.01):
        mine = rows[(rows["method"] == "repeng") & (rows["budget"] == budget)].copy()
        mine["score"] = mine["idx"].map(label) * mine["logratio"]
        mine = mine[mine["idx"].map(label) != 0]
        pairs = mine.groupby(["coeff", "dilemma_idx"]).agg(score=("score", "mean"), n=("logratio", "count"))
        wide = pairs[pairs["n"] == 2]["score"].unstack("coeff").dropna()
        expected = float((wide[1.0] - wide[-1.0]).mean())
        got = table[(table["method"] == "repeng") & (table["KL budget"] == budget)]["Effect [95% CI]"].iloc[0]
        assert float(str(got).split()[0]) == pytest.approx(expected, abs=6e-4)


def test_the_cross_model_tables_gain_a_frontier_view(frontier_run, tmp_path):
    from bench.results.tables import cross_run_tables

    _, run_dir, _ = frontier_run
    out = cross_run_tables([run_dir], TARGET, tmp_path / "cross")
    frontier = pd.read_csv(out / "cross_models_frontier.csv")
    assert set(frontier["method"]) == {"repeng", "random", "prompting"}
    assert any("KL 0.003" in c for c in frontier.columns) and any("KL 0.01" in c for c in frontier.columns)
    dominance = pd.read_csv(out / "cross_models_dominance.csv")
    assert len(dominance) == 3 and {"A", "B"} <= set(dominance.columns)  # one row per pair of the frontier run
