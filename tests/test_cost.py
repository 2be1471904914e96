"""The start-up wall-time estimate follows the plan: fits already cached cost nothing, more prompts and
coefficients cost more, a plugin without a reference fit time is named; and a run logs it before any fit."""

from __future__ import annotations

import logging

import pytest

from bench.running.cost import MethodPlan, human, load_reference, reference_seconds


def plan(name, fit=True, evaluations=2, sign=True):
    return MethodPlan(name, n_fits=int(fit), kl_search=True, sign=sign, evaluations=evaluations)


def test_the_reference_plan_reproduces_the_reference_run():
    ref = load_reference()
    plans = [plan(m, sign=m != "random") for m in ref["fit_seconds"]]
    seconds, notes = reference_seconds(ref, plans, ref["n_prompts"], ref["n_pairs"], continuations=True,
                                       calibration_pairs=ref.get("calibration_pairs", 32))  # as the reference ran
    assert notes == ()
    assert abs(seconds - ref["wall_seconds"]) < 0.1 * ref["wall_seconds"], (seconds, ref["wall_seconds"])


def test_cached_fits_prompts_and_coefficients_move_the_estimate():
    ref = load_reference()
    base, _ = reference_seconds(ref, [plan("lora")], 1192, 200, True)
    cached, _ = reference_seconds(ref, [plan("lora", fit=False)], 1192, 200, True)
    assert base - cached == pytest.approx(ref["fit_seconds"]["lora"])
    fewer, _ = reference_seconds(ref, [plan("lora")], 48, 200, True)
    more_coeffs, _ = reference_seconds(ref, [plan("lora", evaluations=4)], 1192, 200, True)
    assert fewer < base < more_coeffs
    _, notes = reference_seconds(ref, [plan("mean-diff")], 1192, 200, True)
    assert notes and notes[0].startswith("mean-diff has no reference fit time")


def test_seeds_multiply_searches_calibrations_and_probes_and_calibration_scales_with_its_pairs():
    ref = load_reference()
    one, _ = reference_seconds(ref, [plan("lora")], 1192, 200, True)
    three = MethodPlan("lora", n_fits=3, kl_search=True, sign=True, evaluations=6, n_seeds=3)
    seeds, _ = reference_seconds(ref, [three], 1192, 200, True)
    per_seed = ref["kl_seconds"].get("lora", ref["kl_seconds"]["other"]) + ref["probe_seconds"]
    assert seeds - one > 2 * (ref["fit_seconds"]["lora"] + per_seed)
    few, _ = reference_seconds(ref, [plan("lora")], 1192, 200, True, calibration_pairs=32)
    assert one > few


def test_the_fit_scales_with_the_epochs_it_will_train():
    ref = load_reference()
    at = {e: reference_seconds(ref, [MethodPlan("antipasto", 1, True, True, 2, epochs=e)], 298, 200, True)[0]
          for e in (3, 9, 27)}
    fit = ref["fit_seconds"]["antipasto"]
    assert at[9] - at[3] == pytest.approx(2 * fit) and at[27] - at[3] == pytest.approx(8 * fit)
    unknown, _ = reference_seconds(ref, [MethodPlan("antipasto", 1, True, True, 2)], 298, 200, True)
    assert unknown == pytest.approx(at[3])  # no epochs known: the reference fit as it was timed


@pytest.mark.parametrize("given, expected", [({}, 3), ({"epochs": 9}, 9)])
def test_a_run_plans_the_epochs_its_fit_will_train(tiny_model_dir, small_data_dir, tmp_path, given, expected):
    """Runner.plan, which the start-up estimate reads: AntiPaSTO's machine default (0) is resolved first."""
    from bench.config import RunConfig
    from bench.running.runner import Runner

    cfg = RunConfig(model=str(tiny_model_dir), methods=["antipasto", "repeng"], n_dilemmas=4, n_pairs=8,
                    data_dir=str(small_data_dir), results_dir=str(tmp_path), dtype="fp32", device="cpu",
                    method_options={"antipasto": given})
    plans = {p.name: p for p in Runner(cfg).plan()}
    assert plans["antipasto"].epochs == expected and plans["repeng"].epochs is None


def test_human_durations():
    assert [human(s) for s in (12, 600, 2400, 18000)] == ["12 s", "10 min", "40 min", "5.0 h"]


@pytest.mark.slow  # a whole run (make test-fast leaves it out)
def test_a_run_logs_its_estimate_before_the_first_fit(tiny_model_dir, small_data_dir, tmp_path, caplog):
    from bench.config import RunConfig
    from bench.running.runner import Runner

    cfg = RunConfig(model=str(tiny_model_dir), methods=["random"], n_dilemmas=4, n_pairs=8, data_dir=str(small_data_dir),
                    results_dir=str(tmp_path), dtype="fp32", device="cpu")
    with caplog.at_level(logging.INFO):
        Runner(cfg).run()
    messages = [r.getMessage() for r in caplog.records]
    first_estimate = next(i for i, m in enumerate(messages) if m.startswith("estimated wall time: about "))
    first_fit = next(i for i, m in enumerate(messages) if "fitting on" in m)
    assert first_estimate < first_fit
    assert "(fp32, " in messages[first_estimate]
