"""LoRA (peft + trl DPO) and SFT (trl) on the tiny model.

The tiny random model's greedy continuations carry no honesty signal (both personas give the same
tokens), so these tests feed fixed, clearly different continuations: they test the mechanics
(training, scaling, saving, evaluating), not what the model learns.
"""

import json

import pandas as pd
import pytest
import torch

from bench.api.continuations import Continuations, pair_continuations
from bench.api.steering import NoSteering
from tests.helpers import last_logits, tiny_runner


def fixed_continuations(n=None, max_new_tokens=16):
    suffixes = ["The river", "Most kitchens", "Penguins in", "Our town library"] * 3
    return Continuations(suffixes, [" is exactly as I describe it, truthfully."] * 12,
                         [" is something I invented to fool you."] * 12)


@pytest.fixture()
def runner(tiny_model_dir, small_data_dir, tmp_path):
    r = tiny_runner(tiny_model_dir, small_data_dir, tmp_path, methods=("lora", "sft"), calibrate_sign=False,
                    method_options={"lora": {"lr": "0.01", "epochs": "3"}, "sft": {"lr": "0.001", "epochs": "2"}})
    r.prepare()
    r.continuations = fixed_continuations
    return r


def test_lora_scales_with_c_and_c0_is_base(runner):
    before = last_logits(runner, NoSteering(), 0.0)
    fitted = runner.fit("lora")
    steering = fitted.steering
    torch.testing.assert_close(last_logits(runner, steering, 0.0), before)  # the shared model came back clean
    plus = last_logits(runner, steering, 1.0) - before
    minus = last_logits(runner, steering, -1.0) - before
    assert plus.norm() > 1e-3
    assert (torch.nn.functional.cosine_similarity(plus, minus, dim=-1) < 0).all()
    torch.testing.assert_close(last_logits(runner, NoSteering(), 0.0), before)  # unloaded after apply
    folder = next((runner.cache / "artifacts").glob("lora-*"))
    assert (folder / "adapter_model.safetensors").is_file() and (folder / "training_log.csv").is_file()
    info = json.loads((folder / "lora.json").read_text())
    assert info["versions"]["trl"].startswith("1.16") and info["versions"]["peft"].startswith("0.21")


def test_sft_trains_saves_and_interpolates_its_weights_in_c(runner):
    before = last_logits(runner, NoSteering(), 0.0)
    steering = runner.fit("sft").steering
    assert steering.supports(0.5) and steering.supports(-2.0)  # continuous: c* is searched like any method's
    plus, minus = last_logits(runner, steering, 1.0), last_logits(runner, steering, -1.0)
    assert not torch.allclose(plus, before) and not torch.allclose(minus, before) and not torch.allclose(plus, minus)
    half = last_logits(runner, steering, 0.5)
    # theta(0.5) is halfway between base and honest weights: its logits lie between theirs, not at either end
    assert 0.2 < ((half - before).norm() / (plus - before).norm()).item() < 0.8
    torch.testing.assert_close(last_logits(runner, steering, 0.0), before)  # base weights restored
    folder = next((runner.cache / "artifacts").glob("sft-*"))
    assert (folder / "honest_delta.safetensors").is_file() and (folder / "dishonest_delta.safetensors").is_file()
    log = pd.read_csv(folder / "log_honest" / "training_log.csv")
    assert len(log) > 0 and "loss" in log.columns


def test_discrete_sft_supports_only_its_three_models(runner):
    steering = runner.fit("sft", discrete=True).steering
    assert steering.supports(1.0) and steering.supports(-1.0) and not steering.supports(0.5)


def test_truncated_continuations_are_trained_without_an_end_of_text_token(tiny):
    """trl appends EOS to every completion; ours are cut mid-sentence, so the prepared data must not end on it."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    from bench.api.supervised import trainer_kwargs, without_appended_eos

    tok, eos = tiny.tokenizer, tiny.tokenizer.eos_token_id
    prompts, cont = ["Complete: The river"] * 2, fixed_continuations()
    sft_data = Dataset.from_dict({"prompt": prompts, "completion": cont.honest[:2]})
    dpo_data = Dataset.from_dict({"prompt": prompts, "chosen": cont.honest[:2], "rejected": cont.dishonest[:2]})
    kwargs = trainer_kwargs(0, 1e-4, 1, 2)
    for strip in (False, True):
        sft_cls = without_appended_eos(SFTTrainer, ("input_ids",), ("labels", "completion_mask")) if strip else SFTTrainer
        sft = sft_cls(model=tiny.model, args=SFTConfig(**kwargs, completion_only_loss=True), train_dataset=sft_data,
                      processing_class=tok)
        dpo_cls = without_appended_eos(DPOTrainer, ("chosen_ids", "rejected_ids")) if strip else DPOTrainer
        dpo = dpo_cls(model=tiny.model, args=DPOConfig(**kwargs), train_dataset=dpo_data, processing_class=tok)
        ends = [ex["input_ids"][-1] for ex in sft.train_dataset] + \
            [ex[c][-1] for ex in dpo.train_dataset for c in ("chosen_ids", "rejected_ids")]
        assert all(e == eos for e in ends) != strip, (strip, ends)  # plain trl appends it; ours never does
        if strip:
            row = sft.train_dataset[0]
            assert len(row["labels"]) == len(row["input_ids"])
            completion = [t for t, label in zip(row["input_ids"], row["labels"]) if label != -100]
            assert tok.decode(completion).strip() == cont.honest[0].strip()  # exactly the continuation


def test_continuation_cache_is_hit_on_second_run(tiny, tmp_path, monkeypatch):
    from bench.api import continuations as mod
    from bench.api.pairs import make_pairs

    pairs = make_pairs(tiny.tokenizer, n_pairs=4)
    first = pair_continuations(tiny, pairs, tmp_path, n=None, max_new_tokens=4)
    monkeypatch.setattr(mod, "greedy_continuations", lambda *a, **k: pytest.fail("cache missed"))
    again = pair_continuations(tiny, pairs, tmp_path, n=None, max_new_tokens=4)
    assert again == first and len(list(tmp_path.glob("continuations-*.json"))) == 1
