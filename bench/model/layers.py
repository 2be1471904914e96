"""Target-layer specs shared by every method: ``"0.3:0.9"`` (depth fractions), ``"9-26"``, ``"4,8,-3"``."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Iterable

from bench.errors import SteerbenchError

if TYPE_CHECKING:
    import torch

DEFAULT_LAYERS = "0.3:0.9"  # middle-to-late layers, where the journal's honesty signal steered best


def _endpoint(token: str, n_layers: int) -> int:
    """'0.3' is a depth fraction, '-3' or '12' a layer index (negative counts from the end)."""
    token = token.strip()
    if "." in token:
        return int(float(token) * n_layers)
    index = int(token)
    return index + n_layers if index < 0 else index


def resolve_layers(spec: str, n_layers: int) -> list[int]:
    def bad() -> SteerbenchError:
        return SteerbenchError(
            f"bad layer spec {spec!r} for a {n_layers}-layer model; use 'a:b' with depth fractions or indices (e.g. 0.3:0.9, 0.3:-3), "
            f"a range 'i-j', or a comma list of indices (negative counts from the end)"
        )

    spec = str(spec).strip()
    try:
        if ":" in spec:
            lo, hi = (_endpoint(x, n_layers) for x in spec.split(":"))
            layers = list(range(lo, max(lo + 1, hi)))
        elif "-" in spec[1:] and "," not in spec:
            a, b = spec.split("-", 1) if not spec.startswith("-") else (None, None)
            if a is None:
                raise ValueError
            layers = list(range(int(a), int(b) + 1))
        else:
            layers = [int(x) for x in spec.split(",")]
    except ValueError:
        raise bad() from None
    layers = sorted({i + n_layers if i < 0 else i for i in layers})
    if not layers or layers[0] < 0 or layers[-1] >= n_layers:
        raise bad()
    return layers


def decoder_layers(model) -> "torch.nn.ModuleList":
    """The decoder blocks of a Llama/Qwen/Mistral-style causal LM (``model.model.layers``)."""
    inner = getattr(model, "model", None)
    if inner is not None and hasattr(inner, "layers"):
        return inner.layers
    raise SteerbenchError(f"{type(model).__name__}: expected model.model.layers (Llama/Qwen/Mistral style)")


def find_linear_targets(model, module_names: list[str], layers: list[int]) -> list[str]:
    """Targets ``"<layer>.<path>"`` (e.g. ``"12.mlp.down_proj"``) of the Linears named ``module_names``."""
    import torch

    found = []
    blocks = decoder_layers(model)
    for i in layers:
        for name, module in blocks[i].named_modules():
            if isinstance(module, torch.nn.Linear) and name.split(".")[-1] in module_names:
                found.append(f"{i}.{name}")
    if not found:
        raise SteerbenchError(f"no Linear module named {module_names} in layers {layers}")
    return found


def target_parent(model, target: str) -> tuple["torch.nn.Module", str]:
    """(parent module, attribute name) of a ``"<layer>.<path>"`` target."""
    layer_idx, _, path = target.partition(".")
    module = decoder_layers(model)[int(layer_idx)]
    *parents, leaf = path.split(".")
    for p in parents:
        module = getattr(module, p)
    return module, leaf


def target_module(model, target: str) -> "torch.nn.Module":
    parent, leaf = target_parent(model, target)
    return getattr(parent, leaf)


def lowest_layer(names: Iterable[str]) -> int | None:
    """The lowest decoder-layer index among target names (``"12.mlp.down_proj"`` or peft's
    ``"model.layers.12.mlp.down_proj"``); None when a name carries no layer index (it may sit outside the
    decoder layers, e.g. the embeddings) or there are no names."""
    found = []
    for name in names:
        match = re.match(r"(?:.*\blayers\.)?(\d+)\.", name)
        if match is None:
            return None
        found.append(int(match.group(1)))
    return min(found, default=None)
