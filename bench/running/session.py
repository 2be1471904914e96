"""Fitting without a benchmark: a loaded model, honesty pairs, a cache, and the artefact store built on them.

A run's fits go through one (``Runner.prepare``), and so does the Python API's ``steerbench.fit``, which
needs no DailyDilemmas: the same cache keys, the same guard (``bench.running.integrity``), so a fit made in
a notebook is the one a run with the same pairs, seed and batch size reuses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from bench.api.continuations import Continuations, pair_continuations
from bench.api.pairs import HonestyPair
from bench.model.loading import LoadedModel
from bench.running.artefacts import ArtefactStore, Fitted
from bench.store import stable_hash
from bench.timing import StageClock
from methods import get_method_class


def pairs_hash(pairs: list[HonestyPair]) -> str:
    """What the pairs contribute to a fit's key (their rendered prompts)."""
    return stable_hash([(p.positive, p.negative) for p in pairs])


def model_key(loaded: LoadedModel) -> dict:
    """What the model contributes to a fit's key (its weights' fingerprint and dtype; the device is added by
    the artefact store)."""
    return {"model": loaded.fingerprint, "dtype": str(loaded.dtype)}


class FitSession:
    """Fit (or load from ``cache``) any registered method on ``loaded`` and ``pairs``. ``options``: method name
    -> ``Options``, shared, not copied (a tune replaces one candidate's options in place)."""

    def __init__(self, loaded: LoadedModel, pairs: list[HonestyPair], cache: Path, seed: int = 0, batch_size: int = 16,
                 options: dict[str, Any] | None = None, clock: StageClock | None = None,
                 work: dict[str, int] | None = None, continuations: Callable[..., Continuations] | None = None):
        self.loaded, self.pairs, self.cache = loaded, pairs, Path(cache)
        self.seed, self.batch_size = seed, batch_size
        self.clock = clock or StageClock()
        self.work = work if work is not None else {"fits": 0, "evaluations": 0, "c0_evaluations": 0}
        self.pairs_hash, self.model_key = pairs_hash(pairs), model_key(loaded)
        self.artefacts = ArtefactStore(self.cache, loaded, pairs, self.model_key, self.pairs_hash, batch_size, seed,
                                       get_method_class, options if options is not None else {}, self.clock,
                                       continuations or self.continuations, self.work)

    def fit(self, name: str, seed: int | None = None, **overrides: Any) -> Fitted:
        """``name`` fitted with the session's options for it (``options[name]``), ``overrides`` replacing some."""
        return self.artefacts.fit(name, seed, **overrides)

    def continuations(self, n: int | None = 32, max_new_tokens: int = 16) -> Continuations:
        """The base model's greedy continuations of the pairs under each persona (cached; LoRA, SFT, calibration)."""
        with self.clock("continuations"):
            return pair_continuations(self.loaded, self.pairs, self.cache / "continuations", n, max_new_tokens,
                                      self.seed, self.batch_size)
