"""``make perf``'s cost sections (``bench.tools.run_costs``) read a run's ``status.json`` as the runner's
``StatusBook`` writes it: the wall-time measure names how many fits the measured process computed, and every
training seed of a seeded method gets its own cost row (what one more seed costs)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from bench.running.sweep import StatusBook
from bench.tools.run_costs import run_cost_measures


def _run_folder(tmp_path: Path) -> Path:
    book = StatusBook(first_seed=lambda name: 0)
    for method, seeds in (("lora", (0, 1, 2)), ("repeng", (0,))):
        for seed in seeds:  # the two calls the runner makes per seed (runner._method_rows)
            fitted = SimpleNamespace(meta={"seed": seed, "fit_seconds": 10.0 + seed, "n_pairs": 200})
            book.record(method, fitted, meta=fitted.meta, fit_seconds=fitted.meta["fit_seconds"])
            book.record(method, fitted, seed_seconds={"fit or load": 10.0 + seed, "c*, sign, probe, scoring": 5.0})
    process = {"wall_seconds": 120.0, "computed": {"fits": 4}, "stage_seconds": {"fit": 33.0}, "peak_rss_mb": 900}
    status = {**book.methods, "_run": {"processes": {"vm:1": process}, "wall_seconds": 120.0}}
    (tmp_path / "status.json").write_text(json.dumps(status))
    return tmp_path


def test_the_wall_time_measure_says_how_many_fits_the_process_computed(tmp_path, capsys):
    (measure,) = run_cost_measures(_run_folder(tmp_path), None)
    assert measure.value == 2.0 and measure.passed
    assert "4 fits computed in it" in measure.label


def test_each_training_seed_of_a_seeded_method_gets_a_cost_row(tmp_path, capsys):
    run_cost_measures(_run_folder(tmp_path), None)
    per_seed = capsys.readouterr().out.split("6b.")[1].splitlines()
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in per_seed if line.startswith("| ")]
    assert [c[:3] for c in cells if c[0] == "lora"] == [["lora", "0", "10"], ["lora", "1", "11"], ["lora", "2", "12"]]
    assert [c[:2] for c in cells if c[0] == "repeng"] == [["repeng", "0"]]


def test_without_a_run_it_says_what_to_pass(capsys):
    assert run_cost_measures(None, None) == []
    assert "PERF_RUN=" in capsys.readouterr().out
