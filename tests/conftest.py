"""Shared fixtures: the embedded model folder, a tiny random Qwen3 saved and reloaded through
``from_pretrained`` (so the real loading path is the tested path), and small DailyDilemmas data."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import pandas as pd
import pytest
import torch
from transformers import AutoTokenizer, Gemma3ForCausalLM, Gemma3TextConfig, Qwen3Config, Qwen3ForCausalLM

from bench.model.loading import ensure_embedded_model, load_model

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_dilemmas_dir() -> Path:
    path = Path(os.environ.get("STEERBENCH_DATA_DIR") or SHARED_DATA / "daily_dilemmas")
    assert (path / "values.csv").is_file(), f"DailyDilemmas CSVs not found at {path}; set STEERBENCH_DATA_DIR"
    return path


@pytest.fixture(scope="session")
def embedded_dir() -> Path:
    return ensure_embedded_model()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, embedded_dir) -> Path:
    """A 2-layer, hidden-64 Qwen3 with random weights and the SmolLM2 tokenizer (chat template)."""
    folder = tmp_path_factory.mktemp("tiny-qwen3")
    tokenizer = AutoTokenizer.from_pretrained(embedded_dir)
    config = Qwen3Config(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=2048,
        tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    Qwen3ForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_gemma3_dir(tmp_path_factory, embedded_dir) -> Path:
    """A 3-layer, hidden-64 Gemma3 with random weights, the architecture of the second real model: sliding-
    window attention (window 16, shorter than every prompt, so it really masks) on two layers of three, tied
    embeddings, and a tokenizer with no chat template (Gemma-3-270M base has none: plain-text prompts)."""
    folder = tmp_path_factory.mktemp("tiny-gemma3")
    tokenizer = AutoTokenizer.from_pretrained(embedded_dir)
    tokenizer.chat_template = None
    config = Gemma3TextConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=3,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=2048,
        sliding_window=16, layer_types=["sliding_attention", "sliding_attention", "full_attention"],
        tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    Gemma3ForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture()
def tiny(tiny_model_dir):
    return load_model(str(tiny_model_dir), dtype="fp32", device="cpu")


@pytest.fixture(scope="session")
def dilemmas_dir() -> Path:
    return shared_dilemmas_dir()


@pytest.fixture(scope="session")
def small_data_dir(tmp_path_factory, dilemmas_dir) -> Path:
    """The first 12 dilemmas of the real files, so loading code runs on the real format."""
    folder = tmp_path_factory.mktemp("dd-small")
    rows = pd.read_csv(dilemmas_dir / "dilemma_to_action_to_values_aggregated.csv")
    keep = rows["dilemma_idx"].drop_duplicates().head(12)
    rows[rows["dilemma_idx"].isin(keep)].to_csv(folder / "dilemma_to_action_to_values_aggregated.csv", index=False)
    (folder / "values.csv").write_bytes((dilemmas_dir / "values.csv").read_bytes())
    return folder
