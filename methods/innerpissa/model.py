"""Injecting InnerPiSSA layers into a causal LM, steering them, and saving / loading them.

Adapters are built once (one SVD per target Linear) and swapped in only while the model is in
use, so the shared model object is exactly the base model outside ``steer``.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from bench.model.layers import target_parent
from methods.innerpissa.layer import AdapterShape, InnerPiSSALinear


class InnerPiSSAAdapters(nn.Module):
    """The set of adapters for one model; ``targets`` like ``"12.mlp.down_proj"``."""

    def __init__(self, model: nn.Module, targets: list[str], shape: AdapterShape, seed: int = 0):
        super().__init__()
        self.targets, self.shape = targets, shape
        gen = torch.Generator().manual_seed(seed)
        self.layers = nn.ModuleDict()
        for t in targets:
            parent, leaf = target_parent(model, t)
            self.layers[t.replace(".", "__")] = InnerPiSSALinear(getattr(parent, leaf), shape, gen)

    def items(self) -> Iterator[tuple[str, InnerPiSSALinear]]:
        for t in self.targets:
            yield t, self.layers[t.replace(".", "__")]

    @contextlib.contextmanager
    def attached(self, model: nn.Module) -> Iterator[nn.Module]:
        """Swap the adapters into ``model``; the original Linears come back afterwards."""
        originals = {}
        try:
            for t, adapter in self.items():
                parent, leaf = target_parent(model, t)
                originals[t] = getattr(parent, leaf)
                setattr(parent, leaf, adapter)
            yield model
        finally:
            for t, original in originals.items():
                parent, leaf = target_parent(model, t)
                setattr(parent, leaf, original)

    @contextlib.contextmanager
    def coefficient(self, coeff: float) -> Iterator[None]:
        for _, a in self.items():
            a.coeff = coeff
        try:
            yield
        finally:
            for _, a in self.items():
                a.coeff = 0.0

    def merge_into(self, model: nn.Module, coeff: float) -> None:
        """Write the dense weights at ``coeff`` into the model's own Linears (a permanent merge,
        e.g. to export a steered checkpoint with ``save_pretrained``)."""
        with torch.no_grad():
            for t, adapter in self.items():
                parent, leaf = target_parent(model, t)
                linear = getattr(parent, leaf)
                linear.weight.copy_(adapter.merged_weight(coeff).to(linear.weight.dtype))

    def trainable(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def save(self, folder: Path, extra: dict) -> None:
        tensors = {n: p.detach().cpu().float().contiguous() for n, p in self.named_parameters()}
        save_file(tensors, str(folder / "adapter.safetensors"))
        (folder / "adapter_config.json").write_text(json.dumps(
            {"targets": self.targets, "shape": asdict(self.shape), **extra}, indent=1))

    def load_trained(self, folder: Path) -> None:
        state = load_file(str(folder / "adapter.safetensors"))
        own = dict(self.named_parameters())
        if set(state) != set(own):
            raise ValueError(f"adapter file {folder} does not match this configuration")
        with torch.no_grad():
            for n, t in state.items():
                own[n].copy_(t)
