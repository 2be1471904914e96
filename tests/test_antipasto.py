"""AntiPaSTO (the published successor of InnerPiSSA): its adapter, each loss term's defining property, its
ramps, and training on both tiny models moving scores in opposite directions at +-1. Each test was checked
to fail when its property is broken (e.g. u = +30 c+ c- flipped to -30, the ramp starting at 1)."""

from __future__ import annotations

import math

import pytest
import torch

from bench.evaluation.evaluator import dilemma_prompts
from methods.antipasto import (
    MAX_ANGLE,
    fisher_scale,
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
    d = torch.zeros(8, 4)
    d[:, 0] = torch.arange(8.0)
    assert fisher_scale(d).min().item() == pytest.approx(0.05)  # zero-variance dims floored, never divided by 0


@pytest.mark.parametrize("model_fixture", ["tiny_model_dir", "tiny_gemma3_dir"])
def test_training_moves_scores_in_opposite_directions(request, model_fixture, small_data_dir, tmp_path):
    model_dir = request.getfixturevalue(model_fixture)
    runner = tiny_runner(model_dir, small_data_dir, tmp_path, methods=("antipasto",), n_pairs=16,
                         method_options={"antipasto": {"epochs": "2", "batch_pairs": "4", "rank": "4", "lr": "1e-2",
                                                       "subspace": "4", "first_layer": "0", "loss_layer": "0.7"}})
    runner.prepare()
    fitted = runner.fit("antipasto")
    info = fitted.meta["describe"]
    assert info["epochs_run"] >= 1 and set(info["final_terms"]) == {"proj", "coh_plus", "coh_minus", "mono", "loss"}
    assert set(info["tokens_outside_margin"]) == {"plus", "minus"} and info["pairs"]["validation"] >= 1
    prompts = dilemma_prompts(runner.loaded.tokenizer, runner.dilemmas.rows.head(8), None)
    from bench.evaluation.evaluator import yes_no_logratios

    def scores(c):
        with fitted.steering.apply(runner.loaded.model, c) as model:
            return torch.tensor(yes_no_logratios(model, runner.loaded.tokenizer, prompts, 4, desc="t")[0])

    base, plus, minus = scores(0.0), scores(1.0), scores(-1.0)
    shift_plus, shift_minus = (plus - base).mean(), (minus - base).mean()
    assert shift_plus.abs() > 1e-4 and shift_minus.abs() > 1e-4
    assert torch.sign(shift_plus) != torch.sign(shift_minus), (shift_plus, shift_minus)
