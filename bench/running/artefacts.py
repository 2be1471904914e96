"""Fitted steerings, cached by the hash of what determines them under ``<cache>/artifacts/``.

``fit`` loads a finished artefact or fits it, under a per-artefact lock so that concurrent runs fit once.
A fit writes into a temporary folder (``FitContext.log_dir``) that becomes the artefact only when the
fit and its save succeed. ``beside`` caches small JSON results that belong to one artefact (its c* search,
its sign at a magnitude, its yes/no probe) next to it, under the same lock.

Every fit and load is watched by the model-integrity guard (``bench.running.integrity``), and the steering
handed out is a ``GuardedSteering`` whose every ``apply()`` is checked on exit; a steering's first steered
layer is checked once, when it is fitted or loaded.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from bench.api.pairs import HonestyPair
from bench.api.steering import FitContext, Steering, SteeringMethod
from bench.distributed import single_process_env
from bench.model.loading import LoadedModel
from bench.running.code_hash import method_code_hash, score_code_hash
from bench.running.guarded import GuardedSteering
from bench.running.integrity import check_boundary, watch
from bench.running.provenance import peak_rss_mb
from bench.store import atomic_dir, atomic_write_json, cache_key, file_lock, load_artefact
from bench.timing import StageClock

log = logging.getLogger(__name__)
BOUNDARY_TEXTS = 2  # prompts of the one batch that checks a steering's first steered layer (integrity)


@dataclass
class Fitted:
    steering: Steering
    key: str  # artefact hash: identifies this fitted steering in every cache key
    meta: dict
    folder: Path  # the artefact folder: per-magnitude calibrations and c* searches are cached beside it


class ArtefactStore:
    def __init__(self, cache: Path, loaded: LoadedModel, pairs: list[HonestyPair], model_key: dict, pairs_hash: str,
                 batch_size: int, default_seed: int, method_class: Callable[[str], type[SteeringMethod]],
                 options: dict[str, Any], clock: StageClock, continuations: Callable[..., Any], work: dict[str, int]):
        self.cache, self.loaded, self.pairs = cache, loaded, pairs
        self.method_class = method_class  # the registry lookup (bench does not import the plugins itself)
        self.model_key, self.pairs_hash = model_key, pairs_hash
        self.batch_size, self.default_seed = batch_size, default_seed
        self.options = options  # method name -> Options (the run's; a caller may replace one, e.g. bench.running.tuning)
        self.clock, self.continuations, self.work = clock, continuations, work
        self._fitted: dict[str, Fitted] = {}

    def fit(self, name: str, seed: int | None = None, **overrides: Any) -> Fitted:
        """Fit a method (or load it from the artefact cache). Its sign is calibrated later, at the magnitude
        that is evaluated. ``seed``: the training seed (default: the run's); ignored by unseeded methods."""
        cls = self.method_class(name)
        seed, options, key, provenance = self._identify(name, seed, overrides)
        if key in self._fitted:
            return self._fitted[key]
        opts = dataclasses.asdict(options)
        method: SteeringMethod = cls(options)
        folder = self._folder(name, key)
        ctx = FitContext(self.loaded, self.pairs, seed, self.batch_size,
                         fit_method=lambda other, **o: self.fit(other, **o).steering, log_dir=None,
                         continuations=self.continuations)
        model = self.loaded.model
        # Locked: a concurrent run needing the same artefact waits, then loads it instead of refitting.
        # Every fit and load is watched: the plugin must leave the shared model as it found it (integrity).
        with file_lock(self._lock(folder)):
            with watch(model, name, "load()"):
                cached = load_artefact(folder, lambda f: method.load(f, ctx))  # unreadable: moved aside, refit
            if cached is not None:
                meta, steering = cached
                log.info("%s: reusing fitted artefacts %s", name, folder.name)
            else:
                self._say_why_refit(name, provenance["config_key"])
                with watch(model, name, "fit()"):
                    meta = self._fit_into(folder, name, method, ctx, {"options": opts, **provenance})
                ctx.log_dir = folder
                with watch(model, name, "load()"):
                    steering = method.load(folder, ctx)
        steering = GuardedSteering(steering, name)  # every apply() is checked on exit
        check_boundary(model, self.loaded.tokenizer, steering, name, [p.positive for p in self.pairs[:BOUNDARY_TEXTS]])
        fitted = Fitted(steering, key, meta, folder)
        self._fitted[key] = fitted
        return fitted

    def _identify(self, name: str, seed: int | None, overrides: dict[str, Any]) -> tuple[int, Any, str, dict]:
        """(training seed, options, artefact key, {config_key, code_hash}) of a fit."""
        cls = self.method_class(name)
        seed = self.default_seed if seed is None or not cls.seeded else seed
        options = self.resolved_options(name, overrides)
        # The batch size changes the numerics of fits (padding), so it is in the key; CACHE_VERSION via
        # cache_key. Sign calibration is not part of a fit: it is cached per evaluated magnitude (``beside``).
        # The device type too: a default may depend on it (AntiPaSTO's epochs) and so do the kernels.
        config = {"method": name, "options": dataclasses.asdict(options), **self.model_key, "pairs": self.pairs_hash,
                  "seed": seed, "batch_size": self.batch_size, "device": self.loaded.device.type}
        # The plugin's own source is in the key too: an edited plugin refits by itself (bench.running.code_hash).
        # config_key, the key without it, finds the same fit made from other source (for the log line).
        code = method_code_hash(cls)
        return seed, options, cache_key({**config, "code": code}), {"config_key": cache_key(config), "code_hash": code}

    def resolved_options(self, name: str, overrides: dict[str, Any] | None = None) -> Any:
        """The options a fit of ``name`` trains with, as they are hashed: the run's (or the method's defaults),
        the overrides, and machine-dependent defaults made explicit (AntiPaSTO's epochs)."""
        cls = self.method_class(name)
        options = self.options.get(name) or cls.Options()
        if overrides:
            options = dataclasses.replace(options, **overrides)
        return cls(options).resolved(self.loaded)

    def _say_why_refit(self, name: str, config_key: str) -> None:
        """Log when the same fit is cached from another version of the plugin's code."""
        for meta_file in (self.cache / "artifacts").glob(f"{name}-*/meta.json"):
            try:
                if json.loads(meta_file.read_text()).get("config_key") == config_key:
                    log.info("refitting %s: its code changed (the cached fit %s came from other source)",
                             name, meta_file.parent.name)
                    return
            except (OSError, ValueError):
                continue

    def _folder(self, name: str, key: str) -> Path:
        return self.cache / "artifacts" / f"{name}-{key}"

    def is_cached(self, name: str, seed: int | None = None, **overrides: Any) -> bool:
        """Whether this fit is already in the cache (a finished artefact folder), without loading it."""
        key = self._identify(name, seed, overrides)[2]
        return key in self._fitted or (self._folder(name, key) / "meta.json").is_file()

    def _fit_into(self, folder: Path, name: str, method: SteeringMethod, ctx: FitContext, identity: dict) -> dict:
        log.info("%s: fitting on %d honesty pairs (seed %d)", name, len(self.pairs), ctx.seed)
        self.work["fits"] += 1
        start = time.perf_counter()
        # The fit writes its logs into the temporary folder that becomes the artefact on success, never
        # into the final folder (which would block the atomic rename and lose the fit).
        with atomic_dir(folder) as tmp:
            ctx.log_dir = tmp
            with single_process_env(), self.clock("fit"):  # a trainer must not join the launcher's group
                steering = method.fit(ctx)
            meta = {"method": name, **identity, "seed": ctx.seed,
                    "fit_seconds": round(time.perf_counter() - start, 2), "n_pairs": len(self.pairs),
                    "peak_rss_mb": peak_rss_mb(), "describe": steering.describe()}
            steering.save(tmp)
            atomic_write_json(tmp / "meta.json", meta)
        return meta

    def beside(self, fitted: Fitted, filename: str, stage: str, compute: Callable[[], dict]) -> dict:
        """A JSON result cached next to a fitted artefact: read it, or compute and write it, under the
        artefact's lock, timing the computation as ``stage``."""
        # the scoring code's hash in the name: an edit to the evaluator, the c* search or the calibration recomputes
        stem, dot, suffix = filename.rpartition(".")
        path = fitted.folder / f"{stem}-code{score_code_hash(8)}{dot}{suffix}"
        with file_lock(self._lock(fitted.folder)):
            if path.is_file():
                return json.loads(path.read_text())
            with self.clock(stage):
                result = compute()
            atomic_write_json(path, result)
            return result

    def _lock(self, folder: Path) -> Path:
        return self.cache / "locks" / f"{folder.name}.lock"
