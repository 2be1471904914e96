"""Test helpers: a Runner on the tiny model and last-position logits under a steering."""

from __future__ import annotations

import json
import re
import shutil
import sys
import types
from pathlib import Path

import torch

from bench.config import RunConfig
from bench.evaluation.evaluator import dilemma_prompts
from bench.model.chat import DEFAULT_SYSTEM
from bench.model.padding import encode, left_padded_batches
from bench.running.runner import Runner

README = Path(__file__).resolve().parents[1] / "README.md"


def tiny_runner(tiny_model_dir, data_dir, results_dir, methods=("prompting", "random", "repeng"), **kw) -> Runner:
    cfg = RunConfig(model=str(tiny_model_dir), methods=list(methods), n_dilemmas=kw.pop("n_dilemmas", 6),
                    n_pairs=kw.pop("n_pairs", 12), data_dir=str(data_dir), results_dir=str(results_dir),
                    dtype="fp32", device="cpu", min_pmass=kw.pop("min_pmass", 0.0), batch_size=4,
                    strength=kw.pop("strength", "raw"), tables=kw.pop("tables", False), **kw)
    return Runner(cfg)


def last_logits(runner: Runner, steering, coeff: float, n_prompts: int = 6) -> torch.Tensor:
    """Last-position logits of the first dilemma prompts, steered at ``coeff``."""
    tok = runner.loaded.tokenizer
    system = steering.system_prompt(coeff, DEFAULT_SYSTEM)
    prompts = dilemma_prompts(tok, runner.dilemmas.rows.head(n_prompts), system)
    out = torch.zeros(len(prompts), runner.loaded.model.config.vocab_size)
    with steering.apply(runner.loaded.model, coeff) as model, torch.inference_mode():
        for idx, batch in left_padded_batches(encode(tok, prompts), 4, tok.pad_token_id, torch.device("cpu")):
            out[idx] = model(**batch, logits_to_keep=1).logits[:, -1].float()
    return out


def wide_window_copy(gemma_dir: Path, dest: Path) -> Path:
    """A copy of the tiny Gemma3 whose sliding window (4096) is longer than every prompt, as Gemma-3-270M's
    (512) is for DailyDilemmas: its sliding layers attend to everything and the shared-prefix path applies."""
    shutil.copytree(gemma_dir, dest, dirs_exist_ok=True)
    config = json.loads((dest / "config.json").read_text())
    (dest / "config.json").write_text(json.dumps({**config, "sliding_window": 4096}))
    return dest


def readme_example_plugin(monkeypatch) -> str:
    """Register the README's "Adding a method" example exactly as written (its file and its registry line)
    for the duration of ``monkeypatch``; returns its registry name."""
    import methods

    section = README.read_text().split("## Adding a method", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    registry_line = re.search(r'`("mean-diff": "methods\.my_vector:MeanDiff"),`', section).group(1)
    module = types.ModuleType("methods.my_vector")
    monkeypatch.setitem(sys.modules, "methods.my_vector", module)
    # dont_inherit: the example runs as its own file would, not under this module's __future__ imports
    exec(compile(code, "README:methods/my_vector.py", "exec", dont_inherit=True), module.__dict__)
    name, target = (s.strip().strip('"') for s in registry_line.split(":", 1))
    monkeypatch.setitem(methods.REGISTRY, name, target)
    return name
