"""Forward hooks on named targets, removed on exit: the one place methods add to a module's output."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch

from bench.layers import target_module

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
