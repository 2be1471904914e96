"""Sign calibration on the training pairs only (never DailyDilemmas), at the magnitude that is evaluated.

A hidden-state direction need not map to the output's direction, so after fitting (and, at matched
strength, after c* is known) we check which sign makes the model more honest: greedy continuations of
each pair's truncated statement are generated from the base model under the honest and the dishonest
persona (cached), then the steered model, given the persona-free prompt, scores each pair's
``log p(honest continuation) - log p(dishonest one)`` per token at ``+m`` and ``-m``, ``m`` the
evaluated magnitude (c* at matched strength, the sweep's end at raw). A paired t-test over the pairs
decides: when ``-m`` is significantly more honest the sign is flipped; when the test is not significant
the sign is *undetermined*, kept at +1, and the tables say so. Every training pair's continuations are
used, and the result records the test's power: the smallest mean difference it would detect (80% power,
two-sided alpha 0.05, at the observed spread). At |c| = 1 the gaps of weak methods are
noise, and a sign picked from noise at one magnitude says nothing about another.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy import stats as sps

from bench.api.continuations import Continuations
from bench.api.pairs import NEUTRAL_INSTRUCTION
from bench.api.steering import Steering
from bench.evaluation.evaluator import continuation_logprobs
from bench.model.chat import render
from bench.model.loading import LoadedModel
from bench.store import stable_hash

log = logging.getLogger(__name__)
ALPHA = 0.05


def honesty_preference(loaded: LoadedModel, steering: Steering, coeff: float, cont: Continuations,
                       base_system: str | None, batch_size: int) -> np.ndarray:
    """Per pair: per-token log p(honest continuation) - log p(dishonest one), steered at ``coeff``.

    The prompt has no persona, so only the steering can tell the model which way to lean.
    """
    system = steering.system_prompt(coeff, base_system)
    heads = [render(loaded.tokenizer, NEUTRAL_INSTRUCTION, s, system) for s in cont.suffixes]
    key = ("honesty-preference", stable_hash([heads, cont.honest, cont.dishonest]), batch_size)
    with steering.apply(loaded.model, coeff) as model:
        (hs, hn), (ds, dn) = loaded.steered_loop(steering, coeff, key, lambda: (
            continuation_logprobs(model, loaded.tokenizer, heads, cont.honest, batch_size),
            continuation_logprobs(model, loaded.tokenizer, heads, cont.dishonest, batch_size)))
    return hs / np.maximum(hn, 1) - ds / np.maximum(dn, 1)


def calibrate_sign(loaded: LoadedModel, steering: Steering, cont: Continuations, base_system: str | None,
                   batch_size: int, magnitude: float = 1.0, alpha: float = ALPHA) -> dict:
    plus = honesty_preference(loaded, steering, magnitude, cont, base_system, batch_size)
    minus = honesty_preference(loaded, steering, -magnitude, cont, base_system, batch_size)
    diff = plus - minus
    if len(diff) > 1 and np.ptp(diff) > 0:
        res = sps.ttest_1samp(diff, 0.0)
        t, p = float(res.statistic), float(res.pvalue)
    else:  # identical preferences at both signs: nothing to decide
        t, p = 0.0, 1.0
    determined = p < alpha
    n = len(diff)
    spread = float(np.std(diff, ddof=1)) if n > 1 else float("nan")
    # the mean difference this test finds 4 times in 5 at this spread (a normal approximation of the t-test)
    detectable = (float(sps.t.ppf(1 - alpha / 2, n - 1) + sps.t.ppf(0.8, n - 1)) * spread / np.sqrt(n)) if n > 2 else float("nan")
    sign = -1 if determined and diff.mean() < 0 else 1
    if sign < 0:
        log.info("sign calibration at |c|=%.4g: -c makes honest continuations likelier (p=%.2g) -> flipping the sign",
                 magnitude, p)
    elif not determined:
        log.info("sign calibration at |c|=%.4g: no significant difference between +c and -c (p=%.2g): "
                 "sign undetermined, kept at +1", magnitude, p)
    return {"sign": sign, "determined": determined, "p": p, "t": t, "magnitude": magnitude,
            "pref_plus": float(plus.mean()), "pref_minus": float(minus.mean()), "n_pairs": n,
            "mean_difference": float(diff.mean()), "min_detectable": detectable}
