"""Defects of the runner and its helpers that a plugin author or a second run would hit, each pinned down."""

import json
import logging
import sys
import threading
import types
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

import methods
from bench.api.residual import ResidualSteering, last_token_hidden_states
from bench.api.steering import FitContext, Steering, SteeringMethod
from bench.errors import SteerbenchError
from bench.model.chat import render
from bench.store import file_lock
from tests.helpers import tiny_runner


class LoggingVector(SteeringMethod):
    """A toy plugin that writes a training curve to ``ctx.log_dir`` and fails on seed 1 when asked to."""

    name = "logging-vector"

    @dataclass
    class Options:
        fail_on_seed: int = -1

    def fit(self, ctx: FitContext) -> Steering:
        if ctx.seed == self.options.fail_on_seed:
            raise RuntimeError(f"diverged on seed {ctx.seed}")
        pd.DataFrame({"step": [0, 1], "loss": [1.0, 0.5]}).to_csv(ctx.log_dir / "training_log.csv", index=False)
        hidden = last_token_hidden_states(ctx.loaded, [p.positive for p in ctx.pairs][:4], [0], ctx.batch_size)
        return ResidualSteering({0: hidden[0].mean(0)}, ctx.loaded.model.config.model_type)

    def load(self, path: Path, ctx: FitContext) -> Steering:
        return ResidualSteering.load(path)


@pytest.fixture()
def plugin(monkeypatch):
    module = types.ModuleType("methods.logging_vector")
    module.LoggingVector = LoggingVector
    monkeypatch.setitem(sys.modules, "methods.logging_vector", module)
    monkeypatch.setitem(methods.REGISTRY, "logging-vector", "methods.logging_vector:LoggingVector")
    return "logging-vector"


def test_a_fit_that_writes_to_its_log_dir_is_kept(plugin, tiny_model_dir, small_data_dir, tmp_path):
    runner = tiny_runner(tiny_model_dir, small_data_dir, tmp_path, methods=(plugin,))
    runner.prepare()
    fitted = runner.fit(plugin)
    assert (fitted.folder / "training_log.csv").is_file() and (fitted.folder / "meta.json").is_file()
    assert not list(fitted.folder.parent.glob(f".{fitted.folder.name}.*"))  # no temporary folder left


def test_a_method_failing_on_a_later_seed_contributes_no_rows(plugin, tiny_model_dir, small_data_dir, tmp_path):
    runner = tiny_runner(tiny_model_dir, small_data_dir, tmp_path, methods=(plugin, "prompting"), n_seeds=2,
                         method_options={plugin: {"fail_on_seed": 1}})
    run_dir = runner.run()
    status = json.loads((run_dir / "status.json").read_text())
    rows = pd.read_parquet(run_dir / "rows.parquet")
    assert status[plugin]["status"] == "failed" and "diverged on seed 1" in status[plugin]["reason"]
    assert plugin not in set(rows["method"]) and "prompting" in set(rows["method"])  # seed 0's rows are gone too


def test_a_run_without_sign_calibration_does_not_decide_a_later_runs_sign(tiny_model_dir, small_data_dir, tmp_path):
    first = tiny_runner(tiny_model_dir, small_data_dir, tmp_path, methods=("repeng",), calibrate_sign=False)
    status = json.loads((first.run() / "status.json").read_text())
    assert status["repeng"]["calibration"]["skipped"] is True
    second = tiny_runner(tiny_model_dir, small_data_dir, tmp_path, methods=("repeng",), run_name="calibrated")
    status = json.loads((second.run() / "status.json").read_text())
    assert second.work["fits"] == 0  # the fit itself is shared ...
    assert "skipped" not in status["repeng"]["calibration"] and "p" in status["repeng"]["calibration"]  # ... its sign is not


def test_a_held_lock_makes_the_second_taker_wait_then_fail_clearly(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("STEERBENCH_LOCK_TIMEOUT", "0.5")
    lock = tmp_path / "locks" / "entry.lock"
    held, release = threading.Event(), threading.Event()

    def holder():
        with file_lock(lock):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(10)
    try:
        with caplog.at_level(logging.INFO, logger="bench.store"), pytest.raises(SteerbenchError) as err:
            with file_lock(lock):
                pass
    finally:
        release.set()
        thread.join()
    assert "entry.lock" in str(err.value) and "STEERBENCH_LOCK_TIMEOUT" in str(err.value)
    assert any("waiting for entry.lock" in r.getMessage() for r in caplog.records)
    with file_lock(lock):  # free again once its holder is done
        pass


def test_a_template_that_rejects_a_system_role_is_said_once(tiny, caplog):
    tok = tiny.tokenizer
    tok.chat_template = ("{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system') }}"
                         "{% endif %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}<|assistant|>")
    with caplog.at_level(logging.WARNING, logger="bench.model.chat"):
        first = render(tok, "Question?", "My choice:", system="Be brief.")
        render(tok, "Other?", "My choice:", system="Be brief.")
    assert first == "<|user|>Be brief.\n\nQuestion?\n<|assistant|>My choice:"
    assert sum("rejects a system role" in r.getMessage() for r in caplog.records) == 1


def test_a_hub_failure_keeps_its_reason(monkeypatch):
    import datasets

    from bench.evaluation.dilemmas import load_dilemmas

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'kellycyy/daily_dilemmas' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(SteerbenchError) as err:
        load_dilemmas(None)
    message = str(err.value)
    assert "\n" not in message and "Couldn't reach" in message and "--data-dir" in message
