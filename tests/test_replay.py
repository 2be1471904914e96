"""Layer replay (``bench.model.replay``): layers below a steering's first steered layer are replayed from one
unsteered pass, and every number the harness computes through it is the same bit for bit."""


import numpy as np
import pytest
import torch

from bench.api.residual import ResidualSteering
from bench.errors import SteerbenchError
from bench.evaluation.evaluator import dilemma_prompts, heldout_nll, score_prompts
from bench.evaluation.strength import KLProbe
from bench.model.chat import DEFAULT_SYSTEM
from bench.model.layers import decoder_layers, lowest_layer
from bench.model.loading import load_model
from tests.helpers import tiny_runner, wide_window_copy

# Every built-in method that steers from a layer on, set to start at layer 1 of the tiny 3-layer Gemma3.
FROM_LAYER_1 = {
    "random": {"layers": "1-2"},
    "repeng": {"layers": "1-2"},
    "svd-steer": {"layers": "1-2"},
    "innerpissa": {"layers": "1-2", "measure_layer": -1, "rank": 8},
    "lora": {"layers": "1-2", "epochs": "1", "lr": "0.01"},
}


@pytest.fixture(scope="module", params=["window-16", "wide-window"])
def gemma_dir(request, tiny_gemma3_dir, tmp_path_factory):
    """The tiny Gemma3 as is (its sliding window is shorter than the prompts: the full-prompt path) and
    with a window longer than every prompt (the shared-prefix path, KV caches and all)."""
    if request.param == "window-16":
        return tiny_gemma3_dir
    return wide_window_copy(tiny_gemma3_dir, tmp_path_factory.mktemp("wide-window"))


def test_every_layer_steered_method_scores_the_same_with_replay(gemma_dir, small_data_dir, tmp_path):
    runner = tiny_runner(gemma_dir, small_data_dir, tmp_path, methods=tuple(FROM_LAYER_1), n_dilemmas=4, n_pairs=8,
                         method_options=FROM_LAYER_1).prepare()
    loaded, tok = runner.loaded, runner.loaded.tokenizer
    prompts = dilemma_prompts(tok, runner.dilemmas.rows, DEFAULT_SYSTEM)
    groups = runner.dilemmas.rows["dilemma_idx"].tolist()
    probe = KLProbe(loaded, 4)
    for name in FROM_LAYER_1:
        steering = runner.fit(name).steering
        assert steering.first_steered_layer() == 1, name
        results = {}
        for replay in (False, True):
            loaded.replay.enabled = replay
            for coeff in (-1.0, 1.0):
                with steering.apply(loaded.model, coeff) as model:
                    scores = loaded.steered_loop(steering, coeff, ("scores", name), lambda: score_prompts(
                        model, tok, prompts, 4, groups=groups))
                    nll = loaded.steered_loop(steering, coeff, ("nll", name), lambda: heldout_nll(model, tok))
                results[replay, coeff] = scores, nll, probe.kl(steering, coeff)
        for coeff in (-1.0, 1.0):
            full, replayed = results[False, coeff], results[True, coeff]
            assert full[0].equals(replayed[0]), (name, coeff)  # every logratio and mass, exactly
            assert full[1] == replayed[1] and full[2] == replayed[2], (name, coeff)
        assert not full[0]["logratio"].equals(results[False, -1.0][0]["logratio"])  # the steering does steer


def test_replay_runs_fewer_layers_and_restores_the_model(tiny_gemma3_dir):
    gemma = load_model(str(tiny_gemma3_dir), dtype="fp32", device="cpu")
    layers = decoder_layers(gemma.model)
    calls = {i: 0 for i in range(len(layers))}
    for i, layer in enumerate(layers):
        # the MLP runs only when its layer really computes (a switched-off layer returns its input)
        layer.mlp.register_forward_hook(lambda module, args, out, i=i: calls.__setitem__(i, calls[i] + 1))
    vector = ResidualSteering({2: np.ones(gemma.model.config.hidden_size, dtype=np.float32)}, "gemma3_text")
    prompts = ["Is water wet?", "Is fire cold? Answer plainly.", "Name a colour."]

    def loop():
        return score_prompts(model, gemma.tokenizer, prompts, 2)

    with vector.apply(gemma.model, 1.0) as model:
        gemma.steered_loop(vector, 1.0, "q", loop)  # records (layers 0-1 run), then replays (layer 2 runs)
        before = dict(calls)
        gemma.steered_loop(vector, 1.0, "q", loop)  # replays only
    ran = {i: calls[i] - before[i] for i in calls}
    assert ran == {0: 0, 1: 0, 2: 2}  # two batches, through layer 2 only
    assert all("forward" not in layer.__dict__ for layer in layers)  # every layer is itself again
    out = gemma.model(torch.tensor([[1, 2, 3]])).logits
    assert torch.isfinite(out).all()


def test_a_loop_that_changes_its_tokens_fails_loudly(tiny_gemma3_dir):
    gemma = load_model(str(tiny_gemma3_dir), dtype="fp32", device="cpu")
    vector = ResidualSteering({1: np.ones(gemma.model.config.hidden_size, dtype=np.float32)}, "gemma3_text")
    texts = iter([["Is water wet?"], ["Is fire cold?"]])

    def loop():
        return score_prompts(gemma.model, gemma.tokenizer, next(texts), 1)

    with pytest.raises(SteerbenchError, match="other tokens than the recorded"):
        gemma.steered_loop(vector, 1.0, "same key", loop)
    assert all("forward" not in layer.__dict__ for layer in decoder_layers(gemma.model))


def test_no_replay_without_a_first_layer_or_at_c0(tiny_gemma3_dir):
    gemma = load_model(str(tiny_gemma3_dir), dtype="fp32", device="cpu")
    vector = ResidualSteering({1: np.ones(gemma.model.config.hidden_size, dtype=np.float32)}, "gemma3_text")
    ran = []
    gemma.steered_loop(vector, 0.0, "c0", lambda: ran.append(gemma.replay.recording))
    assert ran == [False] and not gemma.replay._recordings


def test_lowest_layer_reads_both_target_spellings():
    assert lowest_layer(["12.mlp.down_proj", "9.self_attn.o_proj"]) == 9
    assert lowest_layer(["model.layers.14.mlp.up_proj", "model.layers.3.self_attn.q_proj"]) == 3
    assert lowest_layer(["lm_head"]) is None and lowest_layer([]) is None
