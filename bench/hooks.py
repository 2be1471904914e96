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
