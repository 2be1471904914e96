"""The fair protocol's tuning: the committed grid gives every tuned method the same K candidates with reasons;
bad grids fail in one line; the selection rule is the stated one; a tune scores dev dilemmas only, resumes
from its cache, and writes the tuned defaults that a bench run then loads (explicit options still win)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import bench.running.tuned_defaults
import bench.running.tuning
from bench.errors import SteerbenchError
from bench.evaluation.split import dilemma_split
from bench.running.tuning import load_grid, select
from tests.helpers import tiny_runner
from tests.test_split import TARGET, rendered_dilemmas

BUILT_IN = ("prompting", "random", "repeng", "innerpissa", "antipasto", "svd-steer", "lora", "sft")


def test_the_committed_grid_gives_every_method_the_same_k_with_reasons():
    from methods import method_names

    grid = load_grid()
    sizes = {m: len(c) for m, c in grid.candidates.items()}
    assert len(set(sizes.values())) == 1 and min(sizes.values()) >= 6, sizes
    # every built-in method has an entry; a new registry line needs none (untuned, no grid: test_untuned.py)
    assert set(grid.candidates) | set(grid.followers) == set(BUILT_IN) and set(BUILT_IN) <= set(method_names())
    assert grid.followers == {"random": ("repeng", "layers")}
    assert all(c.reason for cands in grid.candidates.values() for c in cands)
    assert grid.k_for("smollm2-135m") == 6 and grid.k_for("gemma3-270m") == 3
    assert "within one dev standard error" in grid.selection


@pytest.mark.parametrize("edit, message", [
    (lambda g: g["methods"]["repeng"].pop(), "the same number of candidates"),
    (lambda g: g["methods"]["repeng"][0].update(options={"layerz": "1"}), "unknown option repeng.layerz"),
    (lambda g: g["methods"]["repeng"][1].update(reason=""), "needs an id and a reason"),
    (lambda g: g["methods"]["repeng"][1].update(id="builtin"), "appears twice"),
    (lambda g: g["methods"].update(nosuch=[]), "unknown method 'nosuch'"),
    (lambda g: g["k"].update(default=99), "k needs a 'default'"),
])
def test_a_bad_grid_fails_in_one_line(tmp_path, edit, message):
    raw = json.loads(bench.running.tuning.GRID_FILE.read_text())
    edit(raw)
    path = tmp_path / "grid.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(SteerbenchError, match=message):
        load_grid(path)


def test_the_selection_rule():
    t = pd.DataFrame([
        # method, effect, se, retention, n_common, dnll, fit seconds
        ("a", 0.10, 0.02, 0.90, 100, 0.1, 100.0),  # best
        ("a", 0.09, 0.02, 0.95, 100, 0.1, 10.0),  # within one SE and cheaper: chosen
        ("a", 0.50, 0.02, 0.50, 100, 0.1, 1.0),  # out of range (retention)
        ("a", 0.40, 0.02, 0.95, 100, 0.9, 1.0),  # out of range (dNLL above the bound)
        ("b", 0.30, 0.01, 0.70, 100, 0.1, 1.0),  # b: nothing in range
    ], columns=["method", "effect", "se", "retention", "n_common", "dnll", "fit_seconds"])
    out = select(t, dnll_bound=0.5)
    assert out["chosen"].tolist() == [False, True, False, False, False]
    assert out["in_range"].tolist() == [True, True, False, False, False]


def tiny_grid(tmp_path):
    raw = {"about": "test", "selection": "highest dev Effect in range; within one SE, cheapest", "dnll_bound": 10.0,
           "k": {"default": 2},
           "methods": {"repeng": [{"id": "l0", "options": {"layers": "0"}, "reason": "first layer"},
                                  {"id": "l1", "options": {"layers": "1"}, "reason": "second layer"}],
                       "prompting": [{"id": "builtin", "options": {}, "reason": "built-in"},
                                     {"id": "short", "options": {"honest": "Be honest.", "dishonest": "Lie."},
                                      "reason": "short"}],
                       "random": {"follows": "repeng", "option": "layers", "reason": "noise floor"}}}
    path = tmp_path / "grid.json"
    path.write_text(json.dumps(raw))
    return load_grid(path)


def test_a_tune_sees_only_dev_dilemmas_resumes_and_its_choice_is_loaded(tiny_model_dir, dilemmas_dir, full_split,
                                                                        tmp_path, monkeypatch):
    monkeypatch.setattr(bench.running.tuned_defaults, "TUNED_DIR", tmp_path / "tuned")
    seen = rendered_dilemmas(monkeypatch)
    grid = tiny_grid(tmp_path)
    results = tmp_path / "results"
    runner = tiny_runner(tiny_model_dir, dilemmas_dir, results, methods=("repeng", "prompting", "random"),
                         n_dilemmas=8, min_pmass=0.0)
    table, tuned_file = bench.running.tuning.tune(runner.cfg, grid)
    assert seen and set(full_split[sorted(seen)]) == {"dev"}  # the tuner never rendered a test dilemma
    assert sorted(table["candidate"]) == ["builtin", "l0", "l1", "short"]
    assert table.groupby("method")["chosen"].sum().le(1).all()
    folder = results / tiny_model_dir.name / "tuning"
    assert (folder / "tuning.csv").is_file() and "Selection rule" in (folder / "tuning.md").read_text()
    tuned = json.loads(tuned_file.read_text())
    assert tuned["grid_sha"] == grid.sha and set(tuned["methods"]) == {"repeng", "prompting", "random"}
    assert tuned["methods"]["random"]["candidate"] == "follows repeng"

    again = tiny_runner(tiny_model_dir, dilemmas_dir, results, methods=("repeng", "prompting"), n_dilemmas=8,
                        min_pmass=0.0)
    from bench.running.artefacts import ArtefactStore

    monkeypatch.setattr(ArtefactStore, "_fit_into", lambda *a, **k: pytest.fail("refitted"))
    resumed, _ = bench.running.tuning.tune(again.cfg, grid)  # a resumed tune: every candidate's fit comes from the cache
    pd.testing.assert_frame_equal(resumed.drop(columns="fit_seconds"), table.drop(columns="fit_seconds"))
    monkeypatch.undo()
    monkeypatch.setattr(bench.running.tuned_defaults, "TUNED_DIR", tmp_path / "tuned")

    # A bench run loads the tuned options, records them, and an explicit option still wins.
    chosen = tuned["methods"]["repeng"]
    bench_run = tiny_runner(tiny_model_dir, dilemmas_dir, tmp_path / "b", methods=("repeng",), tuned=str(tuned_file),
                            method_options={"prompting": {}})
    if chosen["candidate"]:
        assert bench_run.options["repeng"].layers == chosen["options"]["layers"]
        assert bench_run.tuning["repeng"]["candidate"] == chosen["candidate"]
    explicit = tiny_runner(tiny_model_dir, dilemmas_dir, tmp_path / "c", methods=("repeng",), tuned=str(tuned_file),
                           method_options={"repeng": {"layers": "all"}})
    assert explicit.options["repeng"].layers == "all"


def test_a_run_without_tuned_defaults_says_untuned(tiny_model_dir, small_data_dir, tmp_path):
    from bench.results.report import load_run, method_table

    runner = tiny_runner(tiny_model_dir, small_data_dir, tmp_path, methods=("prompting",), tuned="none")
    run_dir = runner.run()
    rows, dilemmas, status = load_run(run_dir)
    assert status["prompting"]["tuning"] == {"untuned": True}
    table, _ = method_table(rows, dilemmas, status, TARGET, 0.0)
    assert "untuned (built-in defaults)" in table["note"].iloc[0]
    with pytest.raises(SteerbenchError, match="--tuned 'nofile.json' is not a file"):
        tiny_runner(tiny_model_dir, small_data_dir, tmp_path, methods=("prompting",), tuned="nofile.json")


@pytest.fixture(scope="module")
def full_split(dilemmas_dir):
    from bench.evaluation.dilemmas import load_dilemmas

    return dilemma_split(load_dilemmas(dilemmas_dir), TARGET)


def test_the_tune_command_rejects_a_bad_grid_before_any_work(tmp_path, capsys):
    from bench.cli import main

    bad = tmp_path / "grid.json"
    bad.write_text("{not json")
    assert main(["tune", "--grid", str(bad), "--results-dir", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"steerbench: error: tuning grid {bad} cannot be read")
    assert not (tmp_path / "r").exists()


def test_a_method_with_no_candidate_in_range_is_marked_tuned_not_untuned(tmp_path):
    from bench.config import RunConfig

    tuned_file = tmp_path / "m.json"
    tuned_file.write_text(json.dumps({"grid_sha": "abc", "methods": {
        "innerpissa": {"candidate": None, "options": {}, "note": "no candidate in range on dev: built-in defaults"},
        "repeng": {"candidate": "middle", "options": {"layers": "0.4:0.7"}}}}))
    cfg = RunConfig(methods=["innerpissa", "repeng", "lora"], tuned=str(tuned_file))
    points = bench.running.tuned_defaults.starting_points(cfg)
    assert points["innerpissa"]["none_in_range"] and points["innerpissa"]["options"] == {}
    assert "untuned" not in points["innerpissa"]
    assert points["repeng"]["candidate"] == "middle" and points["lora"] == {"untuned": True}
