"""Greedy continuations of the honesty pairs' statements under each persona, from the base model.

Generated once and cached by model, pairs and generation settings. Sign calibration scores them; the
supervised baselines (LoRA, SFT) train on them (prompt without persona -> continuation).
"""

from __future__ import annotations

import json
import logging
import os
import random
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.api.pairs import HonestyPair
from bench.model.loading import LoadedModel
from bench.model.padding import encode, left_padded_batches, model_device
from bench.store import atomic_write_json, cache_key, file_lock

log = logging.getLogger(__name__)


@dataclass
class Continuations:
    suffixes: list[str]  # truncated statements that open the assistant turn
    honest: list[str]
    dishonest: list[str]


def greedy_continuations(loaded: LoadedModel, prompts: list[str], max_new_tokens: int, batch_size: int) -> list[str]:
    model, tok = loaded.model, loaded.tokenizer
    ids = encode(tok, prompts)
    out = [""] * len(prompts)
    with torch.inference_mode():
        for idx, batch in left_padded_batches(ids, batch_size, tok.pad_token_id, model_device(model)):
            gen = model.generate(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id,
            )
            for row, i in enumerate(idx):
                out[i] = tok.decode(gen[row, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    return out


def pair_continuations(
    loaded: LoadedModel, pairs: list[HonestyPair], cache_dir: Path, n: int | None = 32, max_new_tokens: int = 16,
    seed: int = 0, batch_size: int = 16,
) -> Continuations:
    """Base-model continuations under each persona for ``n`` seeded pairs (all when None), cached."""
    n = len(pairs) if n is None else min(n, len(pairs))
    chosen = sorted(random.Random(seed).sample(range(len(pairs)), n))
    subset = [pairs[i] for i in chosen]
    # Batch size is in the key: left padding changes the numerics, so greedy decoding may pick other tokens.
    key = cache_key({"model": loaded.fingerprint, "dtype": str(loaded.dtype), "device": loaded.device.type,
                     "max_new_tokens": max_new_tokens,
                     "pairs": [(p.positive, p.negative) for p in subset], "batch_size": batch_size})
    path = cache_dir / f"continuations-{key}.json"
    with file_lock(cache_dir / f".continuations-{key}.lock"):  # concurrent runs generate once
        if path.is_file():
            try:
                data = json.loads(path.read_text())
                cont = Continuations(data["suffixes"], data["honest"], data["dishonest"])
                if not len(cont.suffixes) == len(cont.honest) == len(cont.dishonest) == len(subset):
                    raise ValueError(f"{len(cont.honest)} continuations for {len(subset)} pairs")
                return cont
            except (ValueError, KeyError, TypeError) as exc:  # truncated or foreign file: regenerate it
                aside = path.with_name(path.name + ".corrupt")
                os.replace(path, aside)
                log.warning("cached continuations %s could not be used (%s): moved to %s, regenerating",
                            path.name, type(exc).__name__, aside.name)
        log.info("generating %d greedy continuations (%d tokens) per persona from the base model (cached)",
                 len(subset), max_new_tokens)
        honest = greedy_continuations(loaded, [p.positive for p in subset], max_new_tokens, batch_size)
        dishonest = greedy_continuations(loaded, [p.negative for p in subset], max_new_tokens, batch_size)
        cont = Continuations([p.suffix for p in subset], honest, dishonest)
        atomic_write_json(path, cont.__dict__)
        return cont
