"""Forward hooks on named targets, removed on exit: the one place methods add to a module's output."""

from __future__ import annotations

import contextlib
import types
from typing import Callable, Iterator

import torch

from bench.model.layers import target_module

OutputHook = Callable[[torch.nn.Module, tuple, torch.Tensor], torch.Tensor | None]


@contextlib.contextmanager
def output_hooks(model: torch.nn.Module, hooks: dict[str, OutputHook]) -> Iterator[torch.nn.Module]:
    handles = [target_module(model, t).register_forward_hook(fn) for t, fn in hooks.items()]
    try:
        yield model
    finally:
        for h in handles:
            h.remove()


def contiguous_head_input(model: torch.nn.Module) -> None:
    """Make the LM head's input contiguous, once per model (idempotent; kept for the model's lifetime).

    With ``logits_to_keep=k`` transformers hands the head a strided slice ``hidden[:, -k:, :]``; on CPU,
    ``linear`` on a strided 3-D input falls back to a batched matmul that first copies the whole
    (vocab x hidden) weight once per row: ~1 s per batch of 16 on the embedded model, more than its 30
    decoder layers. Copying the few hidden vectors instead costs nothing, and the logits are unchanged.
    Scoring, generation and InnerPiSSA's training forward all take this path.
    """
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None or getattr(head, "_steerbench_contiguous", False):
        return
    head.register_forward_pre_hook(lambda module, args: (args[0].contiguous(), *args[1:]))
    head._steerbench_contiguous = True


def _final_norm(model: torch.nn.Module) -> torch.nn.Module | None:
    """The norm applied to the last hidden state before the LM head (``model.model.norm`` in Llama,
    Qwen3 and Gemma3), or None when the architecture keeps it elsewhere."""
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    norm = getattr(decoder, "norm", None)
    return norm if isinstance(norm, torch.nn.Module) else None


def _fp32_head_forward(self: torch.nn.Linear, hidden: torch.Tensor) -> torch.Tensor:
    """The LM head in fp32 from the model's own (e.g. bf16) weight. Without grad, the fp32 copy of the
    weight is made once and reused until the weight changes (its version counter or storage moves, e.g.
    when SFT swaps fine-tuned weights in); with grad it is cast on the fly, so gradients still flow."""
    weight = self.weight
    if weight.dtype == torch.float32:
        w32 = weight
    elif weight.requires_grad and torch.is_grad_enabled():
        w32 = weight.float()
    else:
        # One copy per mode: a tensor made under inference_mode (scoring) cannot enter an autograd graph
        # (training through the frozen head, e.g. InnerPiSSA or LoRA), so training gets its own copy.
        inference = torch.is_inference_mode_enabled()
        slot = "_steerbench_w32_inference" if inference else "_steerbench_w32"
        key = (weight.data_ptr(), weight._version, weight.device)
        cached = getattr(self, slot, None)
        if cached is None or cached[0] != key:
            with torch.no_grad():
                cached = (key, weight.detach().float())
            setattr(self, slot, cached)
        w32 = cached[1]
    bias = self.bias.float() if self.bias is not None else None
    return torch.nn.functional.linear(hidden.float().contiguous(), w32, bias)


def fp32_output_head(model: torch.nn.Module) -> bool:
    """Run the final norm and the LM head in fp32 whatever the model's dtype (idempotent; for the model's
    lifetime). Returns whether the model was changed (False for fp32 models and unknown layouts).

    In bf16 the logits have a resolution of 1/16 nat at SmolLM2's logit magnitudes (8 mantissa bits), the
    size of the untrained methods' effects: every per-row change of the log-odds was a multiple of 0.0625.
    The body stays in the model's dtype; only the scored position's last two steps are widened: the norm
    gets an fp32 input (RMSNorm then returns fp32), and the head multiplies in fp32 with an fp32 copy of
    its weight (tied embeddings stay untouched, so the body never sees fp32 weights).
    """
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if not isinstance(head, torch.nn.Linear) or head.weight.dtype == torch.float32:
        return False
    if getattr(head, "_steerbench_fp32", False):
        return True
    norm = _final_norm(model)
    if norm is not None:
        norm.register_forward_pre_hook(lambda module, args: (args[0].float(), *args[1:]))
    head.forward = types.MethodType(_fp32_head_forward, head)  # a bound method: deep copies rebind it
    head._steerbench_fp32 = True
    return True
