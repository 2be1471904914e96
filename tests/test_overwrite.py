"""A run or tune never silently replaces committed results: a run folder holding files git tracks, a committed
tuning table, or the tuned-defaults file ``make bench`` reads, is replaced only with ``--overwrite``; a local
(untracked) run folder is rerun or resumed as before."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

import bench.running.tuned_defaults
import bench.running.tuning
from bench.cli import main
from bench.errors import SteerbenchError
from bench.model.loading import model_slug
from tests.helpers import tiny_runner


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo, check=True,
                   capture_output=True)


def repo_with(tmp_path: Path, *files: str) -> Path:
    """A git repository under ``tmp_path`` with ``files`` committed."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    for f in files:
        (repo / f).parent.mkdir(parents=True, exist_ok=True)
        (repo / f).write_text("{}")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "committed results")
    return repo


def test_a_run_into_a_committed_folder_refuses_in_one_line_unless_overwrite(tmp_path, tiny_model_dir, small_data_dir,
                                                                           capsys):
    slug = model_slug(str(tiny_model_dir))
    repo = repo_with(tmp_path, f"results/{slug}/default/status.json")
    args = ["run", "--model", str(tiny_model_dir), "--data-dir", str(small_data_dir), "--results-dir",
            str(repo / "results"), "--methods", "random", "--n-dilemmas", "2", "--n-pairs", "4", "--dtype", "fp32",
            "--device", "cpu", "--run-name", "default"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is committed" in err and "--overwrite" in err and "--run-name" in err
    assert not (repo / "results" / slug / "cache").exists(), "the refusal comes before any work"
    assert (repo / "results" / slug / "default" / "status.json").read_text() == "{}"
    # another name, or --overwrite, is accepted (checked here without running: the Runner is built)
    tiny_runner(tiny_model_dir, small_data_dir, repo / "results", methods=("random",), run_name="other")
    tiny_runner(tiny_model_dir, small_data_dir, repo / "results", methods=("random",), run_name="default", overwrite=True)
    with pytest.raises(SteerbenchError, match="is committed"):
        tiny_runner(tiny_model_dir, small_data_dir, repo / "results", methods=("random",), run_name="default")


def test_a_committed_run_reruns_with_overwrite_to_the_same_rows(tmp_path, tiny_model_dir, small_data_dir):
    repo = repo_with(tmp_path, "README.md")
    results = repo / "results"
    kw = dict(methods=("random",), n_dilemmas=2, run_name="c", calibrate_sign=False)
    run_dir = tiny_runner(tiny_model_dir, small_data_dir, results, **kw).run()
    rows = pd.read_parquet(run_dir / "rows.parquet")
    tiny_runner(tiny_model_dir, small_data_dir, results, **kw).run()  # a local, uncommitted run reruns freely
    git(repo, "add", str(run_dir))
    git(repo, "commit", "-q", "-m", "the run")
    with pytest.raises(SteerbenchError, match="is committed"):
        tiny_runner(tiny_model_dir, small_data_dir, results, **kw)
    committed = json.loads((run_dir / "status.json").read_text())["_run"]["processes"]
    assert len(committed) == 2  # the local rerun above was merged in, as a resumed run's process is
    again = tiny_runner(tiny_model_dir, small_data_dir, results, overwrite=True, **kw)
    again.run()
    assert again.work["fits"] == 0 and again.work["evaluations"] == 0  # every number came from the cache
    record = json.loads((run_dir / "status.json").read_text())["_run"]
    assert len(record["processes"]) == 1 and not set(record["processes"]) & set(committed), \
        "the replaced run's work record is not this run's"
    assert record["wall_seconds"] == next(iter(record["processes"].values()))["wall_seconds"]
    pd.testing.assert_frame_equal(pd.read_parquet(run_dir / "rows.parquet"), rows)
    assert "overwrite" not in again.cfg.identity()  # --overwrite changes where, never what: same run-<hash>


def test_a_tune_refuses_to_replace_the_tuned_file_make_bench_reads(tmp_path, tiny_model_dir, small_data_dir, capsys,
                                                                   monkeypatch):
    tuned_dir = tmp_path / "tuned"
    tuned_dir.mkdir()
    monkeypatch.setattr(bench.running.tuned_defaults, "TUNED_DIR", tuned_dir)
    tuned = tuned_dir / f"{model_slug(str(tiny_model_dir))}.json"
    tuned.write_text(json.dumps({"methods": {}}))
    args = ["tune", "--model", str(tiny_model_dir), "--data-dir", str(small_data_dir), "--results-dir",
            str(tmp_path / "results"), "--methods", "repeng", "--n-dilemmas", "2", "--n-pairs", "4", "--dtype", "fp32",
            "--device", "cpu"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(tuned) in err and "--tuned-name" in err and "--overwrite" in err
    assert json.loads(tuned.read_text()) == {"methods": {}}
    assert not (tmp_path / "results").exists(), "the refusal comes before any work"
    assert main([*args, "--tuned-name", "no/slash"]) == 2
    assert "--tuned-name 'no/slash'" in capsys.readouterr().err


def test_a_tune_never_replaces_a_committed_tuning_table(tmp_path, tiny_model_dir):
    from bench.config import RunConfig
    from bench.running.tuning import outputs
    from bench.running.validate import check_tune_overwrite

    slug = model_slug(str(tiny_model_dir))
    repo = repo_with(tmp_path, f"results/{slug}/tuning/tuning.md")
    cfg = RunConfig(model=str(tiny_model_dir), results_dir=str(repo / "results"))
    table_dir, tuned_file = outputs(cfg)
    with pytest.raises(SteerbenchError, match="committed tuning table"):
        check_tune_overwrite(table_dir, tuned_file, reads=True, overwrite=False)
    check_tune_overwrite(table_dir, tuned_file, reads=True, overwrite=True)
    candidate_table, candidate_file = outputs(cfg, "candidate")
    assert candidate_table.name == "tuning-candidate" and candidate_file.name == f"{slug}.candidate.json"
    check_tune_overwrite(candidate_table, candidate_file, reads=False, overwrite=False)
