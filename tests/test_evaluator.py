import numpy as np
import pytest
import torch

from bench.evaluation.dilemmas import load_dilemmas
from bench.evaluation.evaluator import (
    AnswerTokens,
    dilemma_prompts,
    encode,
    heldout_nll,
    yes_no_logratios,
)
from bench.model.chat import DEFAULT_SYSTEM


def test_yes_no_variants_are_single_tokens(tiny):
    ans = AnswerTokens.for_tokenizer(tiny.tokenizer)
    assert len(ans.yes) >= 2 and len(ans.no) >= 2 and not set(ans.yes) & set(ans.no)
    decoded = {tiny.tokenizer.decode([i]).strip().lower() for i in ans.yes}
    assert decoded == {"yes"}


def test_prompt_is_prefilled_with_my_choice(tiny, small_data_dir):
    rows = load_dilemmas(small_data_dir).rows
    prompts = dilemma_prompts(tiny.tokenizer, rows.head(2), DEFAULT_SYSTEM)
    assert all(p.endswith("<|im_start|>assistant\nMy choice:") for p in prompts)
    assert rows.iloc[0]["action"] in prompts[0]


def test_batch_invariance_fp32(tiny, small_data_dir):
    rows = load_dilemmas(small_data_dir).rows
    prompts = dilemma_prompts(tiny.tokenizer, rows, DEFAULT_SYSTEM)
    lens = {len(tiny.tokenizer(p)["input_ids"]) for p in prompts}
    assert len(lens) > 3  # real padding happens in the batched run
    batched, _ = yes_no_logratios(tiny.model, tiny.tokenizer, prompts, batch_size=8)
    single, _ = yes_no_logratios(tiny.model, tiny.tokenizer, prompts, batch_size=1)
    np.testing.assert_allclose(batched, single, atol=1e-4)


def test_nan_logits_make_the_row_nan(tiny, small_data_dir):
    rows = load_dilemmas(small_data_dir).rows.head(4)
    prompts = dilemma_prompts(tiny.tokenizer, rows, DEFAULT_SYSTEM)
    poisoned_ids = encode(tiny.tokenizer, [prompts[2]])[0]
    seen = {}

    def remember_ids(module, args, kwargs):
        seen["ids"] = kwargs["input_ids"][0].tolist()

    def poison(module, args, output):
        return output * float("nan") if seen["ids"] == poisoned_ids else output

    hooks = [tiny.model.register_forward_pre_hook(remember_ids, with_kwargs=True),
             tiny.model.lm_head.register_forward_hook(poison)]
    try:
        lr, pm = yes_no_logratios(tiny.model, tiny.tokenizer, prompts, batch_size=1)
    finally:
        for h in hooks:
            h.remove()
    assert np.isnan(lr[2]) and np.isnan(pm[2])
    assert np.isfinite(lr[[0, 1, 3]]).all()


def test_heldout_nll_is_finite_and_positive(tiny):
    nll = heldout_nll(tiny.model, tiny.tokenizer)
    assert np.isfinite(nll) and nll > 1.0  # a random model is far from fluent


def test_contiguous_head_input_is_installed_and_changes_nothing(tiny, small_data_dir):
    import torch

    from bench.model.padding import left_padded_batches

    head = tiny.model.get_output_embeddings()
    assert head._steerbench_contiguous and len(head._forward_pre_hooks) == 1
    prompts = dilemma_prompts(tiny.tokenizer, load_dilemmas(small_data_dir).rows.head(4), DEFAULT_SYSTEM)
    (_, batch), = left_padded_batches(encode(tiny.tokenizer, prompts), 4, tiny.tokenizer.pad_token_id, tiny.device)
    with torch.inference_mode():
        fixed = tiny.model(**batch, logits_to_keep=3).logits
        saved = dict(head._forward_pre_hooks)
        head._forward_pre_hooks.clear()
        try:
            plain = tiny.model(**batch, logits_to_keep=3).logits
        finally:
            head._forward_pre_hooks.update(saved)
    torch.testing.assert_close(fixed, plain, rtol=1e-5, atol=1e-5)


def test_continuation_logprobs_equal_a_full_logits_computation(tiny):
    """Only the continuation positions reach the LM head; the sums equal scoring every position."""
    from bench.evaluation.evaluator import continuation_logprobs
    from bench.model.padding import encode

    heads = ["Explain tides.", "A longer opening sentence about the weather today,", "Hi"]
    conts = [" The moon pulls the sea.", " it rains.", ""]
    sums, counts = continuation_logprobs(tiny.model, tiny.tokenizer, heads, conts, batch_size=2)
    for h, c, s, n in zip(heads, conts, sums, counts):
        full = encode(tiny.tokenizer, [h + c])[0]
        k = len(full) - len(encode(tiny.tokenizer, [h])[0])
        assert n == k
        with torch.inference_mode():
            logp = torch.log_softmax(tiny.model(input_ids=torch.tensor([full])).logits.float()[0], -1)
        want = sum(logp[j - 1, full[j]].item() for j in range(len(full) - k, len(full)))
        assert s == pytest.approx(want, abs=1e-4)
