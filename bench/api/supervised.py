"""Shared pieces of the supervised baselines (LoRA, SFT): their options, dataset and trainer settings."""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import ClassVar

import pandas as pd
import torch
from transformers.trainer_callback import ProgressCallback

from bench.api.continuations import Continuations
from bench.api.pairs import NEUTRAL_INSTRUCTION
from bench.api.steering import FitContext, Steering, option
from bench.errors import at_least, positive
from bench.model.chat import DEFAULT_SYSTEM, render
from bench.store import atomic_write_frame


@dataclass
class TrainerOptions:
    """The options every trl-trained baseline has; a method's ``Options`` subclasses this, sets ``method``
    (for error messages) and its own defaults, and extends ``validate``."""

    method: ClassVar[str] = "trainer"
    lr: float = option(5e-5, "learning rate")
    epochs: float = option(1.0, "passes over the training examples")
    batch_size: int = option(8, "examples per optimiser step")
    continuation_tokens: int = option(32, "length of the base model's greedy continuations it learns from")

    def validate(self) -> None:
        positive(f"--{self.method}.lr", self.lr)
        positive(f"--{self.method}.epochs", self.epochs)
        at_least(f"--{self.method}.batch-size", self.batch_size, 1)
        at_least(f"--{self.method}.continuation-tokens", self.continuation_tokens, 1)


def training_data(ctx: FitContext, options: TrainerOptions) -> tuple[list[str], Continuations]:
    """The persona-free prompts and the base model's honest / dishonest continuations of them."""
    cont = ctx.continuations(None, options.continuation_tokens)
    return persona_free_prompts(ctx.loaded.tokenizer, cont), cont


class FolderSteering(Steering):
    """A steering whose artefact is a folder written by a trainer (adapter or weights, training logs)
    plus an info JSON: saving copies the folder, loading reads the info back."""

    info_file: ClassVar[str]

    def __init__(self, folder: Path, info: dict):
        self.folder, self.info = folder, info

    def save(self, path: Path) -> None:
        shutil.copytree(self.folder, path, dirs_exist_ok=True)
        (path / self.info_file).write_text(json.dumps(self.info, indent=1))

    @classmethod
    def read_info(cls, path: Path) -> dict:
        return json.loads((path / cls.info_file).read_text())


def persona_free_prompts(tokenizer, cont: Continuations) -> list[str]:
    """The prompt without a persona, ending with the truncated statement: what the model continues."""
    return [render(tokenizer, NEUTRAL_INSTRUCTION, s, DEFAULT_SYSTEM) for s in cont.suffixes]


def trainer_kwargs(seed: int, lr: float, epochs: float, batch_size: int) -> dict:
    """Settings common to trl's DPOConfig and SFTConfig: CPU-safe, quiet, no checkpoints."""
    return dict(
        output_dir=tempfile.mkdtemp(prefix="steerbench-trl-"), per_device_train_batch_size=batch_size,
        num_train_epochs=epochs, learning_rate=lr, seed=seed, data_seed=seed, logging_steps=1,
        save_strategy="no", report_to="none", use_cpu=not torch.cuda.is_available(), bf16=False, fp16=False,
        dataloader_num_workers=0, disable_tqdm=False, max_length=256, gradient_checkpointing=False,
    )


class LossInProgressBar(ProgressCallback):
    """The trainer's progress bar showing the latest loss, instead of printing a metrics dict per step
    (every step's metrics still go to the artefact's training_log.csv)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and self.training_bar is not None and logs and "loss" in logs:
            self.training_bar.set_postfix(loss=f"{float(logs['loss']):.3f}", refresh=False)


def quiet_progress(trainer) -> None:
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(LossInProgressBar())


def save_training_log(log_history: list[dict], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame([row for row in log_history if "loss" in row or "train_loss" in row])
    atomic_write_frame(folder / "training_log.csv", frame)


def without_appended_eos(trainer_cls: type, columns: tuple[str, ...], aligned: tuple[str, ...] = ()) -> type:
    """``trainer_cls`` whose prepared dataset carries no end-of-text token after the completions.

    trl appends the tokenizer's EOS to every non-conversational completion (SFT's ``completion``, DPO's
    ``chosen`` / ``rejected``) before tokenizing. Our completions are the base model's continuations cut at
    ``continuation_tokens``: ending them with EOS would teach the model to stop mid-sentence. The token is
    removed from the tokenized ``columns``, and the same position from the per-token ``aligned`` columns
    (SFT's ``labels`` beside its ``input_ids``)."""

    class NoEosTrainer(trainer_cls):
        def _prepare_dataset(self, dataset, processing_class, *args, **kwargs):
            prepared = super()._prepare_dataset(dataset, processing_class, *args, **kwargs)
            eos = getattr(processing_class, "tokenizer", processing_class).eos_token_id

            def strip(example: dict) -> dict:
                out = {}
                for col in columns:
                    ids = example[col]
                    if ids and ids[-1] == eos:
                        out[col] = ids[:-1]
                        out.update({a: example[a][:-1] for a in aligned if a in example})
                return out

            return prepared.map(strip)

    NoEosTrainer.__name__ = f"NoEos{trainer_cls.__name__}"
    return NoEosTrainer


def library_versions() -> dict:
    return {pkg: metadata.version(pkg) for pkg in ("trl", "peft", "transformers", "torch")}
