"""AntiPaSTO (the published successor of InnerPiSSA): its adapter, each loss term's defining property, its
ramps read from the fit's own step log (the production call), the published centred loss subspace and focus
factor, and training on both tiny models moving scores antisymmetrically at +-1. Each test was checked to
fail when its property is broken (u = +30 c+ c- flipped to -30; the ramp called as ramp(step / total, 1.0);
the uncentred basis as the default; the focus weight replaced by 1)."""

from __future__ import annotations

import math

import pytest
import torch

from bench.evaluation.evaluator import dilemma_prompts
from methods.antipasto import (
    MAX_ANGLE,
    AntiPaSTO,
    LossSchedule,
    fisher_scale,
    focus,
    loss_subspace,
    ordering_loss,
    ramp,
    separation_loss,
    tv_barrier,
)
from methods.innerpissa.layer import AdapterShape, InnerPiSSALinear, cayley
from tests.helpers import tiny_runner

SHAPE = AdapterShape(rank=8, rotate_v=True, scale_s="add", max_angle=MAX_ANGLE, init_std=0.003, s_init_mean=4e-4,
                     s_init_std=4e-4)


@pytest.fixture()
def layer():
    torch.manual_seed(0)
    return InnerPiSSALinear(torch.nn.Linear(32, 48), SHAPE, torch.Generator().manual_seed(0))


def test_alpha_zero_is_exactly_the_base_layer(layer):
    torch.manual_seed(0)
    base = torch.nn.Linear(32, 48)  # the fixture's Linear, rebuilt from the same seed
    x = torch.randn(4, 32)
    torch.testing.assert_close(layer.merged_weight(0.0), base.weight.detach(), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(layer(x), base(x), atol=1e-5, rtol=1e-5)
    assert layer.delta_s.mean() > 0  # delta_s ~ N(4e-4, (4e-4)^2): non-zero, breaks the +- symmetry


def test_reversal_is_the_transpose_and_the_clamp_bounds_the_angle(layer):
    with torch.no_grad():
        layer.theta_v.normal_(0, 5.0)  # far beyond the clamp
    a = layer.generator(layer.theta_v)
    assert a.abs().max() <= MAX_ANGLE + 1e-6 and math.isclose(MAX_ANGLE, 2 * math.tan(math.pi / 8))
    r_plus, r_minus = layer.rotation(layer.theta_v, 1.0), layer.rotation(layer.theta_v, -1.0)
    torch.testing.assert_close(r_minus, r_plus.T, atol=1e-5, rtol=0)  # R(-a) = R(a)^T
    torch.testing.assert_close(cayley(a) @ cayley(a).T, torch.eye(8), atol=1e-5, rtol=0)


def test_separation_falls_antiparallel_and_rises_parallel():
    d = torch.tensor([[1.0, 0.0, 0.0]])
    anti = separation_loss(d, -d, d, "antiparallel")
    parallel = separation_loss(d, d, d, "antiparallel")
    orthogonal = separation_loss(d, torch.tensor([[0.0, 1.0, 0.0]]), d, "antiparallel")
    assert anti < orthogonal < parallel and anti.item() == pytest.approx(-30.0)
    assert separation_loss(d, -d, d, "linear") < separation_loss(-d, d, d, "linear")  # ordered alternative


def test_tv_barrier_is_zero_below_its_entropy_threshold_and_positive_above():
    ref = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    near = ref + torch.tensor([[0.05, 0.0, 0.0, 0.0]])
    far = torch.tensor([[-5.0, -5.0, -5.0, 8.0]])
    penalty_near, v_near = tv_barrier(ref, near, 10.0)
    penalty_far, v_far = tv_barrier(ref, far, 10.0)
    assert penalty_near.item() == 0.0 and v_near.item() == 0.0
    assert penalty_far.item() > 0 and v_far.item() > 0
    sharp = torch.tensor([[20.0, 0.0, 0.0, 0.0]])  # low entropy: a lower threshold, the same move costs more
    _, v_sharp = tv_barrier(sharp, sharp + torch.tensor([[-20.0, 0.0, 0.0, 0.0]]), 10.0)
    assert v_sharp.item() > 0


def test_ordering_hinge_is_zero_only_when_the_ends_are_ordered_beyond_tau():
    tau = 0.1
    assert ordering_loss(torch.tensor([0.3]), torch.tensor([-0.3]), tau).item() == 0.0  # forward order
    assert ordering_loss(torch.tensor([-0.3]), torch.tensor([0.3]), tau).item() == 0.0  # the mirror image
    assert ordering_loss(torch.tensor([0.05]), torch.tensor([-0.3]), tau).item() > 0  # +1 inside the margin
    assert ordering_loss(torch.tensor([0.2]), torch.tensor([0.2]), tau).item() > 0  # same direction


def test_ramps_start_at_zero_and_fisher_has_its_floor():
    assert ramp(0, 100) == 0.0 and ramp(10, 100) == 0.5 and ramp(20, 100) == 1.0 and ramp(90, 100) == 1.0
    assert LossSchedule(3, 30).warm == 0.5 and LossSchedule(6, 30).focus_s == 0.25 and LossSchedule(0, 30).focus_s == 1
    d = torch.zeros(8, 4)
    d[:, 0] = torch.arange(8.0)
    assert fisher_scale(d).min().item() == pytest.approx(0.05)  # zero-variance dims floored, never divided by 0


def test_focus_is_the_share_of_the_change_inside_the_subspace():
    basis = torch.eye(4)[:, :2]  # the first two of four dimensions
    inside, outside = torch.tensor([[3.0, -4.0, 0.0, 0.0]]), torch.tensor([[0.0, 0.0, 1.0, 2.0]])
    assert focus(inside, basis).item() == pytest.approx(1.0) and focus(outside, basis).item() == pytest.approx(0.0)
    assert focus(torch.tensor([[1.0, 0.0, 1.0, 0.0]]), basis).item() == pytest.approx(2 ** -0.5)
    d = torch.tensor([[1.0, 0.0]])  # a focus weight below 1 shrinks the reward for moving antiparallel
    assert separation_loss(d, -d, d, "antiparallel") < separation_loss(d, -d, d, "antiparallel", 0.5, 0.5) < 0


def test_the_loss_subspace_is_centred_by_default_so_the_shared_direction_is_not_first():
    torch.manual_seed(0)
    shared = torch.zeros(16)
    shared[0] = 5.0
    diffs = shared + torch.randn(200, 16) * torch.linspace(2.0, 0.1, 16)  # a shared offset plus spread
    _, share_centred = loss_subspace(diffs, 4, centred=True)
    _, share_uncentred = loss_subspace(diffs, 4, centred=False)
    assert share_uncentred > 0.9 and share_centred < 0.5
    assert AntiPaSTO.Options().centred and AntiPaSTO.Options().focus  # the published loss is the default


TINY = {"epochs": "2", "batch_pairs": "4", "rank": "4", "lr": "1e-2", "subspace": "4", "first_layer": "0",
        "loss_layer": "0.7"}


def _fit(model_dir, data_dir, tmp_path, **options):
    runner = tiny_runner(model_dir, data_dir, tmp_path, methods=("antipasto",), n_pairs=16,
                         method_options={"antipasto": {**TINY, **options}})
    runner.prepare()
    return runner, runner.fit("antipasto")


def _steps(fitted) -> list[dict]:
    import pandas as pd

    return pd.read_csv(fitted.folder / "loss_curve.csv").to_dict("records")


def test_the_ramps_reach_full_weight_at_a_fifth_of_the_optimiser_steps(tiny_model_dir, small_data_dir, tmp_path):
    """Read from the step log the training loop itself writes: the weights the loss was called with."""
    _, fitted = _fit(tiny_model_dir, small_data_dir, tmp_path, epochs="3")
    steps = _steps(fitted)
    total = fitted.meta["describe"]["steps_planned"]
    assert len(steps) == total >= 10
    for i, h in enumerate(steps):  # h["step"] counts from 1: the i-th step was called at step i
        assert h["warm"] == pytest.approx(min(1.0, i / (0.2 * total))), (i, total)
        assert h["focus_s"] == pytest.approx(1 - 0.75 * h["warm"])
    assert steps[0]["warm"] == 0.0 and steps[math.ceil(0.2 * total)]["warm"] == 1.0


def test_the_fit_records_its_basis_and_focus_and_the_focus_changes_the_loss(tiny_model_dir, small_data_dir, tmp_path):
    _, published = _fit(tiny_model_dir, small_data_dir, tmp_path / "a")
    _, unfocused = _fit(tiny_model_dir, small_data_dir, tmp_path / "b", focus="false")
    _, uncentred = _fit(tiny_model_dir, small_data_dir, tmp_path / "c", centred="false")
    info = published.meta["describe"]
    assert info["basis"] == "centred" and uncentred.meta["describe"]["basis"] == "uncentred"
    assert info["basis_first_share"] < 0.5 < uncentred.meta["describe"]["basis_first_share"]
    assert set(info["focus_final"]) == {"plus", "minus"} and all(0 < f <= 1 for f in info["focus_final"].values())
    with_focus, without = _steps(published), _steps(unfocused)
    assert with_focus[0]["proj"] == pytest.approx(without[0]["proj"])  # s = 1 at step 0: focus^0 = 1
    assert with_focus[-1]["proj"] != pytest.approx(without[-1]["proj"], rel=1e-3)  # then the weight bites


@pytest.mark.parametrize("model_fixture", ["tiny_model_dir", "tiny_gemma3_dir"])
def test_training_moves_scores_antisymmetrically(request, model_fixture, small_data_dir, tmp_path):
    runner, fitted = _fit(request.getfixturevalue(model_fixture), small_data_dir, tmp_path)
    info = fitted.meta["describe"]
    assert info["epochs_run"] >= 1 and set(info["final_terms"]) == {"proj", "coh_plus", "coh_minus", "mono", "loss"}
    assert set(info["tokens_outside_margin"]) == {"plus", "minus"} and info["pairs"]["validation"] >= 1
    prompts = dilemma_prompts(runner.loaded.tokenizer, runner.dilemmas.rows.head(8), None)
    from bench.evaluation.evaluator import yes_no_logratios

    def scores(c):
        with fitted.steering.apply(runner.loaded.model, c) as model:
            return torch.tensor(yes_no_logratios(model, runner.loaded.tokenizer, prompts, 4, desc="t")[0])

    base, plus, minus = scores(0.0), scores(1.0), scores(-1.0)
    shift_plus, shift_minus = plus - base, minus - base
    assert shift_plus.abs().max() > 1e-5 and shift_minus.abs().max() > 1e-5
    # R(-a) = R(a)^T and S -+ delta_s: to first order the two ends move each dilemma in opposite directions
    assert torch.corrcoef(torch.stack([shift_plus, shift_minus]))[0, 1] < -0.5, (shift_plus, shift_minus)
