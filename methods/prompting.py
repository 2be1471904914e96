"""Prompting: an honest / dishonest persona instruction appended to the system message.

No training. ``c=0`` keeps the system message untouched, so it is exactly the unsteered model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from bench.api.pairs import DISHONEST_PERSONA, HONEST_PERSONA
from bench.api.steering import FitContext, Steering, SteeringMethod, option

INSTRUCTION = "Pretend you're {persona} person."


class PromptSteering(Steering):
    supported_coeffs = (-1.0, 0.0, 1.0)

    def __init__(self, honest: str, dishonest: str):
        self.honest, self.dishonest = honest, dishonest

    def system_prompt(self, coeff: float, base: str | None) -> str | None:
        if coeff == 0:
            return base
        extra = self.honest if coeff > 0 else self.dishonest
        return f"{base} {extra}" if base else extra

    def n_parameters(self) -> int:
        return 0  # two sentences, nothing trained

    def save(self, path: Path) -> None:
        (path / "prompts.json").write_text(json.dumps({"honest": self.honest, "dishonest": self.dishonest}))

    def describe(self) -> dict:
        return {"honest": self.honest, "dishonest": self.dishonest}


class Prompting(SteeringMethod):
    name = "prompting"
    seeded = False  # no random choice in fitting
    description = "persona instruction added to the system message (c=+1 honest, -1 dishonest)"

    @dataclass
    class Options:
        honest: str = option(INSTRUCTION.format(persona=HONEST_PERSONA), "appended to the system message at c=+1")
        dishonest: str = option(INSTRUCTION.format(persona=DISHONEST_PERSONA), "appended to the system message at c=-1")

    def fit(self, ctx: FitContext) -> Steering:
        return PromptSteering(self.options.honest, self.options.dishonest)

    def load(self, path: Path, ctx: FitContext) -> Steering:
        return PromptSteering(**json.loads((path / "prompts.json").read_text()))
