"""SFT: full fine-tuning with trl's SFTTrainer on the base model's own continuations.

One model is trained toward the honest continuations (``c=+1``), one toward the dishonest ones
(``c=-1``); ``c=0`` is the base model. Discrete coefficients only: the statistics use just these
points. Memory: each fine-tune runs on a fresh fp32 copy that is freed afterwards; the tuned weights
are saved as safetensors and swapped into the shared model only while it is evaluated, then the base
weights are reloaded from disk (never three full copies in memory).
"""

from __future__ import annotations

import contextlib
import gc
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Iterator

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM, PreTrainedModel

from bench.models import LoadedModel
from bench.steering import FitContext, Steering, SteeringMethod
from bench.supervised import (
    FolderSteering,
    TrainerOptions,
    library_versions,
    quiet_progress,
    save_training_log,
    trainer_kwargs,
    training_data,
)

log = logging.getLogger(__name__)
WEIGHTS = {1.0: "honest.safetensors", -1.0: "dishonest.safetensors"}


def _load_weights(model: PreTrainedModel, path: Path) -> None:
    state = load_file(str(path))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if "lm_head" not in k]:  # lm_head may be tied to the embeddings
        raise ValueError(f"{path} does not match the model: missing {missing[:3]}, unexpected {unexpected[:3]}")


class SFTSteering(FolderSteering):
    supported_coeffs = (-1.0, 0.0, 1.0)
    info_file = "sft.json"

    def __init__(self, folder: Path, loaded: LoadedModel, info: dict):
        super().__init__(folder, info)
        self.loaded = loaded

    @contextlib.contextmanager
    def steer(self, model: PreTrainedModel, coeff: float) -> Iterator[PreTrainedModel]:
        if coeff not in WEIGHTS:
            raise ValueError(f"sft has models for c in {sorted(WEIGHTS)} only, not {coeff}")
        _load_weights(model, self.folder / WEIGHTS[coeff])
        try:
            yield model
        finally:
            base = AutoModelForCausalLM.from_pretrained(self.loaded.source, dtype=self.loaded.dtype)
            model.load_state_dict(base.state_dict(), strict=False)
            del base



class SFT(SteeringMethod):
    name = "sft"
    description = "full fine-tune (trl SFT) toward honest (c=+1) or dishonest (c=-1) continuations"

    @dataclass
    class Options(TrainerOptions):
        method: ClassVar[str] = "sft"

    def fit(self, ctx: FitContext) -> Steering:
        import tempfile

        from datasets import Dataset
        from trl import SFTConfig, SFTTrainer

        o, loaded = self.options, ctx.loaded
        prompts, cont = training_data(ctx, o)
        folder = Path(tempfile.mkdtemp(prefix="steerbench-sft-"))
        losses = {}
        for coeff, completions in ((1.0, cont.honest), (-1.0, cont.dishonest)):
            torch.manual_seed(ctx.seed)
            model = AutoModelForCausalLM.from_pretrained(loaded.source, dtype=torch.float32)
            data = Dataset.from_dict({"prompt": prompts, "completion": completions})
            args = SFTConfig(**trainer_kwargs(ctx.seed, o.lr, o.epochs, o.batch_size), completion_only_loss=True)
            log.info("sft: fine-tuning a full copy toward the %s continuations (%d examples)",
                     "honest" if coeff > 0 else "dishonest", len(data))
            trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=loaded.tokenizer)
            quiet_progress(trainer)
            trainer.train()
            state = {k: v.detach().to(loaded.dtype).contiguous() for k, v in model.state_dict().items()
                     if not (k == "lm_head.weight" and model.config.tie_word_embeddings)}
            save_file(state, str(folder / WEIGHTS[coeff]))
            save_training_log(trainer.state.log_history, folder / ("log_honest" if coeff > 0 else "log_dishonest"))
            losses[coeff] = trainer.state.log_history[-1].get("train_loss")
            del trainer, model, state
            gc.collect()
        info = {"versions": library_versions(), "train_loss": {str(k): v for k, v in losses.items()}}
        return SFTSteering(folder, loaded, info)

    def load(self, path: Path, ctx: FitContext) -> Steering:
        return SFTSteering(path, ctx.loaded, SFTSteering.read_info(path))
