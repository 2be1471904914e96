"""Reliability under an adversarial user (issue 16): bad options, hostile names, damaged files and caches,
interrupts and concurrent writers each end in one clear line (or a recovery), never a traceback, a
poisoned cache, or files outside the results folder."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path

import pandas as pd
import pytest

from bench.cli import main
from bench.errors import SteerbenchError
from bench.evaluation.dilemmas import DILEMMA_FILE, VALUES_FILE, load_dilemmas
from bench.model.loading import model_slug
from tests.helpers import tiny_runner


def one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.startswith("steerbench: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err, err
    return lines[0]


def run_cli(capsys, *args):
    code = main([str(a) for a in args])
    return code, capsys.readouterr()


# ---------------------------------------------------------------- 1, 2: every run option, the run name
BAD_OPTIONS = [
    (["--batch-size", "0"], "--batch-size 0 is out of range; accepted: an integer >= 1"),
    (["--batch-size", "-1"], "--batch-size -1 is out of range"),
    (["--kl-budget", "0"], "--kl-budget 0.0 is out of range; accepted: a number > 0"),
    (["--kl-budget", "-0.5"], "--kl-budget -0.5 is out of range"),
    (["--kl-budget", "nan"], "--kl-budget nan is out of range"),
    (["--min-pmass", "1.5"], "--min-pmass 1.5 is out of range; accepted: a number in [0, 1]"),
    (["--min-pmass", "-0.1"], "--min-pmass -0.1 is out of range"),
    (["--n-dilemmas", "-3"], "n_dilemmas must be a positive integer, got -3"),
    (["--n-pairs", "0"], "--n-pairs 0 is out of range; accepted: an integer >= 1"),
    (["--seeds", "-1"], "--seeds -1 is not a number of training seeds"),
    (["--seed", "-1"], "--seed -1 is out of range"),
    (["--dtype", "fp8"], "unknown dtype 'fp8'; accepted: auto"),
    (["--methods", "innerpissa", "--innerpissa.rank", "0"], "--innerpissa.rank 0 is out of range"),
    (["--methods", "innerpissa", "--innerpissa.loss", "mse"], "--innerpissa.loss 'mse' is not accepted; accepted: dpo, margin"),
    (["--methods", "innerpissa", "--innerpissa.lr", "-1"], "--innerpissa.lr -1.0 is out of range"),
    (["--methods", "lora", "--lora.rank", "0"], "--lora.rank 0 is out of range"),
    (["--methods", "sft", "--sft.batch-size", "0"], "--sft.batch-size 0 is out of range"),
    (["--methods", "svd-steer", "--svd-steer.direction", "up"], "--svd-steer.direction 'up' is not accepted"),
    (["--methods", "repeng", "--repeng.batch-size", "0"], "--repeng.batch-size 0 is out of range"),
    (["--run-name", "a/b"], "--run-name 'a/b' is not a folder name"),
    (["--run-name", "../escape"], "--run-name '../escape' is not a folder name"),
    (["--run-name", ".."], "--run-name '..' is not a folder name"),
    (["--run-name", "."], "--run-name '.' is not a folder name"),
    (["--run-name", "/tmp/abs"], "--run-name '/tmp/abs' is not a folder name"),
    (["--run-name", "a\\b"], "is not a folder name"),
    (["--run-name", "bad\nname"], "is not a folder name"),
    (["--run-name", ""], "--run-name '' is not a folder name"),
    (["--suffix-file", "/no/such/suffixes.json"], "suffix file '/no/such/suffixes.json' does not exist"),
]


@pytest.mark.parametrize("args, needle", BAD_OPTIONS, ids=[" ".join(a) for a, _ in BAD_OPTIONS])
def test_bad_run_option_is_one_line_before_any_work(capsys, tmp_path, tiny_model_dir, small_data_dir, args, needle):
    results = tmp_path / "results"
    code, out = run_cli(capsys, "run", "--model", tiny_model_dir, "--data-dir", small_data_dir, "--results-dir", results,
                        "--n-dilemmas", "2", "--n-pairs", "4", "--dtype", "fp32", "--device", "cpu",
                        "--methods", "prompting", *args)
    assert code == 2
    assert needle in one_error_line(out.err)
    assert not results.exists(), "an early error must create nothing (no run folder, no cache)"
    assert not (tmp_path / "escape").exists() and not (tmp_path / "abs").exists()


def test_malformed_suffix_file_fails_before_the_model_loads(capsys, tmp_path, monkeypatch):
    import bench.model.loading

    def no_model(*a, **k):
        raise AssertionError("the model must not load")

    monkeypatch.setattr(bench.model.loading, "load_model", no_model)
    bad = tmp_path / "suffixes.json"
    bad.write_text("{not json")
    code, out = run_cli(capsys, "run", "--suffix-file", bad, "--results-dir", tmp_path / "r")
    assert code == 2 and "is not valid JSON" in one_error_line(out.err)
    assert not (tmp_path / "r").exists()


LAYER_SPECS = [
    (["--methods", "prompting,repeng", "--repeng.layers", "99:100"], "--repeng.layers: bad layer spec '99:100' for a 2-layer model"),
    (["--methods", "prompting,random", "--random.layers", "5"], "--random.layers: bad layer spec '5'"),
    (["--methods", "prompting,svd-steer", "--svd-steer.layers", "0-7"], "--svd-steer.layers: bad layer spec '0-7'"),
    (["--methods", "prompting,innerpissa", "--innerpissa.layers", "0.5:99"], "--innerpissa.layers: bad layer spec '0.5:99'"),
    (["--methods", "prompting,svd-steer", "--svd-steer.modules", "nope_proj"], "--svd-steer.modules: no Linear module named ['nope_proj']"),
    (["--methods", "prompting,lora", "--lora.layers", "3"], "--lora.layers: bad layer spec '3'"),
]


@pytest.mark.parametrize("args, needle", LAYER_SPECS, ids=[" ".join(a) for a, _ in LAYER_SPECS])
def test_layer_specs_are_checked_before_any_fit(capsys, tmp_path, tiny_model_dir, small_data_dir, args, needle):
    results = tmp_path / "results"
    code, out = run_cli(capsys, "run", "--model", tiny_model_dir, "--data-dir", small_data_dir, "--results-dir", results,
                        "--n-dilemmas", "2", "--n-pairs", "4", "--dtype", "fp32", "--device", "cpu", "--run-name", "x", *args)
    assert code == 2
    assert needle in one_error_line(out.err)
    model_dir = results / model_slug(str(tiny_model_dir))
    assert not (model_dir / "cache").exists(), "nothing may be fitted or evaluated before the specs are checked"
    assert not (model_dir / "x").exists(), "an early error must not leave an empty run folder"


# ------------------------------------------------------------------------------- 3: the umask
@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700), (0o002, 0o664, 0o775)])
def test_written_files_and_folders_respect_the_umask(tmp_path, umask, file_mode, dir_mode):
    from bench.store import atomic_dir, atomic_write_frame, atomic_write_json, atomic_write_text

    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        atomic_write_json(tmp_path / "b.json", {"a": 1})
        atomic_write_frame(tmp_path / "c.parquet", pd.DataFrame({"a": [1]}))
        atomic_write_frame(tmp_path / "d.csv", pd.DataFrame({"a": [1]}))
        with atomic_dir(tmp_path / "folder") as tmp:
            atomic_write_text(tmp / "inner.txt", "y")
    finally:
        os.umask(old)
    for name in ("a.txt", "b.json", "c.parquet", "d.csv", "folder/inner.txt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == file_mode, name
    assert stat.S_IMODE((tmp_path / "folder").stat().st_mode) == dir_mode


# ------------------------------------------------------------------------------ 4: DailyDilemmas files
@pytest.fixture()
def data_copy(tmp_path, small_data_dir):
    folder = tmp_path / "dd"
    folder.mkdir()
    for name in (DILEMMA_FILE, VALUES_FILE):
        (folder / name).write_bytes((small_data_dir / name).read_bytes())
    return folder


def test_exactly_duplicated_rows_are_dropped_with_a_warning(data_copy, caplog):
    rows = pd.read_csv(data_copy / DILEMMA_FILE)
    clean = load_dilemmas(data_copy).rows
    pd.concat([rows, rows.head(3)]).to_csv(data_copy / DILEMMA_FILE, index=False)
    with caplog.at_level(logging.WARNING):
        deduped = load_dilemmas(data_copy).rows
    assert "3 exactly duplicated row(s) dropped" in caplog.text
    pd.testing.assert_frame_equal(deduped, clean)


@pytest.mark.parametrize("column, value, needle", [
    ("idx", None, "rows share an idx with different content"),
    ("dilemma_idx", None, "rows share an (dilemma_idx, action_type) with different content"),
])
def test_conflicting_duplicate_rows_are_rejected(data_copy, column, value, needle):
    rows = pd.read_csv(data_copy / DILEMMA_FILE)
    twin = rows.head(1).copy()
    twin["action"] = "a different action"
    if column == "dilemma_idx":
        twin["idx"] = rows["idx"].max() + 1
    pd.concat([rows, twin]).to_csv(data_copy / DILEMMA_FILE, index=False)
    with pytest.raises(SteerbenchError, match="rows share an"):
        load_dilemmas(data_copy)
    try:
        load_dilemmas(data_copy)
    except SteerbenchError as exc:
        assert needle in str(exc) and "\n" not in str(exc)


def test_one_action_dilemmas_are_dropped_and_counted(data_copy, caplog):
    rows = pd.read_csv(data_copy / DILEMMA_FILE)
    ids = rows["dilemma_idx"].drop_duplicates().head(2).tolist()
    one_sided = rows[~(rows["dilemma_idx"].isin(ids) & (rows["action_type"] == "not_to_do"))]
    one_sided.to_csv(data_copy / DILEMMA_FILE, index=False)
    with caplog.at_level(logging.WARNING):
        loaded = load_dilemmas(data_copy).rows
    assert "2 dilemma(s) with only one action dropped" in caplog.text
    assert not set(ids) & set(loaded["dilemma_idx"]) and loaded.groupby("dilemma_idx").size().eq(2).all()


@pytest.mark.parametrize("name", [DILEMMA_FILE, VALUES_FILE])
def test_empty_data_file_is_one_line(capsys, tmp_path, data_copy, name):
    (data_copy / name).write_bytes(b"")
    with pytest.raises(SteerbenchError, match="is empty"):
        load_dilemmas(data_copy)
    code, out = run_cli(capsys, "run", "--data-dir", data_copy, "--results-dir", tmp_path / "r", "--run-name", "x")
    assert code == 2 and f"{name}' is empty" in one_error_line(out.err)
    assert not (tmp_path / "r" / model_slug("smollm2-135m") / "x").exists()


# ------------------------------------------------------------------- 5: damaged run folders, interrupts
@pytest.fixture()
def fake_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    pd.DataFrame({"method": ["random"], "coeff": [0.0]}).to_parquet(run / "rows.parquet")
    pd.DataFrame({"idx": [0], "labels": [["Value/x"]]}).to_parquet(run / "dilemmas.parquet")
    (run / "status.json").write_text(json.dumps({"random": {"status": "ok"}}))
    return run


@pytest.mark.parametrize("damage, command, needle", [
    ("truncate rows", "tables", "rows.parquet' could not be read (ArrowInvalid"),
    ("truncate rows", "summary", "rows.parquet' could not be read (ArrowInvalid"),
    ("no dilemmas", "tables", "is not a finished run folder (no dilemmas.parquet)"),
    ("no dilemmas", "summary", "is not a finished run folder (no dilemmas.parquet)"),
    ("bad status", "tables", "status.json' could not be read (JSONDecodeError"),
    ("missing folder", "summary", "does not exist"),
    ("missing folder", "tables", "does not exist"),
])
def test_damaged_run_folder_is_one_line(capsys, fake_run, damage, command, needle):
    import shutil

    if damage == "truncate rows":
        data = (fake_run / "rows.parquet").read_bytes()
        (fake_run / "rows.parquet").write_bytes(data[: len(data) // 2])
    elif damage == "no dilemmas":
        (fake_run / "dilemmas.parquet").unlink()
    elif damage == "bad status":
        (fake_run / "status.json").write_text('{"random": ')
    else:
        shutil.rmtree(fake_run)
    code, out = run_cli(capsys, command, fake_run)
    assert code == 2 and needle in one_error_line(out.err)


def test_cache_folder_replaced_by_a_file_is_one_line(capsys, tmp_path, tiny_model_dir, small_data_dir):
    cache = tmp_path / model_slug(str(tiny_model_dir)) / "cache"
    cache.mkdir(parents=True)
    (cache / "eval").write_text("not a folder")
    code, out = run_cli(capsys, "run", "--model", tiny_model_dir, "--data-dir", small_data_dir, "--results-dir", tmp_path,
                        "--n-dilemmas", "2", "--n-pairs", "4", "--dtype", "fp32", "--device", "cpu",
                        "--methods", "prompting", "--run-name", "x")
    assert code == 2 and "cache/eval' is a file, not a cache folder" in one_error_line(out.err)
    assert not (cache / "artifacts").exists() and not (cache.parent / "x").exists()


def test_keyboard_interrupt_is_one_line_and_exit_130(capsys, tmp_path, tiny_model_dir, small_data_dir, monkeypatch):
    from bench.running.runner import Runner

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(Runner, "run", interrupted)
    code, out = run_cli(capsys, "run", "--model", tiny_model_dir, "--data-dir", small_data_dir, "--results-dir", tmp_path,
                        "--methods", "prompting", "--run-name", "x")
    assert code == 130
    assert out.err.strip().splitlines() == ["steerbench: interrupted; finished work is kept, rerun the same command to resume"]


# --------------------------------------------------------------------------- 6: cache keys
def test_cache_keys_carry_code_version_and_batch_size_and_calibration_is_never_stale(tiny_model_dir, small_data_dir, tmp_path, monkeypatch):
    import bench.store

    def run(**kw):
        from bench.config import RunConfig
        from bench.running.runner import Runner

        cfg = RunConfig(model=str(tiny_model_dir), methods=["prompting"], n_dilemmas=2, n_pairs=4,
                        data_dir=str(small_data_dir), results_dir=str(tmp_path), run_name="v", dtype="fp32",
                        device="cpu", min_pmass=0.0, strength="raw", **{"batch_size": 4, **kw})
        runner = Runner(cfg)
        runner.run()
        return runner.work

    cont_dir = tmp_path / model_slug(str(tiny_model_dir)) / "cache" / "continuations"
    assert run()["fits"] == 1 and len(list(cont_dir.glob("*.json"))) == 1
    assert run() == {"fits": 0, "evaluations": 0, "c0_evaluations": 0}  # nothing changed: all reused
    monkeypatch.setattr(bench.store, "CACHE_VERSION", bench.store.CACHE_VERSION + 1)
    bumped = run()
    assert bumped["fits"] == 1 and bumped["c0_evaluations"] == 1 and bumped["evaluations"] == 3
    assert len(list(cont_dir.glob("*.json"))) == 2  # continuations regenerated too
    # Calibration is not part of a fit (it is cached per evaluated magnitude beside it), and a skipped
    # calibration is never stored: a calibrated run after an uncalibrated one calibrates.
    status_file = tmp_path / model_slug(str(tiny_model_dir)) / "v" / "status.json"
    assert run(calibrate_sign=False)["fits"] == 0
    assert json.loads(status_file.read_text())["prompting"]["calibration"]["skipped"]
    run()
    assert "determined" in json.loads(status_file.read_text())["prompting"]["calibration"]
    other_batch = run(batch_size=2)
    assert other_batch["fits"] == 1 and other_batch["c0_evaluations"] == 1 and len(list(cont_dir.glob("*.json"))) == 3


# -------------------------------------------------------------------------- 7: corrupt artefacts
def test_corrupt_artefact_is_moved_aside_and_refitted(tiny_model_dir, small_data_dir, tmp_path, caplog):
    first = tiny_runner(tiny_model_dir, small_data_dir, tmp_path, methods=("random",), n_dilemmas=2, run_name="c",
                        calibrate_sign=False)
    run_dir = first.run()
    rows = pd.read_parquet(run_dir / "rows.parquet")
    artefacts = tmp_path / model_slug(str(tiny_model_dir)) / "cache" / "artifacts"
    (folder,) = [p for p in artefacts.glob("random-*") if "." not in p.name]
    data = (folder / "directions.safetensors").read_bytes()
    (folder / "directions.safetensors").write_bytes(data[:20])
    again = tiny_runner(tiny_model_dir, small_data_dir, tmp_path, methods=("random",), n_dilemmas=2, run_name="c",
                        calibrate_sign=False)
    with caplog.at_level(logging.WARNING):
        again.run()
    status = json.loads((run_dir / "status.json").read_text())
    assert status["random"]["status"] == "ok" and again.work["fits"] == 1
    assert (artefacts / f"{folder.name}.corrupt-1").is_dir() and folder.is_dir()
    assert f"moved to {folder.name}.corrupt-1, refitting" in caplog.text
    pd.testing.assert_frame_equal(pd.read_parquet(run_dir / "rows.parquet"), rows)


@pytest.mark.parametrize("damage", ["{\"suffixes\": [", '{"suffixes": [], "honest": [], "dishonest": []}'])
def test_damaged_continuations_are_moved_aside_and_regenerated(tiny, tmp_path, caplog, damage):
    from bench.api.continuations import pair_continuations
    from bench.api.pairs import make_pairs

    pairs = make_pairs(tiny.tokenizer, n_pairs=2)
    first = pair_continuations(tiny, pairs, tmp_path, n=None, max_new_tokens=2)
    (path,) = tmp_path.glob("continuations-*.json")
    path.write_text(damage)  # truncated, or the empty lists a --batch-size -1 run used to cache
    with caplog.at_level(logging.WARNING):
        again = pair_continuations(tiny, pairs, tmp_path, n=None, max_new_tokens=2)
    assert again == first and path.with_name(path.name + ".corrupt").is_file()
    assert "moved to" in caplog.text


def test_failed_move_aside_is_an_error_not_a_log_line(tmp_path, monkeypatch, caplog):
    import bench.store

    folder = tmp_path / "m-123"
    folder.mkdir()
    (folder / "meta.json").write_text("{trunc")

    def no_rename(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(bench.store.os, "rename", no_rename)
    with caplog.at_level(logging.INFO), pytest.raises(SteerbenchError, match="could not be moved aside"):
        bench.store.load_artefact(folder, lambda f: None)
    assert "moved to" not in caplog.text and folder.is_dir()


def test_failed_move_of_a_corrupt_chunk_is_not_logged_as_moved(tmp_path, monkeypatch, caplog):
    import bench.store

    chunk = tmp_path / "chunk.parquet"
    chunk.write_bytes(b"truncated")

    def no_replace(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(bench.store.os, "replace", no_replace)
    with caplog.at_level(logging.INFO), pytest.raises(SteerbenchError, match="nor moved aside"):
        bench.store.read_cached_frame(chunk)
    assert "moved to" not in caplog.text


# -------------------------------------------------------------------- 8: concurrent status writers
def _write_status_many(run_dir: str, n: int) -> None:
    import time

    from bench.running.work_log import write_status

    for i in range(n):
        write_status(Path(run_dir), {"random": {"status": "ok"}},
                     {"forward_passes": 1, "computed": {"fits": 1}, "wall_seconds": 1.0}, time.time() + i)


def test_status_work_records_of_concurrent_runs_are_merged(tmp_path):
    import multiprocessing

    from bench.running.work_log import write_status

    (tmp_path / "status.json").write_text(json.dumps({"_run": {"forward_passes": 5, "computed": {"fits": 2},
                                                               "wall_seconds": 3.0}}))  # an older format record
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_write_status_many, args=(str(tmp_path), 10)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    status = json.loads((tmp_path / "status.json").read_text())
    assert len(status["_run"]["processes"]) == 1 + 2 * 10  # nobody's record was lost
    assert status["_run"]["forward_passes"] == 5 + 20 and status["_run"]["computed"] == {"fits": 22}
    assert status["random"] == {"status": "ok"}
    merged = write_status(tmp_path, {"random": {"status": "failed"}}, {"forward_passes": 0, "computed": {}}, 0.0)
    assert merged["random"]["status"] == "failed" and len(merged["_run"]["processes"]) == 22


# ------------------------------------------------------------------------------ 9: --methods twice
def test_methods_listed_twice_run_once_and_help_says_so(capsys):
    from methods import parse_method_list

    assert parse_method_list("random,random") == ["random"]
    assert parse_method_list("repeng, random,repeng") == ["repeng", "random"]
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "listed twice runs once" in " ".join(capsys.readouterr().out.split())
