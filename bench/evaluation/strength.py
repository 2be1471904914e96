"""Matched steering strength: the coefficient magnitude ``c*`` at which a method's steered model
reaches a KL budget from the unsteered model on held-out neutral text.

A raw ``c`` means different things per method (repeng's unit vectors barely move a residual stream
with norms in the hundreds; a trained adapter's ``c=1`` is whatever training made it). Comparing at
``-c*, 0, +c*`` compares methods at equal cost. Only the held-out neutral texts are used: never
DailyDilemmas, never the honesty pairs or their continuations.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass

import torch

from bench.api.steering import Steering
from bench.evaluation.evaluator import CALIBRATION, load_heldout
from bench.model.chat import DEFAULT_SYSTEM, render
from bench.model.loading import LoadedModel
from bench.model.padding import encode, left_padded_batches, model_device

log = logging.getLogger(__name__)


@dataclass
class StrengthResult:
    budget: float
    c_star: float  # NaN when the budget cannot be reached within max_coeff
    kl: float  # mean per-token KL reached at +-c_star (or at max_coeff when unreachable)
    reached: bool
    forward_passes: int
    kl_plus: float = math.nan
    kl_minus: float = math.nan

    def as_dict(self) -> dict:
        return asdict(self)


class KLProbe:
    """Mean per-token KL(base || steered) over the held-out responses; base logits computed once.

    The steered side is rendered with the steering's own system message, so a method that steers
    through the prompt (prompting) is measured like one that steers through the weights.
    """

    def __init__(self, loaded: LoadedModel, batch_size: int = 8, texts=None):
        self.loaded = loaded
        self.texts = texts if texts is not None else load_heldout(CALIBRATION)
        self.batch_size = batch_size
        self.forward_passes = 0
        self._encoded: dict[str | None, tuple[list[list[int]], list[int]]] = {}
        self.base = self._logprobs(loaded.model, DEFAULT_SYSTEM)

    def _encode(self, system: str | None) -> tuple[list[list[int]], list[int]]:
        if system not in self._encoded:
            tok = self.loaded.tokenizer
            heads = encode(tok, [render(tok, p, "", system) for p, _ in self.texts])
            ids = encode(tok, [render(tok, p, "", system) + r for p, r in self.texts])
            self._encoded[system] = ids, [len(f) - len(h) for f, h in zip(ids, heads)]
        return self._encoded[system]

    def _logprobs(self, model, system: str | None) -> list[torch.Tensor | None]:
        """Per text: log-probabilities at the positions that predict its response tokens."""
        ids, n_resp = self._encode(system)
        out: list[torch.Tensor | None] = [None] * len(ids)
        tok = self.loaded.tokenizer
        with torch.inference_mode():
            for idx, batch in left_padded_batches(ids, self.batch_size, tok.pad_token_id, model_device(model)):
                # only the positions that predict response tokens reach the LM head (left padding aligns ends)
                keep = max(n_resp[i] for i in idx) + 1
                logits = model(**batch, use_cache=False, logits_to_keep=keep).logits.float()
                self.forward_passes += not self.loaded.replay.recording  # a recording pass is not a KL evaluation
                for row, i in enumerate(idx):
                    k = n_resp[i]
                    out[i] = torch.log_softmax(logits[row, -k - 1 : -1], dim=-1) if k > 0 else None
        return out

    def kl(self, steering: Steering, coeff: float) -> float:
        system = steering.system_prompt(coeff, DEFAULT_SYSTEM)
        with steering.apply(self.loaded.model, coeff) as model:
            steered = self.loaded.steered_loop(steering, coeff, ("kl-probe", system, self.batch_size),
                                               lambda: self._logprobs(model, system))
        total, count = 0.0, 0
        for b, s in zip(self.base, steered):
            if b is None or s is None:
                continue
            k = min(b.shape[0], s.shape[0])  # the same response tokens, aligned from the end
            b, s = b[-k:], s[-k:]
            total += (b.exp() * (b - s)).sum(-1).sum().item()
            count += k
        return total / max(count, 1)


def matched_strength(probe: KLProbe, steering: Steering, budget: float = 0.1, start: float = 1.0,
                     max_coeff: float = 1024.0, rel_tol: float = 0.05, max_steps: int = 24,
                     curve: dict[float, tuple[float, float]] | None = None) -> StrengthResult:
    """The ``|c|`` at which mean(KL(+c), KL(-c)) equals ``budget`` (within ``rel_tol``).

    KL grows roughly as c^2 near 0 and close to a power law beyond, so the search runs on log c: a
    first guess from the quadratic law at ``start``, steps of x2 (or /2) until the budget is bracketed,
    then Brent's method on log KL - log budget (``scipy.optimize.root_scalar``), which needs a few
    evaluations where bisection on c needed about ten. Bounded at ``max_coeff``: beyond it the method is
    reported as unable to reach the budget.

    ``curve`` (|c| -> (KL(+c), KL(-c))) is the method's KL-versus-c curve measured so far, shared by every
    budget of a frontier and extended in place: a budget the curve already brackets starts from its
    tightest bracket (a point already within tolerance costs no forward pass), so a ladder of budgets is
    read from one curve instead of a fresh search each.
    """
    from scipy.optimize import root_scalar

    start_passes = probe.forward_passes
    cache: dict[float, tuple[float, float]] = curve if curve is not None else {}

    def f(m: float) -> float:
        if m not in cache:
            cache[m] = (probe.kl(steering, m), probe.kl(steering, -m))
        return sum(cache[m]) / 2

    def done(m: float, reached: bool) -> StrengthResult:
        kp, km = cache[m]
        return StrengthResult(budget, m if reached else math.nan, (kp + km) / 2, reached,
                              probe.forward_passes - start_passes, kp, km)

    known = [x for x in cache if x <= max_coeff]
    close = [x for x in known if abs(f(x) - budget) <= rel_tol * budget]
    if close:  # the curve already has a point at this budget
        return done(min(close, key=lambda x: abs(f(x) - budget)), True)
    below = [x for x in known if f(x) < budget]
    above = [x for x in known if f(x) >= budget]
    if below and above and max(below) < min(above):  # bracketed by the curve: start from its tightest bracket
        lo, hi = max(below), min(above)
        m = math.exp((math.log(lo) + math.log(hi)) / 2)
    else:
        lo = hi = None
        near = min(known, key=lambda x: abs(math.log(max(f(x), 1e-12) / budget))) if known else start
        k0 = f(near)
        m = near * math.sqrt(budget / k0) if k0 > 0 else near * 2
        m = min(max(m, start / 1024), max_coeff)
    for _ in range(max_steps if lo is None else 0):  # bracket: lo below the budget, hi at or above it
        if f(m) < budget:
            lo = m if lo is None else max(lo, m)
            if hi is not None:
                break
            if m >= max_coeff:
                log.warning("KL budget %.3g not reached at |c| = %g (KL %.3g): reported as unreachable",
                            budget, m, f(m))
                return done(m, False)
            m = min(m * 2, max_coeff)
        else:
            hi = m if hi is None else min(hi, m)
            if lo is not None:
                break
            m /= 2
    if lo is None or hi is None:  # no bracket within max_steps: report the closest point honestly
        best = min(cache, key=lambda x: abs(f(x) - budget))
        return done(best, abs(f(best) - budget) <= rel_tol * budget)
    if abs(f(hi) - budget) > rel_tol * budget and abs(f(lo) - budget) > rel_tol * budget:
        def g(log_m: float) -> float:
            return math.log(max(f(math.exp(log_m)), 1e-12)) - math.log(budget)

        # x tolerance in log c: KL ~ c^2, so 0.4 * rel_tol in log c keeps KL within ~rel_tol of the budget
        root_scalar(g, bracket=(math.log(lo), math.log(hi)), method="brentq", xtol=0.4 * rel_tol, maxiter=max_steps)
    best = min(cache, key=lambda x: abs(f(x) - budget))
    return done(best, abs(f(best) - budget) <= 0.1 * budget)
