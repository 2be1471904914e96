"""repeng PCA: the real ``repeng`` library's ``ControlVector.train`` on the honesty pairs.

Boundary adaptation (repeng 0.4.0 under transformers 5): repeng tokenizes its batches itself and
reads the last non-padding token, which is only position-correct with right padding (with left
padding and no position ids, the padded rows' positions shift). We hand it a right-padding copy
of the tokenizer; nothing of repeng is re-implemented.

Determinism: repeng fits ``sklearn.decomposition.PCA(n_components=1)`` with no random state; on a real
model's hidden states (e.g. 200 x 576) sklearn then picks its randomized solver, seeded from numpy's
global RNG, so two fresh fits differed by up to 6.6e-5 (0.19 in bf16 logratios). We fix numpy's global
seed around the call (and restore the caller's state after).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from repeng import ControlVector, DatasetEntry

from bench.api.residual import ResidualSteering
from bench.api.steering import FitContext, Steering, SteeringMethod, option
from bench.errors import at_least, one_of
from bench.model.layers import DEFAULT_LAYERS, resolve_layers


class RepengPCA(SteeringMethod):
    name = "repeng"
    seeded = False  # no random choice in fitting
    description = "repeng ControlVector (PCA of hidden-state differences), added to the residual stream"

    @dataclass
    class Options:
        layers: str = option(DEFAULT_LAYERS, "layer spec: fractions of depth (0.3:0.9), indices (5-9, 3,7) or all")
        method: str = option("pca_diff", "repeng's own reading method: pca_diff | pca_center")
        batch_size: int = option(32, "pairs per forward while reading hidden states")

        def validate(self) -> None:
            one_of("--repeng.method", self.method, ("pca_diff", "pca_center"))
            at_least("--repeng.batch-size", self.batch_size, 1)

    def fit(self, ctx: FitContext) -> Steering:
        model, n_layers = ctx.loaded.model, ctx.loaded.n_layers
        layers = resolve_layers(self.options.layers, n_layers)
        tokenizer = copy.deepcopy(ctx.loaded.tokenizer)
        tokenizer.padding_side = "right"
        dataset = [DatasetEntry(positive=p.positive, negative=p.negative) for p in ctx.pairs]
        state = np.random.get_state()
        np.random.seed(0)  # sklearn's randomized PCA solver draws from the global RNG (see the module doc)
        try:
            vector = ControlVector.train(
                model, tokenizer, dataset,
                hidden_layers=layers, batch_size=self.options.batch_size, method=self.options.method,
            )
        finally:
            np.random.set_state(state)
        return ResidualSteering(vector.directions, vector.model_type, {"repeng_method": self.options.method})

    def load(self, path: Path, ctx: FitContext) -> Steering:
        return ResidualSteering.load(path)
