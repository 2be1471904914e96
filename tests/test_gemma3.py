"""The second real model's architecture through the evaluator and every method, without its weights.

Gemma-3-270M differs from the embedded SmolLM2 where the harness cares: sliding-window attention on
most layers (the shared-prefix path must fall back to full prompts), tied embeddings, and no chat
template (every prompt is the plain-text fallback). A tiny random Gemma3 with the same traits
(``tiny_gemma3_dir``) stands in for it in CI.
"""

import json
from contextlib import nullcontext

import numpy as np
import pandas as pd
import pytest

from bench.api.residual import ResidualSteering
from bench.evaluation.dilemmas import load_dilemmas
from bench.evaluation.evaluator import dilemma_prompts, yes_no_logratios
from bench.model.chat import DEFAULT_SYSTEM, has_chat_template
from bench.model.loading import load_model
from bench.model.padding import encode
from bench.model.prefix_cache import PrefixPlan, supports_prefix_cache
from methods import method_names
from tests.helpers import tiny_runner, wide_window_copy


@pytest.fixture(scope="module")
def gemma(tiny_gemma3_dir):
    return load_model(str(tiny_gemma3_dir), dtype="fp32", device="cpu")


def test_tiny_gemma3_has_the_traits_it_stands_for(gemma, small_data_dir):
    config = gemma.model.config
    assert type(gemma.model).__name__ == "Gemma3ForCausalLM"
    assert "sliding_attention" in config.layer_types and "full_attention" in config.layer_types
    assert gemma.model.lm_head.weight.data_ptr() == gemma.model.get_input_embeddings().weight.data_ptr()
    assert not has_chat_template(gemma.tokenizer)
    prompts = dilemma_prompts(gemma.tokenizer, load_dilemmas(small_data_dir).rows, DEFAULT_SYSTEM)
    assert all(p.startswith(f"System: {DEFAULT_SYSTEM}") and p.endswith("Assistant: My choice:") for p in prompts)
    # every prompt is longer than the window, so the sliding layers really mask
    assert min(len(gemma.tokenizer(p)["input_ids"]) for p in prompts) > config.sliding_window


def test_gemma3_scores_are_batch_invariant_and_the_prefix_path_falls_back(gemma, small_data_dir):
    rows = load_dilemmas(small_data_dir).rows
    prompts = dilemma_prompts(gemma.tokenizer, rows, DEFAULT_SYSTEM)
    plan = PrefixPlan.build(encode(gemma.tokenizer, prompts), rows["dilemma_idx"].tolist())
    assert not supports_prefix_cache(gemma.model, plan)  # the window (16) is shorter than the prompts
    single, _ = yes_no_logratios(gemma.model, gemma.tokenizer, prompts, batch_size=1)
    batched, _ = yes_no_logratios(gemma.model, gemma.tokenizer, prompts, batch_size=8)
    assert np.isfinite(single).all() and np.ptp(single) > 0
    np.testing.assert_allclose(batched, single, atol=1e-4)  # left padding under sliding-window masks
    calls = []
    grouped, _ = yes_no_logratios(gemma.model, gemma.tokenizer, prompts, batch_size=8,
                                  groups=rows["dilemma_idx"].tolist(), on_forward=lambda: calls.append(1))
    np.testing.assert_array_equal(grouped, batched)  # the fall-back is the full-prompt path itself
    assert len(calls) == -(-len(prompts) // 8)  # one forward per batch of full prompts


def test_gemma3_shares_prefixes_when_the_window_holds_every_prompt(tiny_gemma3_dir, small_data_dir, tmp_path):
    """Gemma-3-270M's window (512) is longer than every DailyDilemmas prompt (at most 156 tokens), so its
    sliding layers attend to everything and the shared-prefix path applies; it must give the same scores."""
    gemma = load_model(str(wide_window_copy(tiny_gemma3_dir, tmp_path / "wide-window")), dtype="fp32", device="cpu")
    rows = load_dilemmas(small_data_dir).rows
    groups = rows["dilemma_idx"].tolist()
    direction = np.random.default_rng(0).normal(size=gemma.model.config.hidden_size)
    vector = ResidualSteering({1: direction / np.linalg.norm(direction)}, gemma.model.config.model_type)
    for steering, coeff in ((None, 0.0), (vector, 4.0)):
        prompts = dilemma_prompts(gemma.tokenizer, rows, DEFAULT_SYSTEM)
        plan = PrefixPlan.build(encode(gemma.tokenizer, prompts), groups)
        assert supports_prefix_cache(gemma.model, plan) and len(plan.trunk) > 10 and any(plan.stems)
        with (steering.apply(gemma.model, coeff) if steering else nullcontext(gemma.model)) as model:
            full, _ = yes_no_logratios(model, gemma.tokenizer, prompts, batch_size=8)
            calls = []
            shared, _ = yes_no_logratios(model, gemma.tokenizer, prompts, batch_size=8, groups=groups,
                                         on_forward=lambda: calls.append(1))
        assert len(calls) > -(-len(prompts) // 8)  # trunk, stems and leaves: the prefix path really ran
        np.testing.assert_allclose(shared, full, atol=1e-3, rtol=0)


def test_every_method_runs_on_gemma3(tiny_gemma3_dir, small_data_dir, tmp_path):
    runner = tiny_runner(tiny_gemma3_dir, small_data_dir, tmp_path, methods=tuple(method_names()), n_dilemmas=4, n_pairs=8,
                         method_options={"lora": {"epochs": "1", "lr": "0.01"}, "sft": {"epochs": "1", "lr": "0.001"},
                                         "innerpissa": {"rank": 8}})
    run_dir = runner.run()
    status = json.loads((run_dir / "status.json").read_text())
    rows = pd.read_parquet(run_dir / "rows.parquet")
    for name in method_names():
        assert status[name]["status"] == "ok", (name, status[name])
        mine = rows[rows["method"] == name].pivot_table(index="idx", columns="coeff", values="logratio")
        assert set(mine.columns) == {-1.0, 0.0, 1.0}, name
        moved = (mine[1.0] - mine[0.0]).abs().max() + (mine[-1.0] - mine[0.0]).abs().max()
        assert moved > 1e-4, f"{name} does not move the tiny Gemma3's scores"
