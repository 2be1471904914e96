import math

import numpy as np
import pandas as pd
import pytest

from bench.api.residual import ResidualSteering
from bench.api.steering import Steering
from bench.evaluation.strength import KLProbe, matched_strength
from tests.helpers import tiny_runner


class Inert(Steering):
    """Accepts any coefficient and changes nothing: its KL never grows."""

    def save(self, path):
        pass


@pytest.fixture()
def probe(tiny, monkeypatch):
    import bench.evaluation.evaluator

    # The KL search must never see DailyDilemmas: the only ways in are reading its CSVs and rendering its
    # prompts, so both fail loudly here (the tests below would then error).
    monkeypatch.setattr(pd, "read_csv", lambda *a, **k: pytest.fail("read a CSV (DailyDilemmas)"))
    monkeypatch.setattr(bench.evaluation.evaluator, "dilemma_prompts", lambda *a, **k: pytest.fail("rendered a dilemma"))
    probe = KLProbe(tiny, batch_size=8)
    probe.kl(Inert(), 1.0)  # the probe is exercised under the guard
    return probe


def test_finds_c_star_for_a_monotone_method(tiny, probe):
    rng = np.random.default_rng(0)
    v = rng.standard_normal(tiny.model.config.hidden_size).astype(np.float32)
    steering = ResidualSteering({0: v / np.linalg.norm(v)}, tiny.model.config.model_type)
    kls = [probe.kl(steering, c) for c in (0.5, 1.0, 2.0)]
    assert kls[0] < kls[1] < kls[2]
    # the tiny random model's KL saturates near 0.026 nats/token (RMSNorm), so the budget sits below that
    res = matched_strength(probe, steering, budget=0.01)
    assert res.reached and abs(res.kl - 0.01) <= 0.1 * 0.01 and res.c_star > 0
    assert res.forward_passes > 0


def test_unreachable_budget_is_reported_not_looped(probe):
    res = matched_strength(probe, Inert(), budget=0.1, max_coeff=64)
    assert not res.reached and math.isnan(res.c_star) and res.kl == 0.0
    assert res.forward_passes <= 2 * 8 * 2 * 3  # a bounded number of doublings, both signs


def test_matched_run_scales_coefficients_by_c_star(tiny_model_dir, small_data_dir, tmp_path):
    runner = tiny_runner(tiny_model_dir, small_data_dir, tmp_path, methods=("random", "prompting"),
                         strength="matched", kl_budget=0.01, run_name="m")
    run_dir = runner.run()
    rows = pd.read_parquet(run_dir / "rows.parquet")
    strength = runner.status["random"]["strength"]
    assert strength["reached"] and abs(strength["kl"] - 0.01) <= 0.001
    sign = runner.status["random"]["sign"]
    plus = rows[(rows["method"] == "random") & (rows["coeff"] == 1.0)]["effective_coeff"].unique()
    assert plus.tolist() == [pytest.approx(sign * strength["c_star"])]
    prompting = runner.status["prompting"]["strength"]
    assert prompting["discrete"] and prompting["kl"] > 0  # the persona prompt's KL is measured, not 0
    summary = (run_dir / "summary.md").read_text()
    assert "matched strength" in summary and "c*" in summary and "KL" in summary
    from bench.results.tables import build_tables

    build_tables(run_dir, "Virtue/Truthfulness")
    assert (run_dir / "plots" / "effect_vs_kl.png").is_file()  # the KL axis of a matched run


def test_prompt_steering_is_measured_with_its_own_system_message(tiny, probe):
    from methods.prompting import PromptSteering

    steering = PromptSteering("Pretend you're an honest person.", "Pretend you're a dishonest person.")
    assert probe.kl(steering, 0.0) == pytest.approx(0.0, abs=1e-6)
    assert probe.kl(steering, 1.0) > 1e-4


def test_c_star_and_dnll_use_disjoint_halves_of_the_held_out_texts(tiny, monkeypatch):
    """c* is searched on the calibration half, dNLL measured on the evaluation half, never the other way."""
    import bench.evaluation.evaluator as ev

    calib, evaluation = ev.load_heldout(ev.CALIBRATION), ev.load_heldout(ev.EVALUATION)
    assert len(calib) >= 40 and len(evaluation) >= 40
    assert not {p for p, _ in calib} & {p for p, _ in evaluation}
    assert not {r for _, r in calib} & {r for _, r in evaluation}
    assert KLProbe(tiny, batch_size=8).texts == calib
    seen = []
    real = ev.continuation_logprobs
    monkeypatch.setattr(ev, "continuation_logprobs", lambda m, t, heads, conts, bs: (seen.extend(conts), real(m, t, heads, conts, bs))[1])
    ev.heldout_nll(tiny.model, tiny.tokenizer)
    assert seen == [r for _, r in evaluation]
