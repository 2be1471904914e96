"""Sign calibration on the training pairs only (never DailyDilemmas).

A hidden-state direction need not map to the output's direction, so after fitting we check once
which sign makes the model more honest: greedy continuations of each pair's truncated statement are
generated from the base model under the honest and the dishonest persona (cached), then the steered
model, given the persona-free prompt, scores ``log p(honest continuation) - log p(dishonest one)``
at ``c=+1`` and ``c=-1``. If ``+1`` scores below ``-1``, the method's sign is flipped.
"""

from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench.evaluator import continuation_logprobs, encode, left_padded_batches, model_device
from bench.models import LoadedModel
from bench.chat import render
from bench.pairs import NEUTRAL_INSTRUCTION, HonestyPair
from bench.steering import Steering
from bench.store import atomic_write_json, stable_hash

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
    loaded: LoadedModel, pairs: list[HonestyPair], cache_dir: Path, n: int = 32, max_new_tokens: int = 16,
    seed: int = 0, batch_size: int = 16,
) -> Continuations:
    """Base-model continuations under each persona, cached by model, pairs and generation settings."""
    chosen = sorted(random.Random(seed).sample(range(len(pairs)), min(n, len(pairs))))
    subset = [pairs[i] for i in chosen]
    key = stable_hash({"model": loaded.fingerprint, "dtype": str(loaded.dtype), "max_new_tokens": max_new_tokens,
                       "pairs": [(p.positive, p.negative) for p in subset]})
    path = cache_dir / f"continuations-{key}.json"
    if path.is_file():
        data = json.loads(path.read_text())
        return Continuations(data["suffixes"], data["honest"], data["dishonest"])
    log.info("generating %d greedy continuations per persona for sign calibration (cached)", len(subset))
    honest = greedy_continuations(loaded, [p.positive for p in subset], max_new_tokens, batch_size)
    dishonest = greedy_continuations(loaded, [p.negative for p in subset], max_new_tokens, batch_size)
    cont = Continuations([p.suffix for p in subset], honest, dishonest)
    atomic_write_json(path, cont.__dict__)
    return cont


def honesty_preference(loaded: LoadedModel, steering: Steering, coeff: float, cont: Continuations,
                       base_system: str | None, batch_size: int) -> float:
    """Mean per-token log p(honest continuation) - log p(dishonest one), steered at ``coeff``.

    The prompt has no persona, so only the steering can tell the model which way to lean.
    """
    system = steering.system_prompt(coeff, base_system)
    heads = [render(loaded.tokenizer, NEUTRAL_INSTRUCTION, s, system) for s in cont.suffixes]
    with steering.apply(loaded.model, coeff) as model:
        hs, hn = continuation_logprobs(model, loaded.tokenizer, heads, cont.honest, batch_size)
        ds, dn = continuation_logprobs(model, loaded.tokenizer, heads, cont.dishonest, batch_size)
    return float(np.mean(hs / np.maximum(hn, 1) - ds / np.maximum(dn, 1)))


def calibrate_sign(loaded: LoadedModel, steering: Steering, cont: Continuations, base_system: str | None,
                   batch_size: int) -> dict:
    plus = honesty_preference(loaded, steering, 1.0, cont, base_system, batch_size)
    minus = honesty_preference(loaded, steering, -1.0, cont, base_system, batch_size)
    sign = -1 if plus < minus else 1
    if sign < 0:
        log.info("sign calibration: c=+1 made honest continuations less likely than c=-1 -> flipping the sign")
    return {"sign": sign, "pref_plus": plus, "pref_minus": minus, "n_pairs": len(cont.suffixes)}
