"""Crash safety, caching and determinism of the result store, and the remaining bad-input paths."""

import json
import os

import pandas as pd
import pytest
import torch

from bench.errors import SteerbenchError
from bench.evaluation.evaluator import yes_no_logratios
from bench.store import check_writable
from tests.helpers import tiny_runner


def test_same_command_twice_gives_identical_rows_and_table(tiny_model_dir, small_data_dir, tmp_path):
    dirs = []
    for name in ("a", "b"):  # separate results folders: nothing is shared through the cache
        runner = tiny_runner(tiny_model_dir, small_data_dir, tmp_path / name, methods=("random", "repeng"))
        dirs.append(runner.run())
    rows = [pd.read_parquet(d / "rows.parquet") for d in dirs]
    pd.testing.assert_frame_equal(rows[0], rows[1])
    assert (dirs[0] / "summary.md").read_text() == (dirs[1] / "summary.md").read_text()
    assert dirs[0].name == dirs[1].name  # the run name is a hash of the config


def test_corrupt_cache_chunk_is_moved_aside_and_recomputed(tiny_model_dir, small_data_dir, tmp_path, caplog):
    runner = tiny_runner(tiny_model_dir, small_data_dir, tmp_path, methods=("random",), run_name="x")
    run_dir = runner.run()
    rows = pd.read_parquet(run_dir / "rows.parquet")
    chunk = sorted((tmp_path / runner.model_dir.name / "cache" / "eval").glob("*.parquet"))[0]
    chunk.write_bytes(b"truncated")
    again = tiny_runner(tiny_model_dir, small_data_dir, tmp_path, methods=("random",), run_name="x")
    again.run()
    assert "could not be read" in caplog.text and chunk.with_name(chunk.name + ".corrupt").is_file()
    assert again.forward_passes > 0
    pd.testing.assert_frame_equal(pd.read_parquet(run_dir / "rows.parquet"), rows)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere; covered by the file-path case below")
def test_unwritable_results_dir_fails_before_compute(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(SteerbenchError, match="not writable"):
        check_writable(locked / "model")


def test_results_dir_that_is_a_file_fails_before_compute(tmp_path):
    blocker = tmp_path / "results"
    blocker.write_text("not a folder")
    with pytest.raises(SteerbenchError, match="not writable"):
        check_writable(blocker / "model")


def test_out_of_memory_suggests_smaller_batch(tiny, monkeypatch):
    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(tiny.model, "forward", oom)
    with pytest.raises(SteerbenchError, match="smaller --batch-size"):
        yes_no_logratios(tiny.model, tiny.tokenizer, ["hello"], batch_size=8)


def test_killed_run_resumes_to_the_same_rows(tiny_model_dir, dilemmas_dir, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    def command(results):
        return [sys.executable, "-m", "bench", "run", "--model", str(tiny_model_dir), "--methods", "random,repeng",
                "--n-dilemmas", "60", "--n-pairs", "12", "--batch-size", "1", "--dtype", "fp32", "--device", "cpu",
                "--min-pmass", "0", "--strength", "raw", "--data-dir", str(dilemmas_dir), "--results-dir", str(results),
                "--run-name", "k"]

    env = {**os.environ, "TQDM_DISABLE": "1"}
    proc = subprocess.Popen(command(tmp_path / "killed"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    run_dir = tmp_path / "killed" / tiny_model_dir.name / "k"
    eval_dir = tmp_path / "killed" / tiny_model_dir.name / "cache" / "eval"
    deadline = time.time() + 240  # killed once it has checkpointed its work (after the c=0 evaluation)
    while time.time() < deadline and proc.poll() is None and not list((run_dir / ".work").glob("*.json")):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    done_before = len(list(eval_dir.glob("*.parquet")))
    assert done_before >= 1 and not (run_dir / "rows.parquet").exists()

    assert subprocess.run(command(tmp_path / "killed"), capture_output=True, env=env).returncode == 0
    assert subprocess.run(command(tmp_path / "clean"), capture_output=True, env=env).returncode == 0
    killed = pd.read_parquet(run_dir / "rows.parquet")
    clean = pd.read_parquet(tmp_path / "clean" / tiny_model_dir.name / "k" / "rows.parquet")
    pd.testing.assert_frame_equal(killed, clean)

    # the killed process's time is in the run's work record, beside the process that finished it
    record = json.loads((run_dir / "status.json").read_text())["_run"]
    unfinished = [p for p in record["processes"].values() if p.get("unfinished")]
    assert len(record["processes"]) == 2 and len(unfinished) == 1
    assert unfinished[0]["wall_seconds"] > 0 and unfinished[0]["computed"]["c0_evaluations"] == 1
    assert record["wall_seconds"] == round(sum(p["wall_seconds"] for p in record["processes"].values()), 1)
    assert not (run_dir / ".work").exists()  # folded in, then removed


def test_two_runs_sharing_a_results_folder_at_once(tiny_model_dir, small_data_dir, tmp_path):
    """Started together on one cache: no corrupt or half-written file, identical rows, and (thanks to the
    per-entry locks) each fit and evaluation is computed by one of them only, then reused by the other."""
    import json
    import subprocess
    import sys

    def command(name):
        return [sys.executable, "-m", "bench", "run", "--model", str(tiny_model_dir), "--methods", "random,repeng",
                "--n-dilemmas", "8", "--n-pairs", "12", "--batch-size", "2", "--dtype", "fp32", "--device", "cpu",
                "--min-pmass", "0", "--strength", "raw", "--data-dir", str(small_data_dir), "--results-dir", str(tmp_path),
                "--run-name", name]

    env = {**os.environ, "TQDM_DISABLE": "1"}
    procs = [subprocess.Popen(command(n), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env) for n in ("a", "b")]
    for p in procs:
        assert p.wait(timeout=600) == 0, p.stderr.read().decode()[-2000:]
    model_dir = tmp_path / tiny_model_dir.name
    a, b = (pd.read_parquet(model_dir / n / "rows.parquet") for n in ("a", "b"))
    pd.testing.assert_frame_equal(a, b)
    assert not list(model_dir.rglob("*.corrupt")) and not list(model_dir.rglob(".*.parquet.*"))
    work = [json.loads((model_dir / n / "status.json").read_text())["_run"]["computed"] for n in ("a", "b")]
    assert work[0]["evaluations"] + work[1]["evaluations"] == 1 + 2 * 2  # c=0 once, +-1 per method
    assert work[0]["fits"] + work[1]["fits"] == 2


def test_same_command_in_two_empty_folders_gives_identical_rows(tiny_model_dir, small_data_dir, tmp_path):
    """Every untrained method (and the seeded random vector) is deterministic: two fresh runs, same rows."""
    import pandas as pd

    from tests.helpers import tiny_runner

    methods = ("prompting", "random", "repeng", "svd-steer")
    a = tiny_runner(tiny_model_dir, small_data_dir, tmp_path / "a", methods=methods, run_name="x").run()
    b = tiny_runner(tiny_model_dir, small_data_dir, tmp_path / "b", methods=methods, run_name="x").run()
    rows_a, rows_b = pd.read_parquet(a / "rows.parquet"), pd.read_parquet(b / "rows.parquet")
    assert set(rows_a["method"]) == set(methods)
    pd.testing.assert_frame_equal(rows_a, rows_b, check_exact=True)
