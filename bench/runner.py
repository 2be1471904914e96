"""One benchmark run: fit every method on the honesty pairs, sweep coefficients, store rows.

Work is done once and cached under ``results/<model>/cache/``: fitted artefacts by config hash,
the c=0 evaluation once per model (shared by every method whose c=0 is the unsteered model), and
each (steering, coefficient) evaluation chunk. A rerun of a finished run does no forward pass.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import platform
import subprocess
import time
import traceback
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

import pandas as pd
from tqdm.auto import tqdm

from bench import report
from bench.calibration import calibrate_sign
from bench.chat import DEFAULT_SYSTEM
from bench.config import RunConfig, build_options
from bench.continuations import pair_continuations
from bench.dilemmas import (
    DILEMMA_FILE,
    VALUES_FILE,
    Dilemmas,
    check_target,
    load_dilemmas,
    select_subset,
)
from bench.distributed import ProcessShard, single_process_env
from bench.errors import SteerbenchError
from bench.evaluator import CALIBRATION, EVALUATION, dilemma_prompts, heldout_nll, load_heldout, score_prompts
from bench.models import LoadedModel, load_model, model_slug
from bench.pairs import HonestyPair, make_pairs
from bench.probe import yes_no_probe
from bench.stats import endpoints
from bench.steering import FitContext, NoSteering, Steering, SteeringMethod
from bench.store import (
    atomic_dir,
    atomic_write_frame,
    atomic_write_json,
    cache_key,
    check_writable,
    file_lock,
    file_sha256,
    load_artefact,
    read_cached_frame,
    stable_hash,
    write_status,
)
from bench.timing import StageClock
from bench.validate import check_method_layers, validate_config
from methods import get_method_class

log = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("torch", "transformers", "peft", "trl", "repeng", "datasets", "numpy", "pandas", "scipy", "statsmodels")


@dataclasses.dataclass
class Fitted:
    steering: Steering
    key: str  # artefact hash: identifies this fitted steering in every cache key
    meta: dict
    folder: Path  # the artefact folder: per-magnitude calibrations and c* searches are cached beside it


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


class Runner:
    def __init__(self, cfg: RunConfig):
        self.cfg = cfg
        # Validate everything cheap before any compute: method names and options, output folder.
        validate_config(cfg)  # every run option, the run name, the suffix file: one line, before any work
        self.method_classes = {name: get_method_class(name) for name in cfg.methods}
        self.options = {name: build_options(cls, cfg.method_options.get(name, {}))
                        for name, cls in self.method_classes.items()}
        unknown_opts = set(cfg.method_options) - set(cfg.methods)
        for name in unknown_opts:
            get_method_class(name)  # an unknown name fails with the known list
            log.warning("options given for %s, which is not in --methods: ignored", name)
        self.model_dir = Path(cfg.results_dir) / model_slug(cfg.model)
        check_writable(self.model_dir)
        self.cache = self.model_dir / "cache"
        self.run_dir = self.model_dir / (cfg.run_name or f"run-{stable_hash(cfg.identity(), 8)}")
        self.shard = ProcessShard.from_env()
        self.forward_passes = 0
        self.work = {"fits": 0, "evaluations": 0, "c0_evaluations": 0}  # computed (not loaded) this run
        self._fitted: dict[str, Fitted] = {}
        self._kl_probe = None
        self.clock = StageClock()  # wall time per stage, in the run's work record
        self.status: dict[str, dict] = {}

    # ----------------------------------------------------------------- set-up
    def _load(self) -> None:
        cfg = self.cfg
        dilemmas = load_dilemmas(cfg.data_dir)
        check_target(dilemmas, cfg.target)
        self.dilemmas: Dilemmas = select_subset(dilemmas, cfg.n_dilemmas, cfg.target, cfg.seed)
        self.loaded: LoadedModel = load_model(cfg.model, cfg.dtype, cfg.device, cfg.trust_remote_code)
        check_method_layers(self.options, self.loaded)  # every layer spec fits the model, before any fit
        self.pairs: list[HonestyPair] = make_pairs(self.loaded.tokenizer, cfg.n_pairs, cfg.seed, cfg.suffix_file)
        self.base_system = DEFAULT_SYSTEM
        self.pairs_hash = stable_hash([(p.positive, p.negative) for p in self.pairs])
        self.model_key = {"model": self.loaded.fingerprint, "dtype": str(self.loaded.dtype)}
        self.kl_texts_hash = stable_hash(load_heldout(CALIBRATION), 8)  # c* depends on the texts it is searched on
        self.nll_texts_hash = stable_hash(load_heldout(EVALUATION), 8)  # and dNLL on the other half
        log.info("%d dilemmas (%d rows), %d honesty pairs, coefficients %s",
                 self.dilemmas.rows["dilemma_idx"].nunique(), len(self.dilemmas.rows), len(self.pairs), cfg.coeffs)

    def _count_forward(self) -> None:
        self.forward_passes += 1

    # ---------------------------------------------------------------- fitting
    def fit(self, name: str, seed: int | None = None, **overrides: Any) -> Fitted:
        """Fit a method (or load it from the artefact cache). Its sign is calibrated later, at the
        magnitude that is evaluated (``sign``).

        ``seed``: the training seed (default: the run's seed); ignored by methods that are not ``seeded``.
        """
        cls = self.method_classes.get(name) or get_method_class(name)
        seed = self.cfg.seed if seed is None or not cls.seeded else seed
        options = self.options.get(name) or cls.Options()
        if overrides:
            options = dataclasses.replace(options, **overrides)
        opts = dataclasses.asdict(options)
        # The batch size changes the numerics of fits (padding), so it is in the key; CACHE_VERSION via
        # cache_key. Sign calibration is not part of a fit: it is cached per evaluated magnitude (``_sign``).
        key = cache_key({"method": name, "options": opts, **self.model_key, "pairs": self.pairs_hash, "seed": seed,
                         "batch_size": self.cfg.batch_size})
        if key in self._fitted:
            return self._fitted[key]
        method: SteeringMethod = cls(options)
        folder = self.cache / "artifacts" / f"{name}-{key}"
        ctx = FitContext(self.loaded, self.pairs, seed, self.cfg.batch_size,
                         fit_method=lambda other, **o: self.fit(other, **o).steering, log_dir=None,
                         continuations=self.continuations)
        # Locked: a concurrent run needing the same artefact waits, then loads it instead of refitting.
        with file_lock(self.cache / "locks" / f"{name}-{key}.lock"):
            cached = load_artefact(folder, lambda f: method.load(f, ctx))  # unreadable: moved aside, refit
            if cached is not None:
                meta, steering = cached
                log.info("%s: reusing fitted artefacts %s", name, folder.name)
            else:
                log.info("%s: fitting on %d honesty pairs (seed %d)", name, len(self.pairs), seed)
                self.work["fits"] += 1
                start = time.perf_counter()
                # The fit writes its logs into the temporary folder that becomes the artefact on success,
                # never into the final folder (which would block the atomic rename and lose the fit).
                with atomic_dir(folder) as tmp:
                    ctx.log_dir = tmp
                    with single_process_env(), self.clock("fit"):  # a trainer must not join the launcher's group
                        steering = method.fit(ctx)
                    meta = {"method": name, "options": opts, "seed": seed,
                            "fit_seconds": round(time.perf_counter() - start, 2), "n_pairs": len(self.pairs),
                            "peak_rss_mb": peak_rss_mb(), "describe": steering.describe()}
                    steering.save(tmp)
                    atomic_write_json(tmp / "meta.json", meta)
                ctx.log_dir = folder
                steering = method.load(folder, ctx)
        fitted = Fitted(steering, key, meta, folder)
        self._fitted[key] = fitted
        return fitted

    def continuations(self, n: int | None = 32, max_new_tokens: int = 16):
        with self.clock("continuations"):
            return pair_continuations(self.loaded, self.pairs, self.cache / "continuations", n, max_new_tokens,
                                      self.cfg.seed, self.cfg.batch_size)

    # ------------------------------------------------------------- evaluating
    def _eval_chunk(self, steering: Steering, key: str, coeff: float, desc: str) -> pd.DataFrame:
        """Logratio and pmass for every dilemma row at one effective coefficient (cached)."""
        system = steering.system_prompt(coeff, self.base_system)
        prompts = dilemma_prompts(self.loaded.tokenizer, self.dilemmas.rows, system)
        # The evaluation path is in the key: both give the same scores to float tolerance, not bit for bit.
        path_name = "prefix-cache" if self.cfg.prefix_cache else "full"
        # The batch size changes bf16 numerics (GEMM shapes, padding): in the key, like the dtype.
        chunk_key = cache_key({**self.model_key, "steering": key, "coeff": coeff, "prompts": prompts, "path": path_name,
                               "nll_texts": self.nll_texts_hash, "batch_size": self.cfg.batch_size})
        path = self.cache / "eval" / f"{chunk_key}.parquet"
        lock = self.cache / "locks" / f"eval-{chunk_key}.lock"
        if self.shard.sharded:  # each process holds the lock of its own part only
            lock = self.shard.part_path(lock)
        with file_lock(lock):
            cached = read_cached_frame(path)
            if cached is not None:
                return cached
            part = read_cached_frame(self.shard.part_path(path)) if self.shard.sharded else None
            if part is None:
                part = self._score(steering, coeff, prompts, system, desc)
            frame = self._merge_parts(self.shard.gather(path, part)) if self.shard.sharded else part
            atomic_write_frame(path, frame)
            return frame

    def _score(self, steering: Steering, coeff: float, prompts: list[str], system: str | None, desc: str) -> pd.DataFrame:
        """This process's rows of one chunk: logratio, pmass, and the held-out NLL (the main process's job)."""
        self.work["evaluations"] += 1
        self.work["c0_evaluations"] += coeff == 0
        groups = self.dilemmas.rows["dilemma_idx"].tolist() if self.cfg.prefix_cache else None
        with steering.apply(self.loaded.model, coeff) as steered:
            with self.clock("DailyDilemmas scoring"):
                scores = score_prompts(steered, self.loaded.tokenizer, prompts, self.cfg.batch_size, desc,
                                       on_forward=self._count_forward, groups=groups,
                                       shard=(self.shard.rank, self.shard.world))
            with self.clock("held-out NLL"):
                nll = heldout_nll(steered, self.loaded.tokenizer, system) if self.shard.main else float("nan")
        idx = self.dilemmas.rows["idx"].to_numpy()[scores["row"].to_numpy()]
        return pd.DataFrame({"idx": idx, "logratio": scores["logratio"].to_numpy(),
                             "pmass": scores["pmass"].to_numpy(), "nll": nll})

    def _merge_parts(self, parts: pd.DataFrame) -> pd.DataFrame:
        """The shards' rows in the order a single process writes them, with the main process's NLL."""
        nll = parts["nll"].dropna()
        merged = parts.set_index("idx").loc[self.dilemmas.rows["idx"].to_numpy()].reset_index()
        merged["nll"] = float(nll.iloc[0]) if len(nll) else float("nan")
        return merged[["idx", "logratio", "pmass", "nll"]]

    def _record(self, name: str, fitted: Fitted, **facts: Any) -> None:
        """Status facts of one fit: under its training seed, and at the method level for the first seed."""
        seed = str(fitted.meta.get("seed"))
        self.status.setdefault(name, {"status": "ok"}).setdefault("seeds", {}).setdefault(seed, {}).update(facts)
        if seed == str(self._first_seed(name)):
            self.status[name].update(facts)

    def _first_seed(self, name: str) -> int:
        return self.cfg.seeds[0] if self.method_classes[name].seeded else self.cfg.seed

    @property
    def kl_probe(self):
        """The KL probe on the calibration half of the held-out texts (built on first use: its base pass)."""
        if self._kl_probe is None:
            from bench.strength import KLProbe

            with self.clock("KL search (c*)"):
                self._kl_probe = KLProbe(self.loaded, self.cfg.batch_size)
        return self._kl_probe

    def _beside_artefact(self, fitted: Fitted, filename: str, stage: str, compute: Callable[[], dict]) -> dict:
        """A JSON result cached next to a fitted artefact (c* search, sign calibration, yes/no probe): read
        it, or compute and write it, under the artefact's lock, timing the computation as ``stage``."""
        path = fitted.folder / filename
        with file_lock(self.cache / "locks" / f"{fitted.folder.name}.lock"):
            if path.is_file():
                return json.loads(path.read_text())
            with self.clock(stage):
                result = compute()
            atomic_write_json(path, result)
            return result

    def _strength(self, name: str, fitted: Fitted) -> float | None:
        """The coefficient scale: 1 for raw strength; c* for matched (None when unreachable)."""
        if self.cfg.strength == "raw":
            return 1.0
        from bench.strength import matched_strength

        def search() -> dict:
            if fitted.steering.supported_coeffs is None:
                log.info("%s: searching the coefficient whose KL on held-out text is %.3g nats/token",
                         name, self.cfg.kl_budget)
                return matched_strength(self.kl_probe, fitted.steering, self.cfg.kl_budget).as_dict()
            # discrete: report how strong its +-1 are instead of rescaling
            plus, minus = self.kl_probe.kl(fitted.steering, 1.0), self.kl_probe.kl(fitted.steering, -1.0)
            return {"budget": self.cfg.kl_budget, "c_star": 1.0, "kl": (plus + minus) / 2, "reached": None,
                    "discrete": True, "kl_plus": plus, "kl_minus": minus}

        result = self._beside_artefact(fitted, f"strength-kl{self.cfg.kl_budget:g}-{self.kl_texts_hash}.json",
                                       "KL search (c*)", search)
        self._record(name, fitted, strength=result)
        if result.get("reached") is False:
            log.warning("%s cannot reach the KL budget %.3g within the search range: no steered rows at "
                        "matched strength", name, self.cfg.kl_budget)
            return None
        return float(result["c_star"])

    def _sign(self, name: str, fitted: Fitted, magnitude: float) -> int:
        """The sign to apply, calibrated on the training pairs at the evaluated ``magnitude`` (cached)."""
        if not self.method_classes[name].sign_calibrated:
            result = {"sign": 1, "skipped": True, "reason": "the noise floor is never calibrated"}
        elif not self.cfg.calibrate_sign:
            result = {"sign": 1, "skipped": True}
        else:
            def calibrate() -> dict:
                log.info("%s: calibrating the sign at |c| = %.4g on the training pairs", name, magnitude)
                return calibrate_sign(self.loaded, fitted.steering, self.continuations(), self.base_system,
                                      self.cfg.batch_size, magnitude)

            result = self._beside_artefact(fitted, f"sign-m{magnitude:.6g}.json", "sign calibration", calibrate)
        self._record(name, fitted, sign=int(result["sign"]), calibration=result)
        return int(result["sign"])

    def _format_probe(self, name: str, fitted: Fitted, effective: float) -> None:
        """Whether the model still answers generic yes/no questions at the evaluated ends (cached)."""
        result = self._beside_artefact(
            fitted, f"yesno-m{effective:.6g}-p{self.cfg.min_pmass:g}.json", "yes/no probe",
            lambda: {end: yes_no_probe(self.loaded, fitted.steering, c, self.base_system, self.cfg.batch_size,
                                       self.cfg.min_pmass) for end, c in (("plus", effective), ("minus", -effective))})
        self._record(name, fitted, yesno=result)

    def _note_unsupported(self, name: str, coeff: float) -> None:
        missing = self.status[name].setdefault("unsupported_coeffs", [])
        if coeff not in missing:
            missing.append(coeff)

    def _method_rows(self, name: str, fitted: Fitted, base: pd.DataFrame) -> list[pd.DataFrame]:
        chunks = []
        scale = self._strength(name, fitted)
        # Calibrate where the sweep is evaluated: at the ends Effect compares, times c* at matched strength.
        lo, hi = endpoints(self.cfg.coeffs)
        magnitude = (scale or 1.0) * max(abs(lo), abs(hi))
        sign = self._sign(name, fitted, magnitude)
        if scale is not None and all(fitted.steering.supports(c) for c in (sign * magnitude, -sign * magnitude)):
            self._format_probe(name, fitted, sign * magnitude)
        for coeff in tqdm(self.cfg.coeffs, desc=f"{name} coefficients", leave=False):
            if not fitted.steering.supports(coeff):
                log.warning("%s cannot be applied at c=%g (it supports %s): no rows at that coefficient",
                            name, coeff, fitted.steering.supported_coeffs)
                self._note_unsupported(name, coeff)
                continue
            if scale is None and coeff != 0:
                self._note_unsupported(name, coeff)
                continue
            effective = sign * coeff * (scale or 0.0)
            if coeff == 0 and fitted.steering.c0_is_base:
                frame, shared = base, True
            else:
                frame = self._eval_chunk(fitted.steering, fitted.key, effective, f"{name} c={coeff:+g}")
                shared = False
            chunks.append(frame.assign(method=name, coeff=coeff, effective_coeff=effective, shared_c0=shared))
        return chunks

    def run(self) -> Path:
        started, started_at = time.perf_counter(), time.time()
        with self.clock("load (data, model, pairs)"):
            self._load()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if self.shard.sharded:
            log.info("process %d of %d: evaluating every %d-th batch; parts are merged in the result store",
                     self.shard.rank, self.shard.world, self.shard.world)
        atomic_write_json(self.run_dir / "config.json", dataclasses.asdict(self.cfg))
        atomic_write_json(self.run_dir / "environment.json", self.environment())
        log.info("evaluating the unsteered model (c=0, shared by every method)")
        base = self._eval_chunk(NoSteering(), "base", 0.0, "unsteered c=0")
        baseline_yesno = yes_no_probe(self.loaded, NoSteering(), 0.0, self.base_system, self.cfg.batch_size,
                                      self.cfg.min_pmass)
        chunks = []
        for name in self.cfg.methods:
            self.status[name] = {"status": "ok"}
            seeds = self.cfg.seeds if self.method_classes[name].seeded else [self.cfg.seed]
            try:
                mine = []  # this method's rows join the run only if every seed finished: no partial methods
                for seed in seeds:
                    fitted = self.fit(name, seed=seed)
                    self._record(name, fitted, artefact=fitted.key, meta=fitted.meta,
                                 fit_seconds=fitted.meta.get("fit_seconds"))
                    mine += [c.assign(seed=seed) for c in self._method_rows(name, fitted, base)]
                chunks += mine
            except SteerbenchError:
                raise
            except Exception as exc:  # a broken method must not sink the others: record it loudly
                reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                log.error("METHOD FAILED: %s could not run (%s); it is listed as failed in the table", name, reason)
                (self.run_dir / f"{name}.error.txt").write_text(traceback.format_exc())
                self.status[name] = {"status": "failed", "reason": reason}
        if not self.shard.main:  # its parts are in the store; the main process writes the run
            log.info("process %d of %d: finished my share of the evaluation", self.shard.rank, self.shard.world)
            return self.run_dir
        rows = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame(
            columns=["idx", "logratio", "pmass", "nll", "method", "coeff", "effective_coeff", "shared_c0", "seed"])
        rows = rows.merge(self.dilemmas.rows[["idx", "dilemma_idx", "action_type"]], on="idx", how="left")
        rows["model"] = self.cfg.model
        rows["strength"] = self.cfg.strength
        cols = ["model", "method", "seed", "strength", "coeff", "effective_coeff", "dilemma_idx", "idx", "action_type",
                "logratio", "pmass", "nll", "shared_c0"]
        rows = rows[cols].sort_values(["method", "seed", "coeff", "dilemma_idx", "idx"]).reset_index(drop=True)
        atomic_write_frame(self.run_dir / "rows.parquet", rows)
        labels = self.dilemmas.rows[["idx", "dilemma_idx", "action_type", "action", "labels"]]
        atomic_write_frame(self.run_dir / "dilemmas.parquet", labels)
        self.status["_baseline"] = {"yesno": baseline_yesno}  # the unsteered model on the yes/no probe
        work = {"forward_passes": self.forward_passes, "computed": self.work, "stage_seconds": self.clock.as_dict(),
                "wall_seconds": round(time.perf_counter() - started, 1), "peak_rss_mb": peak_rss_mb()}
        self.status = write_status(self.run_dir, self.status, work, started_at)  # merged with concurrent runs' records
        table = report.write_summary(self.run_dir, self.cfg.target, self.cfg.min_pmass)  # seconds: not a stage
        print(table)
        log.info("results in %s (%d forward passes this run)", self.run_dir, self.forward_passes)
        return self.run_dir

    def environment(self) -> dict:
        versions = {}
        for pkg in PACKAGES:
            try:
                versions[pkg] = metadata.version(pkg)
            except metadata.PackageNotFoundError:
                versions[pkg] = None
        data_hashes = {}
        if self.cfg.data_dir:
            for f in (DILEMMA_FILE, VALUES_FILE):
                data_hashes[f] = file_sha256(Path(self.cfg.data_dir) / f)
        try:
            commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                                    text=True, timeout=5).stdout.strip() or None
        except (OSError, subprocess.SubprocessError):
            commit = None
        return {"packages": versions, "python": platform.python_version(), "git_commit": commit,
                "model": {"name": self.loaded.name, "source": self.loaded.source, "fingerprint": self.loaded.fingerprint,
                          "dtype": str(self.loaded.dtype), "device": str(self.loaded.device)},
                "data_files_sha256": data_hashes or "hub:" + "kellycyy/daily_dilemmas",
                "pairs_sha": self.pairs_hash, "processes": self.shard.world}

