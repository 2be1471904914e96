"""Off-target control items: Yes/No questions that steering toward honesty should leave alone.

``data/control_items.json`` (written for the project, never DailyDilemmas): arithmetic statements with a
known answer (half true, half false) and neutral preferences. They are asked in the yes/no probe's answer
format at every coefficient a method is evaluated at, and kept beside the rows as ``control.parquet``
(method, seed, budget, coeff, item, kind, logratio, pmass). They feed Steering F1's arbitrary-flip term and
the capability-kept column (``bench.results.paper_metrics``); they are never part of the DailyDilemmas statistics.
Scores are cached beside each fitted artefact per effective coefficient (the unsteered c=0 once per model).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from bench.api.steering import Steering
from bench.evaluation.probe import score_questions
from bench.model.loading import LoadedModel
from bench.paths import data_file
from bench.store import cached_base_result, stable_hash

CONTROL_FILE = data_file("control_items.json")
CONTROL_COLUMNS = ["method", "seed", "budget", "coeff", "effective_coeff", "item", "kind", "answer", "logratio", "pmass"]


def load_control(path: Path = CONTROL_FILE) -> pd.DataFrame:
    """One row per item: item (index), kind (arithmetic / preference), question, answer (Yes / No / None)."""
    raw = json.loads(Path(path).read_text())
    items = [("arithmetic", d["question"], d["answer"]) for d in raw["arithmetic"]]
    items += [("preference", d["question"], None) for d in raw["preference"]]
    return pd.DataFrame([(i, k, q, a) for i, (k, q, a) in enumerate(items)], columns=["item", "kind", "question", "answer"])


def items_hash(items: pd.DataFrame) -> str:
    return stable_hash(items[["kind", "question", "answer"]].values.tolist(), 8)


def score_control(loaded: LoadedModel, steering: Steering, coeff: float, base_system: str | None,
                  batch_size: int, items: pd.DataFrame) -> list[list[float]]:
    """[logratio, pmass] per item, steered at ``coeff``, in the yes/no probe's answer format."""
    scores = score_questions(loaded, steering, coeff, base_system, batch_size, list(items["question"]), "control items")
    return scores[["logratio", "pmass"]].to_numpy().tolist()


def control_frame(scores: list[list[float]], items: pd.DataFrame, **columns) -> pd.DataFrame:
    frame = items[["item", "kind", "answer"]].fillna("").copy()
    frame["logratio"], frame["pmass"] = [s[0] for s in scores], [s[1] for s in scores]
    return frame.assign(**columns)


class ControlBook:
    """Scores the control items wherever the sweep evaluates a method, and collects them for the run."""

    def __init__(self, loaded: LoadedModel, cache: Path, model_key: dict, batch_size: int, base_system: str | None,
                 artefacts, clock):
        self.loaded, self.cache, self.batch_size, self.base_system = loaded, cache, batch_size, base_system
        self.artefacts, self.clock = artefacts, clock
        self.items = load_control()
        self.hash = items_hash(self.items)
        self.base_key = {"model": model_key, "items": self.hash, "batch_size": batch_size, "system": base_system}
        self.frames: list[pd.DataFrame] = []

    def at(self, fitted, steering: Steering, effective: float, shared_c0: bool, **columns) -> None:
        def compute() -> list[list[float]]:
            return score_control(self.loaded, steering, effective, self.base_system, self.batch_size, self.items)

        if shared_c0:
            with self.clock("control items"):
                scores = cached_base_result(self.cache, "control", self.base_key, lambda: {"scores": compute()})["scores"]
        else:
            scores = self.artefacts.beside(fitted, f"control-c{effective:.6g}-{self.hash}.json", "control items",
                                           lambda: {"scores": compute()})["scores"]
        self.frames.append(control_frame(scores, self.items, effective_coeff=effective, **columns))

    def frame(self) -> pd.DataFrame:
        if not self.frames:
            return pd.DataFrame(columns=CONTROL_COLUMNS)
        return pd.concat(self.frames, ignore_index=True)[CONTROL_COLUMNS].sort_values(
            ["method", "seed", "budget", "coeff", "item"], ignore_index=True)

