"""LoRA (peft + trl DPO) and SFT (trl) on the tiny model.

The tiny random model's greedy continuations carry no honesty signal (both personas give the same
tokens), so these tests feed fixed, clearly different continuations: they test the mechanics
(training, scaling, saving, evaluating), not what the model learns.
"""

import json

import pandas as pd
import pytest
import torch

from bench.continuations import Continuations, pair_continuations
from bench.steering import NoSteering
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


def test_sft_trains_saves_and_evaluates_at_plus_and_minus_one(runner):
    before = last_logits(runner, NoSteering(), 0.0)
    steering = runner.fit("sft").steering
    assert steering.supports(1.0) and steering.supports(-1.0) and not steering.supports(0.5)
    plus, minus = last_logits(runner, steering, 1.0), last_logits(runner, steering, -1.0)
    assert not torch.allclose(plus, before) and not torch.allclose(minus, before) and not torch.allclose(plus, minus)
    torch.testing.assert_close(last_logits(runner, steering, 0.0), before)  # base weights restored
    folder = next((runner.cache / "artifacts").glob("sft-*"))
    assert (folder / "honest.safetensors").is_file() and (folder / "dishonest.safetensors").is_file()
    log = pd.read_csv(folder / "log_honest" / "training_log.csv")
    assert len(log) > 0 and "loss" in log.columns


def test_continuation_cache_is_hit_on_second_run(tiny, tmp_path, monkeypatch):
    from bench import continuations as mod
    from bench.pairs import make_pairs

    pairs = make_pairs(tiny.tokenizer, n_pairs=4)
    first = pair_continuations(tiny, pairs, tmp_path, n=None, max_new_tokens=4)
    monkeypatch.setattr(mod, "greedy_continuations", lambda *a, **k: pytest.fail("cache missed"))
    again = pair_continuations(tiny, pairs, tmp_path, n=None, max_new_tokens=4)
    assert again == first and len(list(tmp_path.glob("continuations-*.json"))) == 1
