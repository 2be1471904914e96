"""Sign calibration on the training pairs only (never DailyDilemmas).

A hidden-state direction need not map to the output's direction, so after fitting we check once
which sign makes the model more honest: greedy continuations of each pair's truncated statement are
generated from the base model under the honest and the dishonest persona (cached), then the steered
model, given the persona-free prompt, scores ``log p(honest continuation) - log p(dishonest one)``
at ``c=+1`` and ``c=-1``. If ``+1`` scores below ``-1``, the method's sign is flipped.
"""

from __future__ import annotations

import logging

import numpy as np

from bench.chat import render
from bench.continuations import Continuations
from bench.evaluator import continuation_logprobs
from bench.models import LoadedModel
from bench.pairs import NEUTRAL_INSTRUCTION
from bench.steering import Steering

log = logging.getLogger(__name__)


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
