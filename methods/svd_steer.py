"""svd-steer: U-basis weight-space steering (journal 2025-11-14). No training, no backprop.

For each target Linear ``W = U S V^T`` (top-r), the layer's outputs on the honesty pairs (last token)
are projected on ``U``; ``d_s = mean(y_cho @ U - y_rej @ U)`` (or the first principal component of
those projected differences). Steering adds ``c * U diag(d_s) V^T x`` to the layer's output, computed
as ``U (d_s * (V^T x))`` without materialising the dense delta. Input-dependent, and any output width
works (q_proj wider than k/v) because the delta is built from the layer's own bases.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from safetensors.torch import load_file, save_file
from transformers import PreTrainedModel

from bench.api.steering import FitContext, Steering, SteeringMethod, option
from bench.errors import at_least, names_list, one_of
from bench.model.hooks import output_hooks
from bench.model.layers import (
    DEFAULT_LAYERS,
    find_linear_targets,
    lowest_layer,
    resolve_layers,
    target_module,
)
from bench.model.padding import encode, left_padded_batches, model_device


class SVDSteering(Steering):
    def __init__(self, factors: dict[str, dict[str, torch.Tensor]], info: dict):
        self.factors, self.info = factors, info  # target -> {"u": [out,r], "v": [in,r], "d": [r]}

    def delta(self, target: str, x: torch.Tensor, coeff: float) -> torch.Tensor:
        f = self.factors[target]
        return (coeff * ((x.float() @ f["v"]) * f["d"]) @ f["u"].T).to(x.dtype)

    @contextlib.contextmanager
    def steer(self, model: PreTrainedModel, coeff: float) -> Iterator[PreTrainedModel]:
        def hook_for(target):
            return lambda module, inputs, output: output + self.delta(target, inputs[0], coeff)

        with output_hooks(model, {t: hook_for(t) for t in self.factors}):
            yield model

    def first_steered_layer(self) -> int | None:
        return lowest_layer(self.factors)

    def n_parameters(self) -> int:
        return sum(f["d"].numel() for f in self.factors.values())  # u and v are the weight's own singular vectors

    def save(self, path: Path) -> None:
        flat = {f"{t}|{k}": v.contiguous() for t, f in self.factors.items() for k, v in f.items()}
        save_file(flat, str(path / "svd_steer.safetensors"))
        (path / "svd_steer.json").write_text(json.dumps(self.info, indent=1))

    @classmethod
    def load(cls, path: Path) -> "SVDSteering":
        factors: dict[str, dict[str, torch.Tensor]] = {}
        for key, value in load_file(str(path / "svd_steer.safetensors")).items():
            target, name = key.split("|")
            factors.setdefault(target, {})[name] = value
        return cls(factors, json.loads((path / "svd_steer.json").read_text()))



class SVDSteer(SteeringMethod):
    name = "svd-steer"
    seeded = False  # no random choice in fitting
    description = "U-basis weight-space steering: c * U diag(d_s) V^T x from the pairs' projected outputs"

    @dataclass
    class Options:
        rank: int = option(16, "top singular directions of each weight that the steering lives in")
        modules: str = option("o_proj,down_proj", "comma list of projection names to steer")
        layers: str = option(DEFAULT_LAYERS, "layer spec: fractions of depth (0.3:0.9), indices (5-9, 3,7) or all")
        direction: str = option("mean", "mean | pca: mean or first principal component of the projected differences")

        def validate(self) -> None:
            at_least("--svd-steer.rank", self.rank, 1)
            names_list("--svd-steer.modules", self.modules)
            one_of("--svd-steer.direction", self.direction, ("mean", "pca"))

    def fit(self, ctx: FitContext) -> Steering:
        o = self.options
        if o.direction not in ("mean", "pca"):
            raise ValueError(f"svd-steer.direction must be mean or pca, got {o.direction!r}")
        model, tok = ctx.loaded.model, ctx.loaded.tokenizer
        targets = find_linear_targets(model, [m.strip() for m in o.modules.split(",")],
                                      resolve_layers(o.layers, ctx.loaded.n_layers))
        texts = [t for p in ctx.pairs for t in (p.positive, p.negative)]
        outputs = {t: torch.zeros(len(texts), target_module(model, t).out_features) for t in targets}
        current: dict[str, list[int]] = {}

        def recorder(target):
            def hook(module, inputs, output):
                outputs[target][current["idx"]] = output[:, -1].float().cpu()  # last token (left padded)
            return hook

        with torch.inference_mode(), output_hooks(model, {t: recorder(t) for t in targets}):
            for idx, batch in left_padded_batches(encode(tok, texts), ctx.batch_size, tok.pad_token_id,
                                                  model_device(model)):
                current["idx"] = idx
                model(**batch, logits_to_keep=1, use_cache=False)
        factors = {}
        for t in targets:
            weight = target_module(model, t).weight.detach().float().cpu()
            u, _, vh = torch.linalg.svd(weight, full_matrices=False)
            u, v = u[:, : o.rank], vh[: o.rank].T
            diffs = outputs[t][0::2] @ u - outputs[t][1::2] @ u  # [pairs, r]
            d = diffs.mean(0)
            if o.direction == "pca":
                _, _, pcs = torch.linalg.svd(diffs - d, full_matrices=False)
                d = pcs[0] * torch.sign(pcs[0] @ d) * d.norm()  # signed like the mean, same magnitude
            factors[t] = {"u": u.contiguous(), "v": v.contiguous(), "d": d.contiguous()}
        return SVDSteering(factors, {"targets": targets, "rank": o.rank, "direction": o.direction})

    def load(self, path: Path, ctx: FitContext) -> Steering:
        return SVDSteering.load(path)
