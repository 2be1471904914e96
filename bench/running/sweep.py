"""One fitted method through the coefficient sweep: its strength, its sign, and its rows.

At matched strength a method's coefficient unit is c*, the coefficient whose KL on the calibration half of
the held-out texts is the budget (searched once per artefact and cached beside it). Its sign is calibrated
on the training pairs at the magnitude that is evaluated (the sweep's largest |c| times c*), and the
yes/no probe checks the model still answers in format at both ends. Every fact is recorded per training
seed in the run's status (``StatusBook``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import pandas as pd
from tqdm.auto import tqdm

from bench.evaluation.calibration import calibrate_sign
from bench.evaluation.coefficients import endpoints
from bench.evaluation.probe import yes_no_probe
from bench.store import atomic_write_json

if TYPE_CHECKING:  # types only: the scoring code's hash (bench.running.code_hash) follows runtime imports
    from bench.api.steering import SteeringMethod
    from bench.config import RunConfig
    from bench.evaluation.evaluations import EvaluationStore
    from bench.model.loading import LoadedModel
    from bench.running.artefacts import ArtefactStore, Fitted
    from bench.timing import StageClock

log = logging.getLogger(__name__)


class StatusBook:
    """Per-method status facts: under each training seed, and at the method level for the first seed."""

    def __init__(self, first_seed: Callable[[str], int]):
        self.first_seed = first_seed
        self.methods: dict[str, dict] = {}

    def start(self, name: str) -> None:
        self.methods[name] = {"status": "ok"}

    def record(self, name: str, fitted: Fitted, **facts: Any) -> None:
        seed = str(fitted.meta.get("seed"))
        self.methods.setdefault(name, {"status": "ok"}).setdefault("seeds", {}).setdefault(seed, {}).update(facts)
        if seed == str(self.first_seed(name)):
            self.methods[name].update(facts)

    def note_unsupported(self, name: str, coeff: float) -> None:
        missing = self.methods[name].setdefault("unsupported_coeffs", [])
        if coeff not in missing:
            missing.append(coeff)

    def fail(self, name: str, reason: str) -> None:
        self.methods[name] = {"status": "failed", "reason": reason}


class Sweep:
    def __init__(self, cfg: RunConfig, loaded: LoadedModel, method_classes: dict[str, type[SteeringMethod]],
                 artefacts: ArtefactStore, evaluations: EvaluationStore, status: StatusBook, clock: StageClock,
                 continuations: Callable[..., Any], kl_texts_hash: str, base_system: str | None):
        self.cfg, self.loaded, self.method_classes = cfg, loaded, method_classes
        self.artefacts, self.evaluations, self.status, self.clock = artefacts, evaluations, status, clock
        self.continuations, self.kl_texts_hash, self.base_system = continuations, kl_texts_hash, base_system
        self._kl_probe = None
        self.control = None  # a bench.evaluation.control.ControlBook, set by the runner
        self.examples = None  # a bench.evaluation.examples.ExampleBook, set by a run (not by a tune)

    @property
    def kl_probe(self):
        """The KL probe on the calibration half of the held-out texts (built on first use: its base pass)."""
        if self._kl_probe is None:
            from bench.evaluation.strength import KLProbe

            with self.clock("KL search (c*)"):
                self._kl_probe = KLProbe(self.loaded, self.cfg.batch_size)
        return self._kl_probe

    def strength(self, name: str, fitted: Fitted, budget: float | None = None) -> float | None:
        """The coefficient scale: 1 for raw strength; c* at ``budget`` (default: the main one) for matched
        (None when unreachable). Recorded in the status: the main budget as ``strength``, every budget under
        ``frontier``."""
        if self.cfg.strength == "raw":
            return 1.0
        budget = self.cfg.kl_budget if budget is None else budget
        result = self.strength_result(fitted, budget)
        self._record_budget(name, fitted, budget, strength=result)
        if result.get("reached") is False:
            log.warning("%s cannot reach the KL budget %.3g within the search range: no steered rows at "
                        "matched strength", name, budget)
            return None
        return float(result["c_star"])

    def strength_result(self, fitted: Fitted, budget: float) -> dict:
        """The c* search at one budget (cached beside the artefact), read from and extending the method's one
        KL-versus-c curve (``kl-curve-*.json`` beside it), so a ladder of budgets costs one search."""
        from bench.evaluation.strength import matched_strength

        def search() -> dict:
            if fitted.steering.supported_coeffs is None:
                log.info("%s: searching the coefficient whose KL on held-out text is %.3g nats/token",
                         fitted.key, budget)
                curve = self._curve(fitted)
                result = matched_strength(self.kl_probe, fitted.steering, budget, curve=curve).as_dict()
                atomic_write_json(self._curve_path(fitted), {"points": [[c, kp, km] for c, (kp, km) in sorted(curve.items())]})
                return result
            # discrete: report how strong its +-1 are instead of rescaling
            plus, minus = self.kl_probe.kl(fitted.steering, 1.0), self.kl_probe.kl(fitted.steering, -1.0)
            return {"budget": budget, "c_star": 1.0, "kl": (plus + minus) / 2, "reached": None,
                    "discrete": True, "kl_plus": plus, "kl_minus": minus}

        return self.artefacts.beside(fitted, f"strength-kl{budget:g}-{self.kl_texts_hash}.json", "KL search (c*)", search)

    def _curve_path(self, fitted: Fitted) -> Path:
        return fitted.folder / f"kl-curve-{self.kl_texts_hash}.json"

    def _curve(self, fitted: Fitted) -> dict[float, tuple[float, float]]:
        """Every (|c|, KL(+c), KL(-c)) measured for this artefact: its curve file, and the point each earlier
        single-budget search kept (those caches predate the curve file)."""
        curve: dict[float, tuple[float, float]] = {}
        for old in fitted.folder.glob(f"strength-kl*-{self.kl_texts_hash}.json"):
            r = json.loads(old.read_text())
            kls = (r.get("kl_plus"), r.get("kl_minus"))
            if r.get("reached") and not r.get("discrete") and all(isinstance(k, float) and k == k for k in kls):
                curve[float(r["c_star"])] = (float(r["kl_plus"]), float(r["kl_minus"]))
        path = self._curve_path(fitted)
        if path.is_file():
            curve.update({float(c): (float(kp), float(km)) for c, kp, km in json.loads(path.read_text())["points"]})
        return curve

    def _record_budget(self, name: str, fitted: Fitted, budget: float, **facts: Any) -> None:
        """Status facts at one budget: at the main budget also at the method level, as single-budget runs have them."""
        if budget == self.cfg.kl_budget or self.cfg.strength == "raw":
            self.status.record(name, fitted, **facts)
        if len(self.cfg.budgets) > 1 and str(fitted.meta.get("seed")) == str(self.status.first_seed(name)):
            frontier = self.status.methods.setdefault(name, {"status": "ok"}).setdefault("frontier", {})
            frontier.setdefault(f"{budget:g}", {}).update(facts)

    def sign(self, name: str, fitted: Fitted, magnitude: float, budget: float | None = None) -> int:
        """The sign to apply, calibrated on the training pairs at the evaluated ``magnitude`` (cached)."""
        if not self.method_classes[name].sign_calibrated:
            result = {"sign": 1, "skipped": True, "reason": "the noise floor is never calibrated"}
        elif not self.cfg.calibrate_sign:
            result = {"sign": 1, "skipped": True}
        else:
            def calibrate() -> dict:
                log.info("%s: calibrating the sign at |c| = %.4g on the training pairs", name, magnitude)
                return calibrate_sign(self.loaded, fitted.steering, self.continuations(None), self.base_system,
                                      self.cfg.batch_size, magnitude)

            result = self.artefacts.beside(fitted, f"sign-m{magnitude:.6g}.json", "sign calibration", calibrate)
            trained = fitted.steering.trained_orientation()  # what the fit's own training record says
            result = {**result, "trained_orientation": trained,
                      "agrees_with_training": None if trained is None or not result["determined"] else
                      trained == int(result["sign"])}
        self._record_budget(name, fitted, self._main(budget), sign=int(result["sign"]), calibration=result)
        return int(result["sign"])

    def format_probe(self, name: str, fitted: Fitted, effective: float, budget: float | None = None) -> None:
        """Whether the model still answers generic yes/no questions at the evaluated ends (cached)."""
        result = self.artefacts.beside(
            fitted, f"yesno-m{effective:.6g}-p{self.cfg.min_pmass:g}.json", "yes/no probe",
            lambda: {end: yes_no_probe(self.loaded, fitted.steering, c, self.base_system, self.cfg.batch_size,
                                       self.cfg.min_pmass) for end, c in (("plus", effective), ("minus", -effective))})
        self._record_budget(name, fitted, self._main(budget), yesno=result)

    def _main(self, budget: float | None) -> float:
        return self.cfg.kl_budget if budget is None else budget

    def rows(self, name: str, fitted: Fitted, base: pd.DataFrame) -> list[pd.DataFrame]:
        """The method's rows at every coefficient of the sweep, at every KL budget of the run (one budget unless
        ``--kl-budgets`` asks for a frontier); c=0 is shared with the unsteered model and repeated per budget
        (``budget`` column; NaN at raw strength), so each (method, budget) is a complete sweep."""
        if self.cfg.strength == "raw":
            return [c.assign(budget=float("nan")) for c in self._rows_at(name, fitted, base, None)]
        chunks = []
        for budget in self.cfg.budgets:
            if budget != self.cfg.kl_budget and fitted.steering.supported_coeffs is not None:
                continue  # discrete: one KL at +-1 whatever the budget, reported at the main budget only
            chunks += [c.assign(budget=budget) for c in self._rows_at(name, fitted, base, budget)]
        return chunks

    def _rows_at(self, name: str, fitted: Fitted, base: pd.DataFrame, budget: float | None) -> list[pd.DataFrame]:
        chunks = []
        scale = self.strength(name, fitted, budget)
        # Calibrate where the sweep is evaluated: at the ends Effect compares, times c* at matched strength.
        lo, hi = endpoints(self.cfg.coeffs)
        magnitude = (scale or 1.0) * max(abs(lo), abs(hi))
        sign = self.sign(name, fitted, magnitude, budget)
        if scale is not None and all(fitted.steering.supports(c) for c in (sign * magnitude, -sign * magnitude)):
            self.format_probe(name, fitted, sign * magnitude, budget)
        at = "" if budget is None or len(self.cfg.budgets) == 1 else f" (KL {budget:g})"
        main = budget is None or budget == self.cfg.kl_budget  # the table's facts come from the main budget
        for coeff in tqdm(self.cfg.coeffs, desc=f"{name} coefficients{at}", leave=False):
            if not fitted.steering.supports(coeff):
                log.warning("%s cannot be applied at c=%g (it supports %s): no rows at that coefficient",
                            name, coeff, fitted.steering.supported_coeffs)
                if main:
                    self.status.note_unsupported(name, coeff)
                continue
            if scale is None and coeff != 0:
                if main:
                    self.status.note_unsupported(name, coeff)
                continue
            effective = sign * coeff * (scale or 0.0)
            if coeff == 0 and fitted.steering.c0_is_base:
                frame, shared = base, True
            else:
                frame = self.evaluations.chunk(fitted.steering, fitted.key, effective, f"{name} c={coeff:+g}{at}")
                shared = False
            chunks.append(frame.assign(method=name, coeff=coeff, effective_coeff=effective, shared_c0=shared))
            first_seed = str(fitted.meta.get("seed")) == str(self.status.first_seed(name))
            if self.examples is not None and main and first_seed and coeff in (lo, 0.0, hi):
                self.examples.at(name, fitted, fitted.steering, coeff, effective, shared)
            if self.control is not None:  # the off-target control items, at the same coefficient
                self.control.at(fitted, fitted.steering, effective, shared, method=name, coeff=coeff,
                                seed=fitted.meta.get("seed", self.cfg.seed),
                                budget=float("nan") if budget is None else budget)
        return chunks
