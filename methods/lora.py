"""LoRA (peft) trained with trl's DPOTrainer on the base model's own continuations.

Prompt: the pair's truncated statement without a persona; chosen: the base model's greedy continuation
under the honest persona; rejected: under the dishonest persona. Applied with ``c`` as the adapter
scale, so ``c=-1`` subtracts the learned delta and ``c=0`` is exactly the base model.
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Iterator

from transformers import PreTrainedModel

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
from bench.errors import at_least, names_list, positive
from bench.model.layers import DEFAULT_LAYERS, find_linear_targets, lowest_layer, resolve_layers

log = logging.getLogger(__name__)


class LoraSteering(FolderSteering):
    info_file = "lora.json"

    @contextlib.contextmanager
    def steer(self, model: PreTrainedModel, coeff: float) -> Iterator[PreTrainedModel]:
        from peft import PeftModel
        from peft.tuners.lora import LoraLayer

        peft_model = PeftModel.from_pretrained(model, str(self.folder))
        for module in peft_model.modules():
            if isinstance(module, LoraLayer):
                module.set_scale("default", coeff)
        try:
            yield peft_model
        finally:
            peft_model.unload()  # the original Linears come back; nothing is merged

    def n_parameters(self) -> int:
        return saved_numbers(self.folder / "adapter_model.safetensors")  # the A and B matrices, r x (d_in + d_out)

    def first_steered_layer(self) -> int | None:
        targets = json.loads((self.folder / "adapter_config.json").read_text()).get("target_modules")
        return lowest_layer(targets) if isinstance(targets, list) else None  # "all-linear" etc.: anywhere



class Lora(SteeringMethod):
    name = "lora"
    description = "peft LoRA trained with trl DPO (honest vs dishonest continuations); c scales the adapter"

    @dataclass
    class Options(TrainerOptions):
        method: ClassVar[str] = "lora"
        rank: int = option(8, "LoRA rank")
        alpha: int = option(16, "LoRA alpha (the adapter's scale is alpha / rank)")
        modules: str = option("all", "all linear projections, or a comma list such as o_proj,down_proj")
        layers: str = option(DEFAULT_LAYERS, "layer spec: fractions of depth (0.3:0.9), indices (5-9, 3,7) or all; all adapts every layer")
        lr: float = option(5e-4, "learning rate")
        epochs: float = option(1.0, "passes over the continuation pairs")
        beta: float = option(0.1, "DPO temperature")
        batch_size: int = option(4, "pairs per optimiser step")

        def validate(self) -> None:
            super().validate()
            at_least("--lora.rank", self.rank, 1)
            positive("--lora.alpha", self.alpha)
            names_list("--lora.modules", self.modules)
            positive("--lora.beta", self.beta)

    def fit(self, ctx: FitContext) -> Steering:
        from datasets import Dataset
        from peft import LoraConfig
        from trl import DPOConfig, DPOTrainer

        o, loaded = self.options, ctx.loaded
        prompts, cont = training_data(ctx, o)
        data = Dataset.from_dict({"prompt": prompts, "chosen": cont.honest, "rejected": cont.dishonest})
        if o.modules == "all" and o.layers == "all":
            target_modules: str | list[str] = "all-linear"
        else:
            names = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"] \
                if o.modules == "all" else [m.strip() for m in o.modules.split(",")]
            layers = list(range(loaded.n_layers)) if o.layers == "all" else resolve_layers(o.layers, loaded.n_layers)
            target_modules = [f"model.layers.{t}" for t in find_linear_targets(loaded.model, names, layers)]
        peft_config = LoraConfig(r=o.rank, lora_alpha=o.alpha, target_modules=target_modules,
                                 lora_dropout=0.0, task_type="CAUSAL_LM")
        args = DPOConfig(**trainer_kwargs(ctx.seed, o.lr, o.epochs, o.batch_size), beta=o.beta)
        own_forward = loaded.model.__dict__.get("forward")  # trl patches it (below); the shared model gets it back
        trainer = without_appended_eos(DPOTrainer, ("chosen_ids", "rejected_ids"))(
            model=loaded.model, args=args, train_dataset=data, processing_class=loaded.tokenizer,
            peft_config=peft_config)
        quiet_progress(trainer)
        log.info("lora: DPO on %d continuation pairs (%d tokens each)", len(data), o.continuation_tokens)
        try:
            trainer.train()
            folder = Path(args.output_dir) / "adapter"
            trainer.model.save_pretrained(str(folder))
            save_training_log(trainer.state.log_history, folder)
        finally:
            trainer.model.unload()  # hand the shared model back without LoRA layers
            loaded.model.eval().requires_grad_(False)
            # DPOTrainer replaces the model's forward with its fused-LM-head one (trl.trainer.utils.add_fused_lm_head)
            if own_forward is None:
                loaded.model.__dict__.pop("forward", None)
            else:
                loaded.model.forward = own_forward
        info = {"versions": library_versions(), "target_modules": target_modules if isinstance(target_modules, str)
                else len(target_modules), "final_loss": trainer.state.log_history[-1].get("train_loss")}
        return LoraSteering(folder, info)

    def load(self, path: Path, ctx: FitContext) -> Steering:
        return LoraSteering(path, LoraSteering.read_info(path))
