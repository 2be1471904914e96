"""`accelerate launch -m bench run` with 2 CPU processes gives the rows of a single-process run."""

import json
import os
import shutil
import socket
import subprocess
import sys

import pandas as pd

from bench.distributed import ProcessShard


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_accelerate_run_matches_single_process(tiny_model_dir, small_data_dir, tmp_path):
    args = ["-m", "bench", "run", "--model", str(tiny_model_dir), "--methods", "prompting,random,repeng",
            "--n-dilemmas", "12", "--n-pairs", "12", "--batch-size", "2", "--dtype", "fp32", "--device", "cpu",
            "--min-pmass", "0", "--strength", "raw", "--data-dir", str(small_data_dir), "--run-name", "r"]
    env = {**os.environ, "TQDM_DISABLE": "1"}
    single = subprocess.run([sys.executable, *args, "--results-dir", str(tmp_path / "single")],
                            capture_output=True, text=True, env=env)
    assert single.returncode == 0, single.stderr[-2000:]
    accelerate = shutil.which("accelerate", path=os.path.dirname(sys.executable))
    # --multi_gpu is accelerate's name for its torchrun launcher; on a CPU-only machine it starts CPU processes
    launch = [accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port())]
    sharded = subprocess.run([*launch, *args, "--results-dir", str(tmp_path / "sharded")],
                             capture_output=True, text=True, env=env, timeout=900)
    assert sharded.returncode == 0, sharded.stderr[-3000:]
    assert "process 1 of 2" in sharded.stderr

    model = tiny_model_dir.name
    rows_single = pd.read_parquet(tmp_path / "single" / model / "r" / "rows.parquet")
    rows_sharded = pd.read_parquet(tmp_path / "sharded" / model / "r" / "rows.parquet")
    pd.testing.assert_frame_equal(rows_sharded, rows_single)
    parts = list((tmp_path / "sharded" / model / "cache" / "eval").glob("*.part1of2.parquet"))
    assert len(parts) == 1 + 2 * 3  # process 1 really did a share of every chunk
    assert all(0 < len(pd.read_parquet(p)) < 24 for p in parts)
    env_file = json.loads((tmp_path / "sharded" / model / "r" / "environment.json").read_text())
    assert env_file["processes"] == 2


def test_shard_from_env_rejects_bad_rank(monkeypatch):
    import pytest

    from bench.errors import SteerbenchError

    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(SteerbenchError, match="RANK=2"):
        ProcessShard.from_env()
    monkeypatch.setenv("RANK", "1")
    assert ProcessShard.from_env() == ProcessShard(1, 2)
