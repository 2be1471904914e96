"""InnerPiSSA: learnable SVD rotations and singular-value shifts, trained to separate honest from
dishonest hidden states in the singular vector basis (SPEC.md method 7; journal 2025-11-06/08/13).

Files: ``layer.py`` (the adapted Linear), ``model.py`` (injection, save/load), ``train.py`` (loss).
"""

from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from statistics import mean
from typing import Iterator

import pandas as pd
from transformers import PreTrainedModel

from bench.api.steering import FitContext, Steering, SteeringMethod, option
from bench.errors import SteerbenchError, at_least, names_list, one_of, positive
from bench.model.layers import find_linear_targets, lowest_layer, resolve_layers
from bench.model.loading import LoadedModel
from bench.store import atomic_write_frame
from methods.innerpissa.layer import SCALE_MODES, AdapterShape
from methods.innerpissa.model import InnerPiSSAAdapters
from methods.innerpissa.train import TrainSettings, measurement_basis, train


class InnerPiSSASteering(Steering):
    def __init__(self, adapters: InnerPiSSAAdapters, info: dict, history: list[dict] | None = None):
        self.adapters, self.info = adapters, info
        self.history = history  # the training log, present right after fitting

    @contextlib.contextmanager
    def steer(self, model: PreTrainedModel, coeff: float) -> Iterator[PreTrainedModel]:
        with self.adapters.attached(model), self.adapters.coefficient(coeff):
            yield model

    def first_steered_layer(self) -> int | None:
        return lowest_layer(self.adapters.targets)

    def n_parameters(self) -> int | None:
        """The free numbers trained: per adapted weight, the skew generators' upper triangles and delta_s."""
        total = 0
        for _, layer in self.adapters.items():
            for theta in (layer.theta_v, layer.theta_u):
                if theta is not None:
                    total += theta.shape[0] * (theta.shape[0] - 1) // 2
            if layer.delta_s is not None:
                total += layer.delta_s.numel()
        return total

    def trained_orientation(self) -> int | None:
        """From the last epoch's record: AntiPaSTO's ordering margins (the change of log p(cho) - log p(rej)
        at +1 and -1), InnerPiSSA's separations along the honest direction at +c and -c."""
        record = self.info.get("ordering_margin") or self.info.get("separation")
        if not record or record.get("plus") is None or record.get("plus") == record.get("minus"):
            return None
        return 1 if record["plus"] > record["minus"] else -1

    def save(self, path: Path) -> None:
        self.adapters.save(path, {"info": self.info})
        if self.history:
            atomic_write_frame(path / "loss_curve.csv", pd.DataFrame(self.history))



class InnerPiSSA(SteeringMethod):
    name = "innerpissa"
    description = "SVD adapter: Cayley rotation of V and shift of S, trained contrastively on hidden states"

    @dataclass
    class Options:
        rank: int = option(16, "top singular directions adapted per weight")
        # The residual writers; the journal's working runs adapted up_proj (2025-10-12, "use up_proj space") or
        # q/k/v/gate/up at rank 16 (2025-11-13): both are candidates of the tuning grid (data/tuning_grid.json).
        modules: str = option("o_proj,down_proj", "comma list of projections to adapt (journal: up_proj, or "
                                                  "q_proj,k_proj,v_proj,gate_proj,up_proj)")
        layers: str = option("0.3:-3", "layer spec: fractions of depth, indices (negative from the end) or all")
        measure_layer: int = option(-3, "layer whose hidden states the loss reads (later layers suppress the "
                                        "planning signal)")
        rotate_u: bool = option(False, "learn a rotation of the output singular vectors U")
        rotate_v: bool = option(True, "learn a rotation of the input singular vectors V")
        scale_s: str = option("add2", "how c changes the singular values: add2 (S + c tanh(d)) | add | mult | none")
        max_angle: float = option(0.3, "soft bound (radians) on each entry of a rotation's skew generator")
        lr: float = option(5e-3, "learning rate")
        epochs: int = option(2, "passes over the honesty pairs")
        batch_pairs: int = option(8, "pairs per optimiser step")
        loss: str = option("dpo", "dpo | margin (dpo: bounded, stable at high lr in the journal and here)")
        beta: float = option(1.0, "DPO temperature of the separation loss")
        coherence_margin: float = option(0.2, "nats/token allowed above the c=0 NLL before the coherence "
                                                 "penalty starts")
        coherence_weight: float = option(100.0, "weight of the coherence penalty beyond the margin")
        sample_wise_direction: bool = option(True, "each pair's own separation direction; false: one dataset-level "
                                                  "direction (first PC of the differences)")
        coherence: str = option("token", "trust region on each token's dNLL (token), on |dNLL| per token "
                                         "(token2, two-sided), or on the mean dNLL (mean: the gameable form)")
        coeff_range: str = option("1", "|c| trained at, per batch: 1, or lo:hi drawn uniformly (e.g. 0.25:1, the "
                                       "c* values matched strength evaluates at)")

        def coeff_bounds(self) -> tuple[float, float]:
            lo, _, hi = self.coeff_range.partition(":")
            try:
                bounds = (float(lo), float(hi or lo))
            except ValueError:
                bounds = (math.nan, math.nan)
            if not (0 < bounds[0] <= bounds[1]):
                raise SteerbenchError(f"--innerpissa.coeff-range {self.coeff_range!r} is not accepted; accepted: a "
                                      "positive number or lo:hi with 0 < lo <= hi")
            return bounds

        def validate(self) -> None:
            n = "--innerpissa."
            at_least(n + "rank", self.rank, 1)
            names_list(n + "modules", self.modules)
            one_of(n + "scale-s", self.scale_s, SCALE_MODES)
            one_of(n + "loss", self.loss, ("dpo", "margin"))
            positive(n + "max-angle", self.max_angle)
            positive(n + "lr", self.lr)
            at_least(n + "epochs", self.epochs, 1)
            at_least(n + "batch-pairs", self.batch_pairs, 1)
            positive(n + "beta", self.beta)
            at_least(n + "coherence-margin", self.coherence_margin, 0)
            at_least(n + "coherence-weight", self.coherence_weight, 0)
            one_of(n + "coherence", self.coherence, ("token", "token2", "mean"))
            self.coeff_bounds()

    def _plan(self, loaded: LoadedModel) -> tuple[list[str], int, AdapterShape]:
        o = self.options
        n = loaded.n_layers
        layers = resolve_layers(o.layers, n)
        measure = o.measure_layer + n if o.measure_layer < 0 else o.measure_layer
        measure = min(max(measure, layers[-1]), n - 1)  # adapters must sit at or before the measurement
        targets = find_linear_targets(loaded.model, [m.strip() for m in o.modules.split(",")], layers)
        shape = AdapterShape(rank=o.rank, rotate_u=o.rotate_u, rotate_v=o.rotate_v, scale_s=o.scale_s,
                             max_angle=o.max_angle)
        return targets, measure, shape

    def fit(self, ctx: FitContext) -> Steering:
        o = self.options
        if o.loss not in ("margin", "dpo"):
            raise ValueError(f"innerpissa.loss must be margin or dpo, got {o.loss!r}")
        targets, measure, shape = self._plan(ctx.loaded)
        adapters = InnerPiSSAAdapters(ctx.loaded.model, targets, shape, seed=ctx.seed)
        settings = TrainSettings(lr=o.lr, epochs=o.epochs, batch_pairs=o.batch_pairs, loss=o.loss, beta=o.beta,
                                 coherence_margin=o.coherence_margin, coherence_weight=o.coherence_weight,
                                 sample_wise_direction=o.sample_wise_direction, coherence=o.coherence,
                                 coeff_range=o.coeff_bounds())
        basis = measurement_basis(ctx.loaded, measure, o.rank)
        history = train(ctx.loaded, adapters, ctx.pairs, measure, basis, settings, ctx.seed)
        last_epoch = [h for h in history if h["epoch"] == history[-1]["epoch"]] if history else []
        info = {"targets": targets, "measure_layer": measure, "n_adapted": len(targets),
                "final_loss": history[-1]["loss"] if history else None,
                # over the last epoch, at each end: the share of pair tokens whose dNLL left the trust region
                # (coherence_margin around c=0's NLL) and the mean dNLL per token
                "tokens_outside_margin": {end: mean([h[f"outside_{end}"] for h in last_epoch]) if last_epoch else None
                                          for end in ("plus", "minus")},
                "pair_dnll": {end: mean([h[f"dnll_{end}"] for h in last_epoch]) if last_epoch else None
                              for end in ("plus", "minus")},
                # the separation along the honest direction at each end: the fit's own orientation record
                "separation": {end: mean([h[f"sep_{end}"] for h in last_epoch]) if last_epoch else None
                               for end in ("plus", "minus")}}
        return InnerPiSSASteering(adapters, info, history)

    def load(self, path: Path, ctx: FitContext) -> Steering:
        return load_adapter_steering(path, ctx)


def load_adapter_steering(path: Path, ctx: FitContext) -> InnerPiSSASteering:
    """A saved SVD-adapter steering (InnerPiSSA's, or AntiPaSTO's, which shares the adapter)."""
    config = json.loads((path / "adapter_config.json").read_text())
    shape = AdapterShape(**config["shape"])
    adapters = InnerPiSSAAdapters(ctx.loaded.model, config["targets"], shape, seed=ctx.seed)
    adapters.load_trained(path)
    return InnerPiSSASteering(adapters, config["info"])

