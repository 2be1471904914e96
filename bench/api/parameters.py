"""How many numbers a method fits: the journal's Efficiency = Effect / log10(parameters) needs it.

Counted from what the fitted artefact saved, so a plugin needs no extra code:
- every tensor in the artefact's ``*.safetensors`` files (residual vectors: layers x d; LoRA: r x (d_in +
  d_out) per module; SFT: its two fine-tunes' weight deltas, all parameters twice);
- except what is not fitted: an SVD-adapter's skew generator ``theta`` (r x r) has r(r-1)/2 free entries, and
  svd-steer's ``|u`` / ``|v`` tensors are the weight's own singular vectors (only its ``|d`` is fitted);
- an artefact without tensors (prompting) fits 0 numbers.
"""

from __future__ import annotations

from pathlib import Path

from safetensors import safe_open


def _fitted_numbers(key: str, shape: list[int]) -> int:
    n = 1
    for s in shape:
        n *= s
    if key.endswith((".theta_v", ".theta_u")) and len(shape) == 2 and shape[0] == shape[1]:
        return shape[0] * (shape[0] - 1) // 2  # skew-symmetric: the entries above the diagonal
    if key.endswith(("|u", "|v")):
        return 0  # singular vectors of the frozen weight, saved for speed, not fitted
    return n


def fitted_parameters(folder: Path) -> int:
    total = 0
    for path in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(str(path), "pt") as handle:
            total += sum(_fitted_numbers(k, list(handle.get_slice(k).get_shape())) for k in handle.keys())
    return total
