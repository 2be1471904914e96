import pytest
import torch

from bench.errors import SteerbenchError
from bench.model.dtype_choice import choose_dtype
from bench.model.loading import EMBEDDED_ALIAS, load_model, model_slug


def test_embedded_model_loads_from_converted_folder(embedded_dir):
    loaded = load_model(EMBEDDED_ALIAS)
    assert loaded.source == str(embedded_dir)
    assert (embedded_dir / "model.safetensors").is_file()
    assert loaded.model.config.model_type == "llama" and loaded.n_layers == 30
    assert not hasattr(loaded.model.config, "quantization_config")  # a plain, trainable model
    # --dtype auto: bf16 where this CPU runs it at least as fast as fp32 (the committed runs' AMX machines), else
    # fp32 (AVX2-only CPUs, and an AVX512-BF16 CPU without AMX measured slower in bf16); the choice names its probe
    config = loaded.model.config
    expected = choose_dtype("auto", torch.device("cpu"), config.hidden_size, config.intermediate_size).dtype
    assert loaded.dtype == expected and loaded.dtype in (torch.bfloat16, torch.float32)
    assert loaded.dtype_choice is not None and "GFLOP/s" in loaded.dtype_choice.reason
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


def test_bf16_model_scores_with_an_fp32_norm_and_head(tiny_model_dir):
    """The body runs in bf16, the final norm and LM head in fp32: logits are fp32, closer to the fp32
    model's than a plain bf16 forward's, the tied embeddings stay bf16, and an in-place weight change
    (SFT swapping weights in) is seen by the head's cached fp32 weight."""
    from transformers import AutoModelForCausalLM

    from bench.model.padding import encode, left_padded_batches

    ref = load_model(str(tiny_model_dir), dtype="fp32", device="cpu")
    mixed = load_model(str(tiny_model_dir), dtype="bf16", device="cpu")
    plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.bfloat16).eval()
    tok = ref.tokenizer
    ids = encode(tok, ["Situation: a friend asks to copy my homework. My choice:", "Is the sky green? My choice:"])
    _, batch = next(left_padded_batches(ids, 8, tok.pad_token_id, torch.device("cpu")))
    with torch.inference_mode():
        want = ref.model(**batch).logits[:, -1]
        got = mixed.model(**batch).logits[:, -1]
        bf16 = plain(**batch).logits[:, -1]
    assert got.dtype == torch.float32 and bf16.dtype == torch.bfloat16
    assert mixed.model.get_input_embeddings().weight.dtype == torch.bfloat16
    err_mixed, err_plain = (got - want).abs().max(), (bf16.float() - want).abs().max()
    assert err_mixed < err_plain, (err_mixed, err_plain)
    head = mixed.model.get_output_embeddings()
    hidden = torch.randn(2, 1, mixed.model.config.hidden_size)
    with torch.inference_mode():
        before = head(hidden)
    with torch.no_grad():
        head.weight.mul_(2.0)  # in place, as a weight swap does: the cached fp32 copy must follow
    with torch.inference_mode():
        torch.testing.assert_close(head(hidden), 2 * before)


def test_fp32_head_works_for_training_after_scoring(tiny_model_dir):
    """Scoring (inference mode) then training through the frozen head (InnerPiSSA, LoRA) on a bf16 model:
    the head's cached fp32 weight must not be an inference tensor inside the autograd graph."""
    mixed = load_model(str(tiny_model_dir), dtype="bf16", device="cpu")
    ids = torch.tensor([[5, 6, 7, 8]])
    with torch.inference_mode():
        mixed.model(input_ids=ids)
    embeds = mixed.model.get_input_embeddings()(ids).detach().requires_grad_(True)
    out = mixed.model(inputs_embeds=embeds).logits
    out.float().logsumexp(-1).sum().backward()
    assert embeds.grad is not None and torch.isfinite(embeds.grad.float()).all()
