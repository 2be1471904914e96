import pandas as pd
import pytest
import torch

from bench.api.steering import NoSteering
from methods.innerpissa import InnerPiSSA, InnerPiSSASteering
from methods.innerpissa.layer import AdapterShape, InnerPiSSALinear, cayley
from methods.innerpissa.model import InnerPiSSAAdapters
from tests.helpers import last_logits, tiny_runner


@pytest.fixture()
def linear():
    torch.manual_seed(0)
    return torch.nn.Linear(32, 48, bias=True)


@pytest.mark.parametrize("scale_s", ["add2", "add", "mult", "none"])
@pytest.mark.parametrize("rotate_u", [False, True])
def test_c0_layer_equals_original(linear, scale_s, rotate_u):
    layer = InnerPiSSALinear(linear, AdapterShape(rank=8, rotate_u=rotate_u, scale_s=scale_s))
    x = torch.randn(5, 32)
    torch.testing.assert_close(layer(x), linear(x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(layer.merged_weight(0.0), linear.weight.detach(), atol=1e-5, rtol=1e-5)
    layer.coeff = 1.0
    if scale_s != "none" or rotate_u or layer.theta_v is not None:
        assert not torch.allclose(layer(x), linear(x), atol=1e-6)


def test_rotation_is_orthogonal_and_reversible(linear):
    layer = InnerPiSSALinear(linear, AdapterShape(rank=8))
    with torch.no_grad():
        layer.theta_v.normal_(0, 0.5)
    a = layer.generator(layer.theta_v)
    assert a.abs().max() <= 0.3 + 1e-6  # soft-bounded angle
    r_plus, r_minus = cayley(a), cayley(-a)
    eye = torch.eye(8)
    torch.testing.assert_close(r_plus.T @ r_plus, eye, atol=1e-5, rtol=0)
    torch.testing.assert_close(r_minus @ r_plus, eye, atol=1e-5, rtol=0)


def test_low_rank_path_matches_dense_weight(linear):
    layer = InnerPiSSALinear(linear, AdapterShape(rank=8, rotate_u=True, scale_s="mult", init_std=0.1))
    x = torch.randn(3, 32)
    for c in (-1.0, 0.5, 2.0):
        layer.coeff = c
        dense = x @ layer.merged_weight(c).T + layer.bias
        torch.testing.assert_close(layer(x), dense, atol=1e-5, rtol=1e-5)


def test_inference_path_is_the_training_path_and_tracks_parameter_updates(linear):
    """Without grad the layer is one dense matmul on a cached merged weight; it must equal the
    low-rank training path and be rebuilt when the coefficient or a parameter changes."""
    layer = InnerPiSSALinear(linear, AdapterShape(rank=8, rotate_u=True, init_std=0.1))
    x = torch.randn(4, 32)
    opt = torch.optim.SGD([p for p in layer.parameters() if p.requires_grad], lr=0.5)
    for c in (1.0, -1.0, 1.0):
        layer.coeff = c
        trained = layer(x)
        with torch.no_grad():
            fast = layer(x)
        torch.testing.assert_close(fast, trained.detach(), atol=1e-5, rtol=1e-5)
        trained.pow(2).sum().backward()  # an optimizer step must invalidate the cached weight
        opt.step()
        opt.zero_grad()
    with torch.no_grad():
        before = layer(x)
        layer.delta_s.add_(0.3)
        assert not torch.allclose(layer(x), before)


@pytest.fixture(scope="module")
def runner(tiny_model_dir, small_data_dir, tmp_path_factory):
    r = tiny_runner(tiny_model_dir, small_data_dir, tmp_path_factory.mktemp("ip"), methods=("innerpissa",),
                    n_pairs=16, method_options={"innerpissa": {"rank": 8, "modules": "o_proj,down_proj,up_proj",
                                                               "layers": "0,1", "epochs": 3, "lr": 0.02}})
    r.prepare()
    return r


def test_c0_reproduces_base_logits(runner):
    fitted = runner.fit("innerpissa")
    base = last_logits(runner, NoSteering(), 0.0)
    torch.testing.assert_close(last_logits(runner, fitted.steering, 0.0), base, atol=1e-4, rtol=1e-4)


def test_training_increases_separation_and_steers_both_ways(runner):
    fitted = runner.fit("innerpissa")
    curve = pd.read_csv(next((runner.cache / "artifacts").glob("innerpissa-*/loss_curve.csv")))
    assert {"steer_plus", "coh_plus", "sep_plus", "sep_minus", "loss"} <= set(curve.columns)
    first, last = curve.iloc[0], curve.iloc[-1]
    # +1 pushes the separation above the reference, -1 below it, more so after training
    assert (last["sep_plus"] - last["sep_minus"]) > (first["sep_plus"] - first["sep_minus"])
    steering = fitted.steering
    base = last_logits(runner, steering, 0.0)
    plus = last_logits(runner, steering, 1.0) - base
    minus = last_logits(runner, steering, -1.0) - base
    cos = torch.nn.functional.cosine_similarity(plus, minus, dim=-1)
    assert (cos < 0).all(), cos
    # The adapter's initialisation is small but non-zero, so +-1 move the logits in opposite directions
    # before any training too: training must make the move much larger than the untrained adapter's.
    method = InnerPiSSA(runner.options["innerpissa"])
    targets, _, shape = method._plan(runner.loaded)
    untrained = InnerPiSSASteering(InnerPiSSAAdapters(runner.loaded.model, targets, shape, seed=0), {})
    moved_untrained = (last_logits(runner, untrained, 1.0) - base).norm()
    assert plus.norm() > 3 * moved_untrained, (plus.norm(), moved_untrained)


def test_save_load_round_trip(runner):
    fitted = runner.fit("innerpissa")
    folder = next((runner.cache / "artifacts").glob("innerpissa-*"))
    from methods.innerpissa import InnerPiSSA

    method = InnerPiSSA(runner.options["innerpissa"])
    loaded = method.load(folder, _ctx(runner))
    for c in (-1.0, 1.0):
        torch.testing.assert_close(last_logits(runner, loaded, c), last_logits(runner, fitted.steering, c))


def _ctx(runner):
    from bench.api.steering import FitContext

    return FitContext(runner.loaded, runner.pairs, runner.cfg.seed, 4, fit_method=None)


@pytest.mark.parametrize("options", [
    {"rotate_u": True}, {"rotate_v": False}, {"scale_s": "mult"}, {"scale_s": "none"},
    {"loss": "margin"}, {"sample_wise_direction": False},
])
def test_each_ablation_switch_runs(runner, options):
    fitted = runner.fit("innerpissa", epochs=1, **options)
    assert fitted.meta["options"] | options == fitted.meta["options"]
    base = last_logits(runner, fitted.steering, 0.0, n_prompts=2)
    assert not torch.allclose(last_logits(runner, fitted.steering, 1.0, n_prompts=2), base)


def test_merge_into_weights_matches_the_adapter(tiny_model_dir, runner):
    from bench.model.loading import load_model

    fitted = runner.fit("innerpissa")
    steered = last_logits(runner, fitted.steering, 1.0)
    fresh = load_model(str(tiny_model_dir), dtype="fp32", device="cpu")
    fitted.steering.adapters.merge_into(fresh.model, 1.0)
    original, runner.loaded = runner.loaded, fresh
    try:
        merged = last_logits(runner, NoSteering(), 0.0)
    finally:
        runner.loaded = original
    torch.testing.assert_close(merged, steered, atol=1e-4, rtol=1e-4)
