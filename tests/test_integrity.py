"""The model-integrity guard (``bench.running.integrity``): a plugin that leaves the shared model changed, or
that claims a first steered layer above the one it steers, stops the run with one line naming it."""

from __future__ import annotations

import contextlib
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

import methods
from bench.api.residual import ResidualSteering
from bench.api.steering import FitContext, Steering, SteeringMethod
from bench.errors import SteerbenchError
from bench.model.layers import decoder_layers
from bench.running.integrity import differences, fingerprint
from tests.helpers import last_logits, tiny_runner


def _vector(ctx: FitContext, layer: int) -> dict[int, np.ndarray]:
    return {layer: np.full(ctx.loaded.model.config.hidden_size, 0.5, dtype=np.float32)}


class HookLeft(Steering):
    """Steers with a forward hook and forgets to remove it."""

    def steer(self, model, coeff):
        decoder_layers(model)[1].register_forward_hook(lambda module, args, out: None)
        return contextlib.nullcontext(model)

    def save(self, path: Path) -> None:
        pass


class TooHigh(ResidualSteering):
    """Adds to layer 0's output, but says the first steered layer is 1 (layer 1's input does change)."""

    def first_steered_layer(self) -> int | None:
        return 1


class Broken(SteeringMethod):
    """One plugin, three ways to be wrong (``Options.fault``), and one way to be right (``none``)."""

    name = "broken"
    seeded = False

    @dataclass
    class Options:
        fault: str = "none"  # none | hook | weight | boundary

    def fit(self, ctx: FitContext) -> Steering:
        if self.options.fault == "weight":
            with torch.no_grad():  # "fine-tunes" one weight in place and never restores it
                decoder_layers(ctx.loaded.model)[1].mlp.down_proj.weight[0, 0] += 1.0
        return self.load(Path("."), ctx)

    def load(self, path: Path, ctx: FitContext) -> Steering:
        if self.options.fault == "hook":
            return HookLeft()
        cls = TooHigh if self.options.fault == "boundary" else ResidualSteering
        return cls(_vector(ctx, 0), ctx.loaded.model.config.model_type)


@pytest.fixture()
def broken(monkeypatch):
    module = types.ModuleType("methods.broken_for_tests")
    module.Broken = Broken
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(methods.REGISTRY, "broken", f"{module.__name__}:Broken")
    return "broken"


@pytest.fixture()
def runner(broken, tiny_model_dir, small_data_dir, tmp_path):
    return tiny_runner(tiny_model_dir, small_data_dir, tmp_path, methods=(broken,), n_dilemmas=2, n_pairs=4).prepare()


def test_a_well_behaved_plugin_passes(runner):
    fitted = runner.fit("broken")
    assert isinstance(fitted.steering, ResidualSteering) and fitted.steering.first_steered_layer() == 0
    base = last_logits(runner, fitted.steering, 0.0, n_prompts=2)
    assert not torch.equal(last_logits(runner, fitted.steering, 1.0, n_prompts=2), base)  # it steers, and
    assert torch.equal(last_logits(runner, fitted.steering, 0.0, n_prompts=2), base)  # leaves nothing behind


def test_a_hook_left_behind_after_apply_stops_the_run(runner):
    steering = runner.fit("broken", fault="hook").steering
    with pytest.raises(SteerbenchError) as err:
        with steering.apply(runner.loaded.model, 1.0):
            pass
    assert str(err.value) == ("model integrity: broken left the model changed after apply(c=+1): "
                              "a forward hook is left on model.layers.1")


def test_a_weight_changed_in_fit_stops_the_run(runner):
    with pytest.raises(SteerbenchError) as err:
        runner.fit("broken", fault="weight")
    assert str(err.value) == ("model integrity: broken left the model changed after fit(): "
                              "parameter model.layers.1.mlp.down_proj.weight differs")


def test_a_first_steered_layer_that_is_too_high_stops_the_run(runner):
    with pytest.raises(SteerbenchError) as err:
        runner.fit("broken", fault="boundary")
    assert str(err.value) == ("model integrity: broken says its first steered layer is 1, but the hidden state "
                              "entering layer 1 changed under steering (the layers below are steered): fix "
                              "first_steered_layer()")


def test_a_failed_method_that_left_the_model_changed_stops_the_whole_run(runner, monkeypatch):
    """A plugin that raises is normally recorded as failed and the run goes on: not when it left the model
    changed, since every later method would be scored on a corrupted model."""
    def fit(self, ctx):
        decoder_layers(ctx.loaded.model)[0].register_forward_pre_hook(lambda module, args: None)
        raise RuntimeError("diverged")

    monkeypatch.setattr(Broken, "fit", fit)
    with pytest.raises(SteerbenchError, match=r"after a failed fit\(\): a forward pre-hook is left on model.layers.0"):
        runner.fit("broken")


def test_the_fingerprint_sees_each_kind_of_change(tiny):
    model = tiny.model
    before = fingerprint(model)
    assert differences(before, fingerprint(model)) == []
    layer = decoder_layers(model)[0]
    handle = layer.self_attn.register_forward_hook(lambda *a: None)
    layer.mlp.forward = lambda x: x
    original = layer.mlp.act_fn
    layer.mlp.act_fn = torch.nn.Identity()
    model.train()
    found = differences(before, fingerprint(model))
    assert "a forward hook is left on model.layers.0.self_attn" in found
    assert "model.layers.0.mlp.forward is overridden" in found
    assert any(f.startswith("module model.layers.0.mlp.act_fn is a torch.nn.modules.linear.Identity") for f in found)
    assert "the model itself is left in training mode" in found
    handle.remove()
    del layer.mlp.forward
    layer.mlp.act_fn = original
    model.eval()
    with torch.no_grad():
        model.lm_head.weight.data[0, 0] += 1e-3  # through .data: no write counter moves, the sums still see it
    assert differences(before, fingerprint(model)) == ["parameter model.embed_tokens.weight differs"]  # tied
