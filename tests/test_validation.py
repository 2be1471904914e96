"""Every subcommand checks its options before any work and refuses, in one line naming the value and what is
accepted: a blank list or value (never taken as the default), an option the subcommand would ignore, an
argument it does not know. Nothing is created by a refused command."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from bench.cli import main
from tests.test_cli import one_error_line


@pytest.fixture()
def run_dir(tmp_path):
    """A finished run folder as far as the result subcommands read it (they refuse before reading more)."""
    folder = tmp_path / "run"
    folder.mkdir()
    pd.DataFrame({"method": ["prompting"], "logratio": [0.0]}).to_parquet(folder / "rows.parquet")
    pd.DataFrame({"idx": [0], "dilemma_idx": [0], "labels": [["Virtue/Truthfulness", "Emotion/trust"]]}).to_parquet(
        folder / "dilemmas.parquet")
    (folder / "status.json").write_text(json.dumps({"prompting": {"status": "ok"}}))
    return folder


RUN_REFUSALS = [
    (["--methods", ""], "--methods '' has a blank entry"),
    (["--methods", "repeng,,random"], "--methods 'repeng,,random' has a blank entry"),
    (["--coeffs", ""], "--coeffs '' has a blank entry"),
    (["--coeffs=-1,,0"], "--coeffs '-1,,0' has a blank entry"),
    (["--kl-budgets", ","], "--kl-budgets ',' has a blank entry"),
    (["--kl-budgets", ""], "--kl-budgets '' has a blank entry"),
    (["--plugin", ""], "--plugin '' has a blank entry"),
    (["--methods", "repeng", "--lora.rank", "4"], "--lora.rank is given, but lora is not in --methods (repeng)"),
    (["--methods", "repeng", "--nosuch.rank", "4"], "unknown method 'nosuch'"),
    (["--strength", "raw", "--kl-budget", "0.2"], "--kl-budget 0.2 needs --strength matched"),
    (["--device", "gpu"], "--device 'gpu' is not a device; accepted: auto, cpu, cuda, cuda:N"),
    (["--device", "cuda:99"], "--device 'cuda:99' is not on this machine"),
    (["--suffix-file", ""], "--suffix-file is blank"),
    (["--target", " "], "--target is blank"),
    (["--model", ""], "--model is blank"),
]
TUNE_REFUSALS = [
    (["--split", "all"], "--split is not a tune option"),
    (["--strength", "raw"], "--strength is not a tune option"),
    (["--no-tables"], "--no-tables is not a tune option"),
    (["--seeds", "2"], "--seeds is not a tune option"),
    (["--run-name", "mine"], "--run-name is not a tune option"),
    (["--tuned", "none"], "--tuned is not a tune option"),
    (["--kl-budgets", "0.1,0.3"], "--kl-budgets is not a tune option"),
    (["--repeng.layers", "3"], "--repeng.layers is not a tune option"),
    (["--coeffs", ""], "--coeffs '' has a blank entry"),
    (["--coeffs=-2,0,2"], "--coeffs is not a tune option"),
    (["--methods", "repeng,"], "--methods 'repeng,' has a blank entry"),
    (["--methods", "repeng", "--device", "gpu"], "--device 'gpu' is not a device"),  # run's own checks, in a tune
]


@pytest.mark.parametrize("args, needle", RUN_REFUSALS)
def test_run_refuses_before_any_work(args, needle, tmp_path, small_data_dir, capsys):
    results = tmp_path / "results"
    code = main(["run", "--data-dir", str(small_data_dir), "--results-dir", str(results), *args])
    assert code == 2 and needle in one_error_line(capsys.readouterr().err)
    assert not results.exists()


@pytest.mark.parametrize("args, needle", TUNE_REFUSALS)
def test_tune_refuses_what_it_would_ignore(args, needle, tmp_path, small_data_dir, capsys):
    results = tmp_path / "results"
    code = main(["tune", "--data-dir", str(small_data_dir), "--results-dir", str(results), *args])
    assert code == 2 and needle in one_error_line(capsys.readouterr().err)
    assert not results.exists()


@pytest.mark.parametrize("command, args, needle", [
    ("list", ["--bogus"], "list: unrecognised argument '--bogus'"),
    ("list", ["--plugin", ","], "--plugin ',' has a blank entry"),
    ("tables", ["{run}", "--methods", "repeng"], "tables: unrecognised argument '--methods'"),
    ("tables", ["{run}", "--out", "elsewhere"], "--out 'elsewhere' is for the cross-run tables of several run folders"),
    ("tables", ["{run}", "--value", "Virtue/Truthfulnes"], "--value 'Virtue/Truthfulnes' labels no dilemma of"),
    ("tables", ["{run}", "--seed", "-1"], "--seed -1 is out of range"),
    ("summary", ["{run}", "--value", "Nope"], "--value 'Nope' labels no dilemma of"),
    ("summary", ["{run}", "--repeng.layers", "3"], "summary: unrecognised argument '--repeng.layers'"),
])
def test_the_other_subcommands_refuse_before_any_work(command, args, needle, run_dir, capsys):
    before = sorted(p.name for p in run_dir.iterdir())
    code = main([command, *(a.format(run=run_dir) for a in args)])
    assert code == 2 and needle in one_error_line(capsys.readouterr().err)
    assert sorted(p.name for p in run_dir.iterdir()) == before  # nothing written into the run folder


def test_a_value_close_to_a_label_is_suggested(run_dir, capsys):
    main(["summary", str(run_dir), "--value", "Virtue/Truthfulnes"])
    assert "close matches: Virtue/Truthfulness" in capsys.readouterr().err
