"""How many numbers a method fits: the journal's Efficiency = Effect / log10(parameters) needs it.

The steering says so itself (``Steering.n_parameters``): only it knows which of its tensors were trained and
which are frozen bases or copies of the model's weights. When it returns None (a plugin that does not say),
the count falls back to what the fitted artefact saved:
- every tensor in the artefact's ``*.safetensors`` files;
- except the entries the built-in SVD adapters save but do not fit: a skew generator ``theta`` (r x r) has
  r(r-1)/2 free entries, and svd-steer's ``|u`` / ``|v`` tensors are the weight's own singular vectors;
- an artefact without tensors fits 0 numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from safetensors import safe_open

if TYPE_CHECKING:
    from bench.api.steering import Steering


def _numbers(shape: list[int]) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def saved_numbers(path: Path) -> int:
    """Every number in one ``.safetensors`` file, read from its header (no tensor is loaded)."""
    with safe_open(str(path), "pt") as handle:
        return sum(_numbers(list(handle.get_slice(k).get_shape())) for k in handle.keys())


def _fitted_numbers(key: str, shape: list[int]) -> int:
    if key.endswith((".theta_v", ".theta_u")) and len(shape) == 2 and shape[0] == shape[1]:
        return shape[0] * (shape[0] - 1) // 2  # skew-symmetric: the entries above the diagonal
    if key.endswith(("|u", "|v")):
        return 0  # singular vectors of the frozen weight, saved for speed, not fitted
    return _numbers(shape)


def saved_parameters(folder: Path) -> int:
    """The fallback: the numbers in the artefact's tensors, less the built-in adapters' frozen ones."""
    total = 0
    for path in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(str(path), "pt") as handle:
            total += sum(_fitted_numbers(k, list(handle.get_slice(k).get_shape())) for k in handle.keys())
    return total


def fitted_parameters(folder: Path, steering: "Steering | None" = None) -> int:
    """What ``steering`` says it trained, else what its artefact ``folder`` saved."""
    declared = steering.n_parameters() if steering is not None else None
    return int(declared) if declared is not None else saved_parameters(folder)
