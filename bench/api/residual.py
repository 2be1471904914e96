"""Residual-stream steering vectors, applied through the real ``repeng.ControlModel``.

Shared by every method that adds ``c * direction[layer]`` to decoder-layer outputs (repeng PCA,
random), so they differ only in their directions, never in how those are applied.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from repeng import ControlModel, ControlVector
from safetensors.torch import load_file, save_file
from transformers import PreTrainedModel

from bench.api.steering import Steering


class ResidualSteering(Steering):
    def __init__(self, directions: dict[int, np.ndarray], model_type: str, info: dict | None = None):
        self.directions = {int(k): np.asarray(v, dtype=np.float32) for k, v in directions.items()}
        self.model_type = model_type
        self.info = info or {}

    @contextlib.contextmanager
    def steer(self, model: PreTrainedModel, coeff: float) -> Iterator[PreTrainedModel]:
        # ControlModel wraps the decoder layers in place; unwrap restores the original modules.
        control = ControlModel(model, sorted(self.directions))
        try:
            control.set_control(ControlVector(self.model_type, self.directions), coeff)
            yield model
        finally:
            control.reset()
            control.unwrap()

    def first_steered_layer(self) -> int | None:
        # repeng adds to a layer's output: that layer's own input is still the unsteered one
        return min(self.directions, default=None)

    def n_parameters(self) -> int:
        return sum(v.size for v in self.directions.values())  # one vector per layer

    def norms(self) -> dict[int, float]:
        return {k: float(np.linalg.norm(v)) for k, v in self.directions.items()}

    def save(self, path: Path) -> None:
        save_file({f"layer.{k}": torch.from_numpy(v) for k, v in self.directions.items()}, str(path / "directions.safetensors"))
        (path / "residual.json").write_text(json.dumps({"model_type": self.model_type, "info": self.info}, indent=1))

    @classmethod
    def load(cls, path: Path) -> "ResidualSteering":
        meta = json.loads((path / "residual.json").read_text())
        tensors = load_file(str(path / "directions.safetensors"))
        return cls({int(k.split(".")[1]): v.numpy() for k, v in tensors.items()}, meta["model_type"], meta["info"])

    def describe(self) -> dict:
        return {"layers": sorted(self.directions), **self.info}


def last_token_hidden_states(loaded, texts: list[str], layers: list[int], batch_size: int) -> dict[int, np.ndarray]:
    """Each text's hidden state at its last token, after each decoder layer in ``layers``: ``{layer: (n, d)}``
    float32 arrays on the CPU (whatever device the model is on). Left padding keeps the last token last."""
    from bench.model.padding import encode, left_padded_batches

    tok, model = loaded.tokenizer, loaded.model
    out = {i: np.zeros((len(texts), model.config.hidden_size), dtype=np.float32) for i in layers}
    with torch.inference_mode():
        for idx, batch in left_padded_batches(encode(tok, texts), batch_size, tok.pad_token_id, loaded.device):
            hidden = model(**batch, output_hidden_states=True, use_cache=False, logits_to_keep=1).hidden_states
            for i in layers:
                out[i][idx] = hidden[i + 1][:, -1].float().cpu().numpy()  # hidden[0] is the embeddings
    return out
