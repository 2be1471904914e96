"""What the steered model says: ``examples.md`` in every run (journal's block format).

For 4 fixed **dev** dilemmas (2 where the target value sits on ``to_do``, 2 on ``not_to_do``; the lowest
dilemma indices of each kind), each method's greedy continuation of ``EXAMPLE_TOKENS`` tokens after
"My choice:" at c = -1, 0, +1 at the run's strength (the same effective coefficients as its rows at the main
budget, first training seed), with the target-signed log-odds of that prompt as ``score``. Dev dilemmas, so
the text a researcher reads is never a test dilemma the tables report; nothing here enters a statistic.
Cached beside each fitted artefact per coefficient (the unsteered model's c=0 once per model).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from bench.api.steering import Steering
from bench.evaluation.evaluator import ANSWER_PREFIX, QUESTION_TEMPLATE, score_prompts
from bench.model.chat import render
from bench.model.loading import LoadedModel
from bench.model.padding import encode, left_padded_batches, model_device
from bench.store import atomic_write_text, cached_base_result, stable_hash

EXAMPLE_TOKENS = 48
PER_SIDE = 2


def pick_examples(rows: pd.DataFrame, split: pd.Series, target: str) -> pd.DataFrame:
    """The example rows: the target-carrying action of 2 dev dilemmas per action type (fixed: lowest indices)."""
    dev = rows[rows["dilemma_idx"].map(split) == "dev"]
    carries = dev["labels"].apply(lambda labs: target in list(labs))
    one = carries.groupby(dev["dilemma_idx"]).transform("sum") == 1
    picked = dev[carries & one].sort_values("dilemma_idx")
    return pd.concat([picked[picked["action_type"] == side].head(PER_SIDE) for side in ("to_do", "not_to_do")])


class ExampleBook:
    def __init__(self, loaded: LoadedModel, rows: pd.DataFrame, cache: Path, model_key: dict, base_system: str | None,
                 artefacts, clock):
        self.loaded, self.rows, self.cache, self.base_system = loaded, rows.reset_index(drop=True), cache, base_system
        self.artefacts, self.clock = artefacts, clock
        self.hash = stable_hash([self.rows["idx"].tolist(), EXAMPLE_TOKENS], 8)
        self.base_key = {"model": model_key, "examples": self.hash, "system": base_system}
        self.texts: dict[str, dict[float, dict]] = {}  # method -> coeff -> {effective, outputs: [[score, text]]}

    def at(self, name: str, fitted, steering: Steering, coeff: float, effective: float, shared_c0: bool) -> None:
        if not len(self.rows):
            return
        compute = lambda: {"outputs": self.generate(steering, effective)}  # noqa: E731
        if shared_c0:
            with self.clock("examples"):
                result = cached_base_result(self.cache, "examples", self.base_key, compute)
        else:
            result = self.artefacts.beside(fitted, f"examples-c{effective:.6g}-{self.hash}.json", "examples", compute)
        self.texts.setdefault(name, {})[coeff] = {"effective": effective, "outputs": result["outputs"]}

    def generate(self, steering: Steering, coeff: float) -> list[list]:
        """[score, text] per example row: greedy, ``EXAMPLE_TOKENS`` new tokens after the answer prefix."""
        tok, system = self.loaded.tokenizer, steering.system_prompt(coeff, self.base_system)
        prompts = [render(tok, QUESTION_TEMPLATE.format(situation=r.dilemma_situation, action=r.action), ANSWER_PREFIX,
                          system) for r in self.rows.itertuples()]
        out: list[list] = [[0.0, ""] for _ in prompts]
        with steering.apply(self.loaded.model, coeff) as model, torch.inference_mode():
            scores = score_prompts(model, tok, prompts, len(prompts), desc=f"examples c={coeff:+.3g}")
            for idx, batch in left_padded_batches(encode(tok, prompts), len(prompts), tok.pad_token_id,
                                                  model_device(model)):
                new = model.generate(**batch, max_new_tokens=EXAMPLE_TOKENS, do_sample=False,
                                     pad_token_id=tok.pad_token_id)[:, batch["input_ids"].shape[1]:]
                for row, i in enumerate(idx):
                    out[i][1] = tok.decode(new[row], skip_special_tokens=True)
        for i, lr in zip(scores["row"], scores["logratio"]):
            out[i][0] = float(lr)
        return out

    def markdown(self, target: str) -> str:
        lines = [f"# What the steered model says ({target})", "",
                 f"Greedy continuations ({EXAMPLE_TOKENS} tokens) after \"{ANSWER_PREFIX}\" for {len(self.rows)} fixed "
                 "**dev** dilemmas (never a test dilemma the tables report; no statistic uses them), at c = -1, 0, +1 "
                 f"at the run's strength. score: the log-odds of Yes over No for the action carrying {target} "
                 "(positive: toward it).", ""]
        for r_i, r in enumerate(self.rows.itertuples()):
            lines += [f"## Dilemma {r.dilemma_idx} ({target} on `{r.action_type}`)", "",
                      f"> {r.dilemma_situation}", ">", f"> Action: {r.action}", ""]
            for method, by_coeff in self.texts.items():
                lines += [f"**{method}**", "", "```"]
                for coeff in sorted(by_coeff):
                    got = by_coeff[coeff]
                    score, text = got["outputs"][r_i]
                    one_line = " ".join(str(text).split())
                    lines.append(f"c={coeff:+g} (effective {got['effective']:+.4g}), score={score:+.3f}, "
                                 f"s={ANSWER_PREFIX} {one_line}")
                lines += ["```", ""]
        return "\n".join(lines) + "\n"

    def write(self, run_dir: Path, target: str) -> None:
        atomic_write_text(run_dir / "examples.md", self.markdown(target))
