"""Random: a seeded random direction per layer, scaled to repeng's norm at that layer. The noise floor."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.api.residual import ResidualSteering
from bench.api.steering import FitContext, Steering, SteeringMethod, option
from bench.model.layers import DEFAULT_LAYERS


class RandomVector(SteeringMethod):
    name = "random"
    description = "random direction per layer with repeng's per-layer norm (noise floor)"
    sign_calibrated = False  # the noise floor: its sign is whatever the seed drew

    @dataclass
    class Options:
        layers: str = option(DEFAULT_LAYERS, "layer spec: fractions of depth (0.3:0.9), indices (5-9, 3,7) or all")

    def fit(self, ctx: FitContext) -> Steering:
        # Same layers as repeng, and repeng's norm per layer, so only the direction differs.
        reference: ResidualSteering = ctx.fit_method("repeng", layers=self.options.layers)
        rng = np.random.default_rng(ctx.seed)
        directions = {}
        for layer, norm in sorted(reference.norms().items()):
            v = rng.standard_normal(reference.directions[layer].shape[0])
            directions[layer] = (v / np.linalg.norm(v) * norm).astype(np.float32)
        return ResidualSteering(directions, reference.model_type, {"scaled_to": "repeng per-layer norm"})

    def load(self, path: Path, ctx: FitContext) -> Steering:
        return ResidualSteering.load(path)
