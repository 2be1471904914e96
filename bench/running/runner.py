"""One benchmark run: fit every method on the honesty pairs, sweep coefficients, store rows.

The run is assembled from one module per concept: ``artefacts`` (fit or load, lock, cache beside),
``evaluations`` (scored chunks, shard parts), ``sweep`` (strength, sign, coefficients, status facts),
``provenance`` (what made the run) and ``run_record`` (what a finished run writes). Work is done once and
cached under ``results/<model>/cache/``: fitted artefacts by config hash, the c=0 evaluation once per model
(shared by every method whose c=0 is the unsteered model), and each (steering, coefficient) chunk. A rerun of
a finished run does no forward pass.

Use: ``Runner(cfg).run()``; or ``prepare()`` then ``fit(name)`` for one piece (tests), ``unsteered_rows()`` and
``score(name, options, base)`` for one candidate at a time (``make tune``).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd

from bench.api.pairs import HonestyPair, make_pairs
from bench.api.parameters import fitted_parameters
from bench.api.steering import NoSteering
from bench.config import RunConfig, build_options
from bench.distributed import ProcessShard
from bench.errors import SteerbenchError
from bench.evaluation.dilemmas import Dilemmas, check_target, load_dilemmas, select_subset
from bench.evaluation.evaluations import EvaluationStore
from bench.evaluation.evaluator import CALIBRATION, EVALUATION, load_heldout
from bench.evaluation.examples import ExampleBook, pick_examples
from bench.evaluation.probe import yes_no_probe
from bench.evaluation.split import restrict
from bench.model.chat import DEFAULT_SYSTEM
from bench.model.loading import LoadedModel, load_model, model_slug
from bench.running.artefacts import ArtefactStore, Fitted
from bench.running.code_hash import score_code_hash
from bench.running.cost import MethodPlan, estimate, plan_methods
from bench.running.provenance import environment
from bench.running.run_record import record_failure, write_outcome, write_rows
from bench.running.session import FitSession
from bench.running.sweep import StatusBook, Sweep
from bench.running.tuned_defaults import starting_points
from bench.running.validate import check_method_layers, check_run_overwrite, validate_config
from bench.running.work_log import checkpoint, discard_committed_record, process_record
from bench.store import atomic_write_json, check_writable, stable_hash
from bench.timing import StageClock
from methods import get_method_class

log = logging.getLogger(__name__)


class Scored(NamedTuple):  # one method's fit, its swept rows and its strength facts (Runner.score)
    fitted: Fitted
    rows: pd.DataFrame
    strength: dict


class Runner:
    def __init__(self, cfg: RunConfig):
        self.cfg = cfg
        # Validate everything cheap before any compute: method names and options, output folder.
        validate_config(cfg)  # every run option, the run name, the suffix file: one line, before any work
        self.method_classes = {name: get_method_class(name) for name in cfg.methods}
        self.tuning = starting_points(cfg)  # per method: the tuned candidate it starts from, or untuned
        self.options = {name: build_options(cls, {**self.tuning[name].get("options", {}), **cfg.method_options.get(name, {})})
                        for name, cls in self.method_classes.items()}
        self.model_dir = Path(cfg.results_dir) / model_slug(cfg.model)
        check_writable(self.model_dir)
        self.cache = cfg.cache_path()
        self.run_dir = self.model_dir / (cfg.run_name or f"run-{stable_hash(cfg.identity(), 8)}")
        check_run_overwrite(self.run_dir, cfg.overwrite)  # a committed run folder is replaced only on --overwrite
        self.shard = ProcessShard.from_env()
        self.forward_passes = 0
        self.work = {"fits": 0, "evaluations": 0, "c0_evaluations": 0}  # computed (not loaded) this run
        self.clock = StageClock()  # wall time per stage, in the run's work record
        self.estimate: dict | None = None  # the start-up wall-time estimate, kept beside the real wall time
        self.book = StatusBook(self._first_seed)
        self.base_system = DEFAULT_SYSTEM
        # set by prepare(): the data, the model and the stores built on them
        self.dilemmas: Dilemmas | None = None
        self.loaded: LoadedModel | None = None
        self.pairs: list[HonestyPair] = []
        self.pairs_hash = ""
        self.split: pd.Series | None = None  # dilemma_idx -> dev / test, for every dilemma of the dataset
        self.example_rows: pd.DataFrame | None = None  # the examples' fixed dev dilemmas (bench.evaluation.examples)
        self.model_key: dict = {}
        self.base_rows: pd.DataFrame | None = None  # the shared c=0 chunk, set by run()
        self.session: FitSession | None = None
        self.artefacts: ArtefactStore | None = None
        self.evaluations: EvaluationStore | None = None
        self.sweep: Sweep | None = None

    @property
    def status(self) -> dict[str, dict]:
        """Per-method facts so far (status, strength, sign, calibration, yes/no probe, per seed)."""
        return self.book.methods

    def prepare(self) -> "Runner":
        """Load the dilemmas, the model and the pairs, and build the stores (once; later calls do nothing)."""
        if self.sweep is not None:
            return self
        cfg = self.cfg
        with self.clock("load (data, model, pairs)"):
            dilemmas = load_dilemmas(cfg.data_dir)
            check_target(dilemmas, cfg.target)
            # Only this run's side of the dev/test split is ever rendered or scored (bench.evaluation.split).
            side, self.split = restrict(dilemmas, cfg.target, cfg.split)
            self.example_rows = pick_examples(dilemmas.rows, self.split, cfg.target)  # dev only, never scored
            self.dilemmas = select_subset(side, cfg.n_dilemmas, cfg.target, cfg.seed)
            self.loaded = load_model(cfg.model, cfg.dtype, cfg.device, cfg.trust_remote_code)
            self.loaded.replay.enabled = cfg.layer_replay
            check_method_layers(self.options, self.loaded)  # every layer spec fits the model, before any fit
            self.pairs = make_pairs(self.loaded.tokenizer, cfg.n_pairs, cfg.seed, cfg.suffix_file)
        continuations = lambda *a, **k: self.continuations(*a, **k)  # noqa: E731 (late-bound: tests replace it)
        self.session = FitSession(self.loaded, self.pairs, self.cache, cfg.seed, cfg.batch_size, self.options,
                                  self.clock, self.work, continuations)  # the fits: what steerbench.fit uses too
        self.artefacts = self.session.artefacts
        pairs_hash, model_key = self.session.pairs_hash, self.session.model_key
        # every scored number's key also names the scoring code and the device (bench.running.code_hash)
        score_key = {**model_key, "device": self.loaded.device.type, "score_code": score_code_hash()}
        self.evaluations = EvaluationStore(
            self.cache, self.loaded, self.dilemmas.rows, score_key,
            nll_texts_hash=stable_hash(load_heldout(EVALUATION), 8),  # dNLL is measured on the evaluation half
            batch_size=cfg.batch_size, prefix_cache=cfg.prefix_cache, base_system=self.base_system,
            shard=self.shard, clock=self.clock, work=self.work, on_forward=self._count_forward)
        self.sweep = Sweep(cfg, self.loaded, self.method_classes, self.artefacts, self.evaluations, self.book,
                           self.clock, continuations, kl_texts_hash=stable_hash(load_heldout(CALIBRATION), 8),
                           base_system=self.base_system)  # c* is searched on the calibration half
        from bench.evaluation.control import ControlBook

        self.sweep.control = ControlBook(self.loaded, self.cache, score_key, cfg.batch_size, self.base_system,
                                         self.artefacts, self.clock)
        self.model_key = score_key  # what the run-time stores (examples) key their numbers by
        self.pairs_hash = pairs_hash
        log.info("%d %s dilemmas (%d rows), %d honesty pairs, coefficients %s", self.dilemmas.rows["dilemma_idx"].nunique(),
                 cfg.split, len(self.dilemmas.rows), len(self.pairs), cfg.coeffs)
        return self

    def _count_forward(self) -> None:
        self.forward_passes += not self.loaded.replay.recording  # recording passes are partial forwards

    def _first_seed(self, name: str) -> int:
        return self.cfg.seeds[0] if self.method_classes[name].seeded else self.cfg.seed

    def fit(self, name: str, seed: int | None = None, **overrides: Any) -> Fitted:
        """Fit a method, or load it from the artefact cache (see ``ArtefactStore.fit``)."""
        return self.prepare().artefacts.fit(name, seed, **overrides)

    def unsteered_rows(self, desc: str = "unsteered c=0") -> pd.DataFrame:
        """The shared c=0 evaluation of the run's dilemmas (once per model, cached). With ``score``, what a tune
        drives, one candidate at a time (``bench.running.tuning``)."""
        return self.prepare().evaluations.chunk(NoSteering(), "base", 0.0, desc)

    def score(self, name: str, options: Any, base: pd.DataFrame) -> Scored:
        """``name`` fitted with ``options`` (its first seed) and swept over the coefficients against ``base``."""
        self.prepare().options[name] = options
        self.book.start(name)
        fitted = self.fit(name)
        chunks = self.sweep.rows(name, fitted, base)
        return Scored(fitted, pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame(),
                      self.status[name].get("strength", {}))

    def continuations(self, n: int | None = 32, max_new_tokens: int = 16):
        """The base model's continuations of the pairs under each persona (cached; sign calibration, DPO)."""
        return self.prepare().session.continuations(n, max_new_tokens)

    def _method_rows(self, name: str) -> list[pd.DataFrame]:
        """Every seed's rows of one method; a failure on any seed leaves the method without rows."""
        rows = []
        seeds = self.cfg.seeds if self.method_classes[name].seeded else [self.cfg.seed]
        for seed in seeds:
            start = time.perf_counter()
            fitted = self.fit(name, seed=seed)
            fitted_at = time.perf_counter()
            self.book.record(name, fitted, artefact=fitted.key, meta=fitted.meta,
                             fit_seconds=fitted.meta.get("fit_seconds"), n_parameters=fitted_parameters(fitted.folder, fitted.steering))
            rows += [c.assign(seed=seed) for c in self.sweep.rows(name, fitted, self.base_rows)]
            # this run's wall time for the seed (0 where it came from the cache): what one more seed costs
            self.book.record(name, fitted, seed_seconds={"fit or load": round(fitted_at - start, 1),
                                                         "c*, sign, probe, scoring": round(time.perf_counter() - fitted_at, 1)})
        return rows

    def run(self) -> Path:
        started, started_at = time.perf_counter(), time.time()
        self.prepare()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        discard_committed_record(self.run_dir, self.cfg.overwrite)
        if self.shard.sharded:
            log.info("process %d of %d: evaluating every %d-th batch; parts are merged in the result store",
                     self.shard.rank, self.shard.world, self.shard.world)
        self._log_estimate()
        atomic_write_json(self.run_dir / "config.json", {**dataclasses.asdict(self.cfg), "tuned_defaults": self.tuning})
        atomic_write_json(self.run_dir / "environment.json",
                          environment(self.loaded, self.cfg.data_dir, self.pairs_hash, self.shard.world))
        log.info("evaluating the unsteered model (c=0, shared by every method)")
        self.base_rows = self.unsteered_rows()
        self._checkpoint(started, started_at)
        baseline_yesno = yes_no_probe(self.loaded, NoSteering(), 0.0, self.base_system, self.cfg.batch_size,
                                      self.cfg.min_pmass)
        chunks = []
        self.sweep.examples = ExampleBook(self.loaded, self.example_rows, self.cache, self.model_key, self.base_system,
                                          self.artefacts, self.clock)
        for name in self.cfg.methods:
            self.book.start(name)
            self.book.methods[name]["tuning"] = self.tuning[name]
            self.book.methods[name]["seeded"] = self.method_classes[name].seeded  # one seed of it says little
            try:
                chunks += self._method_rows(name)
            except SteerbenchError:
                raise
            except Exception as exc:  # a broken method must not sink the others: record it loudly
                self.book.fail(name, record_failure(self.run_dir, name, exc))
            self._checkpoint(started, started_at)
        if not self.shard.main:  # its parts are in the store; the main process writes the run
            log.info("process %d of %d: finished my share of the evaluation", self.shard.rank, self.shard.world)
            return self.run_dir
        write_rows(self.run_dir, self.cfg, chunks, self.dilemmas.rows, self.split, self.sweep.control.frame())
        self.sweep.examples.write(self.run_dir, self.cfg.target)
        self.status["_baseline"] = {"yesno": baseline_yesno}  # the unsteered model on the yes/no probe
        self.book.methods = write_outcome(self.run_dir, self.cfg, self.status, self._work(started), started_at)
        log.info("results in %s (%d forward passes this run%s)", self.run_dir, self.forward_passes,
                 "; tables/ and plots/ beside the rows" if self.cfg.tables else "")
        return self.run_dir

    def _work(self, started: float) -> dict:
        """This process's work record so far (``started``: its ``time.perf_counter()`` at the start)."""
        return process_record(self.forward_passes, self.work, self.clock.as_dict(), self.estimate, started)

    def _checkpoint(self, started: float, started_at: float) -> None:
        if self.shard.main:  # what a killed run spent survives it (bench.running.work_log)
            checkpoint(self.run_dir, started_at, self._work(started))

    def plan(self) -> list[MethodPlan]:
        """What this run will compute, method by method (for the wall-time estimate)."""
        self.prepare()
        return plan_methods(self.cfg, self.method_classes, self.artefacts)

    def _log_estimate(self) -> None:
        if not self.shard.main:
            return
        plans = self.plan()
        with self.clock("load (data, model, pairs)"):
            guess = estimate(self.loaded, plans, len(self.dilemmas.rows), len(self.pairs),
                             continuations=any(p.sign for p in plans))
        log.info("%s", guess.line())
        self.estimate = {"seconds": round(guess.seconds), "probe_seconds": round(guess.probe_seconds, 4),
                         "scale": round(guess.scale, 3), "line": guess.line()}
