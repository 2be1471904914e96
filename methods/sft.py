"""SFT: full fine-tuning with trl's SFTTrainer on the base model's own continuations.

One copy is trained toward the honest continuations, one toward the dishonest ones. By default the
steering is continuous, so that it can be strength-matched like every other method: at coefficient c the
weights are ``theta(c) = theta_0 + |c| (theta_sign(c) - theta_0)`` (c = +-1 is the fine-tuned model, |c| < 1
interpolates towards the base, |c| > 1 extrapolates). ``--sft.discrete`` restores the discrete method
(c in {-1, 0, +1} only). The deltas ``theta_s - theta_0`` are saved in fp32: in bf16 a fine-tune's small
updates would be rounded away before they are scaled. Memory: each fine-tune runs on a fresh fp32 copy
that is freed afterwards; while a coefficient is evaluated, one delta is read and added into the shared
model, and the base weights are reloaded from disk afterwards (never three full copies in memory).
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

from bench.api.parameters import saved_numbers
from bench.api.steering import FitContext, Steering, SteeringMethod, option
from bench.api.supervised import (
    FolderSteering,
    TrainerOptions,
    library_versions,
    quiet_progress,
    save_training_log,
    trainer_kwargs,
    training_data,
    without_appended_eos,
)
from bench.model.loading import LoadedModel

log = logging.getLogger(__name__)
DELTAS = {1.0: "honest_delta.safetensors", -1.0: "dishonest_delta.safetensors"}


class SFTSteering(FolderSteering):
    info_file = "sft.json"

    def __init__(self, folder: Path, loaded: LoadedModel, info: dict):
        super().__init__(folder, info)
        self.loaded = loaded
        if info.get("discrete"):
            self.supported_coeffs = (-1.0, 0.0, 1.0)

    def n_parameters(self) -> int:
        return sum(saved_numbers(self.folder / f) for f in DELTAS.values())  # two full fine-tunes: every weight twice

    @contextlib.contextmanager
    def steer(self, model: PreTrainedModel, coeff: float) -> Iterator[PreTrainedModel]:
        if not self.supports(coeff):
            raise ValueError(f"discrete sft has models for c in {sorted(DELTAS)} only, not {coeff}")
        delta = load_file(str(self.folder / DELTAS[1.0 if coeff > 0 else -1.0]))
        params = dict(model.named_parameters())
        missing = [k for k in delta if k not in params]
        if missing:
            raise ValueError(f"{self.folder} does not match the model: unknown weights {missing[:3]}")
        with torch.no_grad():
            for name, d in delta.items():
                p = params[name]
                p.copy_((p.float() + abs(coeff) * d.to(p.device)).to(p.dtype))
        del delta
        try:
            yield model
        finally:
            base = AutoModelForCausalLM.from_pretrained(self.loaded.source, dtype=self.loaded.dtype)
            model.load_state_dict(base.state_dict(), strict=False)
            del base


class SFT(SteeringMethod):
    name = "sft"
    description = "full fine-tunes (trl SFT) toward honest / dishonest continuations; c interpolates the weights"

    @dataclass
    class Options(TrainerOptions):
        method: ClassVar[str] = "sft"
        discrete: bool = option(False, "only c in {-1, 0, +1} (the two fine-tuned models and the base), no "
                                       "interpolation: cannot be strength-matched")

    def fit(self, ctx: FitContext) -> Steering:
        import tempfile

        from datasets import Dataset
        from trl import SFTConfig, SFTTrainer

        o, loaded = self.options, ctx.loaded
        prompts, cont = training_data(ctx, o)
        folder = Path(tempfile.mkdtemp(prefix="steerbench-sft-"))
        base = {k: v.detach().float().clone() for k, v in
                AutoModelForCausalLM.from_pretrained(loaded.source, dtype=torch.float32).named_parameters()}
        losses = {}
        for coeff, completions in ((1.0, cont.honest), (-1.0, cont.dishonest)):
            torch.manual_seed(ctx.seed)
            model = AutoModelForCausalLM.from_pretrained(loaded.source, dtype=torch.float32)
            data = Dataset.from_dict({"prompt": prompts, "completion": completions})
            args = SFTConfig(**trainer_kwargs(ctx.seed, o.lr, o.epochs, o.batch_size), completion_only_loss=True)
            log.info("sft: fine-tuning a full copy toward the %s continuations (%d examples)",
                     "honest" if coeff > 0 else "dishonest", len(data))
            trainer = without_appended_eos(SFTTrainer, ("input_ids",), ("labels", "completion_mask"))(
                model=model, args=args, train_dataset=data, processing_class=loaded.tokenizer)
            quiet_progress(trainer)
            trainer.train()
            delta = {k: (v.detach().float() - base[k]).contiguous() for k, v in model.named_parameters()}
            save_file(delta, str(folder / DELTAS[coeff]))
            save_training_log(trainer.state.log_history, folder / ("log_honest" if coeff > 0 else "log_dishonest"))
            losses[coeff] = trainer.state.log_history[-1].get("train_loss")
            del trainer, model, delta
            gc.collect()
        info = {"versions": library_versions(), "train_loss": {str(k): v for k, v in losses.items()},
                "discrete": o.discrete}
        return SFTSteering(folder, loaded, info)

    def load(self, path: Path, ctx: FitContext) -> Steering:
        return SFTSteering(path, ctx.loaded, SFTSteering.read_info(path))
