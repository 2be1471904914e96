"""``--dtype auto``: bf16 only where the hardware runs it natively, fp32 on CPUs without bf16 instructions,
an explicit --dtype always wins; the choice reaches the loaded model, its cache keys and environment.json;
the start-up wall-time estimate follows the plan."""

from __future__ import annotations

import logging

import pytest
import torch

from bench.errors import SteerbenchError
from bench.model import dtype_choice
from bench.model import loading as models
from bench.model.dtype_choice import choose_dtype, parse_dtype

NATIVE = {"fp32": 190.0, "bf16": 640.0}  # AMX / AVX512-BF16: bf16 several times faster
AVX2 = {"fp32": 190.0, "bf16": 15.0}  # no bf16 instructions: bf16 emulated, ~12x slower
CPU = torch.device("cpu")


def rates_of(table):
    calls = []

    def probe(hidden, intermediate):
        calls.append((hidden, intermediate))
        return table

    probe.calls = calls
    return probe


def test_auto_on_a_cpu_with_native_bf16_is_bf16():
    probe = rates_of(NATIVE)
    choice = choose_dtype("auto", CPU, 576, 1536, rates=probe)
    assert choice.dtype == torch.bfloat16 and "natively" in choice.reason
    assert probe.calls == [(576, 1536)]  # timed at the model's own shapes


def test_auto_on_a_cpu_without_native_bf16_is_fp32_and_says_why(monkeypatch):
    monkeypatch.setattr(dtype_choice, "cpu_capability", lambda: "AVX2")
    choice = choose_dtype("auto", CPU, 576, 1536, rates=rates_of(AVX2))
    assert choice.dtype == torch.float32
    assert choice.reason.startswith("dtype fp32: this CPU (AVX2) has no native bf16; bf16 would be ~13x slower here")
    assert choice.as_dict() == {"dtype": "fp32", "reason": choice.reason, "linear_gflops": AVX2}


def test_explicit_dtype_wins_and_forced_bf16_on_a_slow_cpu_warns_once(monkeypatch, caplog):
    assert choose_dtype("fp32", CPU, 64, 128, rates=rates_of(NATIVE)).dtype == torch.float32
    assert choose_dtype("fp16", CPU, 64, 128, rates=rates_of(AVX2)).dtype == torch.float16
    monkeypatch.setattr(dtype_choice, "_WARNED", set())
    with caplog.at_level(logging.WARNING, logger="bench.model.dtype_choice"):
        for _ in range(2):
            forced = choose_dtype("bf16", CPU, 64, 128, rates=rates_of(AVX2))
    assert forced.dtype == torch.bfloat16
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "~13x slower" in warnings[0] and "auto would choose fp32" in warnings[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="bench.model.dtype_choice"):
        choose_dtype("bf16", CPU, 64, 128, rates=rates_of(NATIVE))  # native: nothing to warn about
    assert not caplog.records


def test_cuda_uses_what_the_device_supports(monkeypatch):
    never = rates_of(AVX2)
    gpu = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert choose_dtype("auto", gpu, 64, 128, rates=never).dtype == torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    old = choose_dtype("auto", gpu, 64, 128, rates=never)
    assert old.dtype == torch.float16 and "no bf16" in old.reason
    assert choose_dtype("fp32", gpu, 64, 128, rates=never).dtype == torch.float32
    assert never.calls == []  # the CPU probe never runs for a GPU


def test_unknown_dtype_is_one_line_naming_the_accepted_values():
    with pytest.raises(SteerbenchError, match=r"unknown dtype 'bf8'; accepted: auto, bf16, bfloat16, float16"):
        parse_dtype("bf8")


def test_the_probe_is_cached_per_machine(tmp_path, monkeypatch):
    measured = []
    monkeypatch.setattr(dtype_choice, "measure_linear_gflops", lambda h, i: measured.append((h, i)) or dict(NATIVE))
    cache = tmp_path / "probe.json"
    assert dtype_choice.cached_linear_gflops(64, 128, cache) == NATIVE
    assert dtype_choice.cached_linear_gflops(64, 128, cache) == NATIVE
    assert measured == [(64, 128)]  # measured once, then read back: the same machine makes the same choice
    dtype_choice.cached_linear_gflops(96, 128, cache)
    assert measured == [(64, 128), (96, 128)]  # another shape is another measurement


def test_measured_rates_are_positive_numbers():
    rates = dtype_choice.measure_linear_gflops(32, 64, tokens=16, repeats=2)
    assert set(rates) == {"fp32", "bf16"} and all(v > 0 for v in rates.values())


@pytest.mark.parametrize("table, want", [(AVX2, torch.float32), (NATIVE, torch.bfloat16)])
def test_the_choice_reaches_the_loaded_model_and_its_cache_keys(tiny_model_dir, small_data_dir, tmp_path,
                                                                monkeypatch, table, want):
    from bench.config import RunConfig
    from bench.running.runner import Runner

    monkeypatch.setattr(dtype_choice, "cached_linear_gflops", rates_of(table))
    monkeypatch.setattr(models, "choose_dtype", lambda *a: dtype_choice.choose_dtype(*a, rates=rates_of(table)))
    cfg = RunConfig(model=str(tiny_model_dir), methods=["random"], n_dilemmas=4, n_pairs=8, data_dir=str(small_data_dir),
                    results_dir=str(tmp_path), device="cpu")
    runner = Runner(cfg).prepare()
    assert runner.loaded.dtype == want
    assert next(runner.loaded.model.model.layers.parameters()).dtype == want
    assert runner.artefacts.model_key["dtype"] == str(want) == runner.evaluations.model_key["dtype"]
    run_dir = runner.run()
    import json

    env = json.loads((run_dir / "environment.json").read_text())["model"]
    assert env["dtype"] == str(want) and env["dtype_choice"]["dtype"] == {torch.float32: "fp32"}.get(want, "bf16")
    assert env["dtype_choice"]["reason"].startswith(f"dtype {env['dtype_choice']['dtype']}:")
