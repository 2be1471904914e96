import pytest
import torch

from bench.errors import SteerbenchError
from bench.models import EMBEDDED_ALIAS, load_model, model_slug


def test_embedded_model_loads_from_converted_folder(embedded_dir):
    loaded = load_model(EMBEDDED_ALIAS)
    assert loaded.source == str(embedded_dir)
    assert (embedded_dir / "model.safetensors").is_file()
    assert loaded.model.config.model_type == "llama" and loaded.n_layers == 30
    assert not hasattr(loaded.model.config, "quantization_config")  # a plain, trainable model
    assert loaded.dtype == torch.bfloat16  # the recorded default on CPU
    assert loaded.tokenizer.chat_template and loaded.tokenizer.padding_side == "left"


def test_tiny_model_goes_through_from_pretrained(tiny, tiny_model_dir):
    assert tiny.source == str(tiny_model_dir)
    assert tiny.model.config.model_type == "qwen3" and tiny.n_layers == 2
    assert tiny.dtype == torch.float32
    assert len(tiny.fingerprint) == 16


def test_unknown_hub_model_is_one_clear_line():
    with pytest.raises(SteerbenchError) as err:
        load_model("no-such-org/no-such-model-xyz")
    msg = str(err.value)
    assert "\n" not in msg and "no-such-org/no-such-model-xyz" in msg and EMBEDDED_ALIAS in msg


def test_folder_without_config_is_rejected(tmp_path):
    with pytest.raises(SteerbenchError, match="config.json"):
        load_model(str(tmp_path))


@pytest.mark.parametrize("name", ["Qwen/Qwen3-0.6B", "../../etc", "a/../../b", ".."])
def test_model_slug_cannot_escape_results(name):
    slug = model_slug(name)
    assert "/" not in slug and slug not in ("", ".", "..") and not slug.startswith(".")
