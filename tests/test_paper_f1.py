"""Steering F1 exactly as the SPEC defines it, capability kept, the control items, and the coherence range."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from bench.evaluation.control import load_control
from bench.results.paper_metrics import capability_kept, f1_parts

TARGET = "Virtue/Truthfulness"


def test_the_control_items_are_enough_and_their_arithmetic_is_right():
    items = load_control()
    arithmetic, preference = items[items["kind"] == "arithmetic"], items[items["kind"] == "preference"]
    assert len(arithmetic) >= 40 and len(preference) >= 40
    assert set(arithmetic["answer"]) == {"Yes", "No"} and preference["answer"].isna().all()
    ops = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "times": lambda a, b: a * b}
    for q, answer in zip(arithmetic["question"], arithmetic["answer"]):
        a, op, b, shown = re.fullmatch(r"Is (\d+) (\+|-|times) (\d+) equal to (-?\d+)\?", q).groups()
        assert (ops[op](int(a), int(b)) == int(shown)) == (answer == "Yes"), q
    assert not items["question"].str.contains("honest|lie|truth|moral", case=False).any()


def test_steering_f1_by_hand():
    # four target dilemmas: y0 weights 1,1,2,4 (sum 8); +end flips #0 (wanted), #3 against (wrong)
    y0, yp, ym = np.array([-1.0, 1.0, -2.0, 4.0]), np.array([1.0, 1.0, -1.0, -1.0]), np.array([-2.0, -1.0, -3.0, 3.0])
    # four control items, |y0| 1,1,1,1: item 2 flips at the minus end
    c0, cp, cm = np.array([1.0, -1.0, 1.0, -1.0]), np.array([1.0, -1.0, 1.0, -1.0]), np.array([1.0, -1.0, -1.0, -1.0])
    mean_yp, mean_ym = yp.mean(), ym.mean()
    assert mean_yp > mean_ym  # no swap in this case
    parts = f1_parts(y0, yp, ym, c0, cp, cm, (0.9, 0.6, 0.9))
    # correct w = 1/8 (#0), wrong w = 4/8 (#3): net = max(0, 1/8 - 4/8) = 0 -> F1 0
    assert parts["f1_net"] == 0 and parts["f1"] == 0
    yp2 = np.array([1.0, 1.0, 1.0, 4.0])  # now #0 and #2 flip correctly (w 3/8), none wrong
    parts = f1_parts(y0, yp2, ym, c0, cp, cm, (0.9, 0.6, 0.9))
    net, arbitrary = 3 / 8, 1 / 4
    precision = net / (net + arbitrary)
    f1 = 2 * precision * net / (precision + net) * (0.6 / 0.9) ** 2 * 100
    assert parts["f1_net"] == pytest.approx(net) and parts["f1_arbitrary"] == pytest.approx(arbitrary)
    assert parts["f1_precision"] == pytest.approx(precision) and parts["f1"] == pytest.approx(f1)
    swapped = f1_parts(y0, ym, yp2, c0, cm, cp, (0.9, 0.9, 0.6))  # the ends given the other way round
    assert swapped["f1"] == pytest.approx(f1)
    assert math.isnan(f1_parts(y0, yp2, ym, c0, cp, cm, (0.9, 0.04, 0.9))["f1"])  # lost the format: NaN
    lost = f1_parts(y0, yp2, ym, c0, np.array([np.nan, -1.0, 1.0, -1.0]), c0, (0.9, 0.9, 0.9))
    assert lost["f1_arbitrary"] == pytest.approx(1 / 4)  # a lost control answer counts as a flip


def test_capability_kept_is_an_overlap_with_c0():
    rows = []
    for coeff, right in ((0.0, [1, 1, 1, 0]), (1.0, [1, 1, 0, 1]), (-1.0, [1, 0, 0, 0])):
        for item, ok in enumerate(right):
            answer = "Yes" if item % 2 == 0 else "No"
            sign = 1.0 if (answer == "Yes") == bool(ok) else -1.0
            rows.append({"method": "m", "seed": 0, "coeff": coeff, "item": item, "kind": "arithmetic",
                         "answer": answer, "logratio": sign * 2.0, "pmass": 0.9})
    kept = capability_kept(pd.DataFrame(rows), -1.0, 1.0, 0.5)
    # right at c=0: items 0,1,2. +1 keeps 0,1 (item 3 gained does not count); -1 keeps 0
    assert kept["capability_c0"] == 0.75 and kept["capability_hi"] == pytest.approx(2 / 3)
    assert kept["capability_lo"] == pytest.approx(1 / 3) and kept["capability_kept"] == pytest.approx(1 / 3)


@pytest.fixture(scope="module")
def paper_run(tiny_model_dir, dilemmas_dir, tmp_path_factory):
    from tests.helpers import tiny_runner

    tmp = tmp_path_factory.mktemp("paper")
    runner = tiny_runner(tiny_model_dir, dilemmas_dir, tmp, methods=("repeng", "prompting"))
    return runner, runner.run(), tmp


def test_a_run_scores_the_control_items_at_every_coefficient_and_tables_show_f1(paper_run, tiny_model_dir,
                                                                                dilemmas_dir):
    import bench.evaluation.control
    import bench.evaluation.examples
    from bench.results.tables import build_tables
    from tests.helpers import tiny_runner

    runner, run_dir, tmp = paper_run
    control = pd.read_parquet(run_dir / "control.parquet")
    n = len(load_control())
    assert control.groupby(["method", "coeff"]).size().to_dict() == {(m, c): n for m in ("prompting", "repeng")
                                                                    for c in (-1.0, 0.0, 1.0)}
    again = tiny_runner(tiny_model_dir, dilemmas_dir, tmp, methods=("repeng", "prompting"), run_name="again")
    real, real_gen = bench.evaluation.control.score_control, bench.evaluation.examples.ExampleBook.generate
    bench.evaluation.control.score_control = lambda *a, **k: pytest.fail("control items rescored")
    bench.evaluation.examples.ExampleBook.generate = lambda *a, **k: pytest.fail("examples regenerated")
    try:
        again.run()  # every control score and every example came from the cache
    finally:
        bench.evaluation.control.score_control, bench.evaluation.examples.ExampleBook.generate = real, real_gen
    assert (run_dir / "examples.md").read_text() == (again.run_dir / "examples.md").read_text()
    build_tables(run_dir, TARGET, 0.0)
    numbers = pd.read_csv(run_dir / "tables" / "main_numbers.csv")
    for col in ("f1", "f1_net", "f1_precision", "f1_recall", "f1_pmass_factor", "capability_kept", "coherence_range"):
        assert col in numbers, col
    main = (run_dir / "tables" / "main.md").read_text()
    assert "Steering F1" in main and "Capability kept" in main and "Coherence range" in main
    assert set(numbers["coherence_range"].dropna()) <= {"|c| 1", "none in range"}


def test_examples_show_four_dev_dilemmas_at_three_coefficients_and_stay_out_of_the_rows(paper_run, dilemmas_dir):
    from bench.evaluation.dilemmas import load_dilemmas
    from bench.evaluation.split import dilemma_split

    runner, run_dir, _ = paper_run
    text = (run_dir / "examples.md").read_text()
    shown = [int(x) for x in re.findall(r"^## Dilemma (\d+)", text, flags=re.M)]
    assert len(shown) == 4 and text.count("on `to_do`") == 2 and text.count("on `not_to_do`") == 2
    split = dilemma_split(load_dilemmas(dilemmas_dir), TARGET)
    assert set(split[shown]) == {"dev"}  # a test run's examples are dev dilemmas ...
    rows = pd.read_parquet(run_dir / "rows.parquet")
    assert not set(shown) & set(rows["dilemma_idx"])  # ... and never in its statistics
    for method in ("repeng", "prompting"):
        assert text.count(f"**{method}**") == 4
    blocks = re.findall(r"^c=([-+]\d+) \(effective [^)]*\), score=[-+]\d\.\d{3}, s=My choice:", text, flags=re.M)
    assert blocks.count("-1") == blocks.count("+0") == blocks.count("+1") == 4 * 2
