"""--seeds N: seeded (trained) methods are refit per training seed; tables show mean and sd over seeds."""

import json

import numpy as np
import pandas as pd

from bench.results.report import load_run, method_table
from bench.results.stats import analyse
from bench.results.tables import build_tables
from tests.helpers import tiny_runner


def test_seeded_methods_are_refit_per_seed_and_tables_show_spread(tiny_model_dir, small_data_dir, tmp_path):
    runner = tiny_runner(tiny_model_dir, small_data_dir, tmp_path, methods=("random", "repeng"), run_name="s",
                         n_seeds=3)
    run_dir = runner.run()
    rows = pd.read_parquet(run_dir / "rows.parquet")
    assert sorted(rows[rows["method"] == "random"]["seed"].unique()) == [0, 1, 2]
    assert sorted(rows[rows["method"] == "repeng"]["seed"].unique()) == [0]  # deterministic: fit once
    assert runner.work["fits"] == 3 + 1
    status = json.loads((run_dir / "status.json").read_text())
    assert len({v["artefact"] for v in status["random"]["seeds"].values()}) == 3
    # different seeds give different random directions, hence different rows
    steered = rows[(rows["method"] == "random") & (rows["coeff"] == 1)].pivot(index="idx", columns="seed",
                                                                              values="logratio")
    assert not np.allclose(steered[0], steered[1])

    rows, dilemmas, status = load_run(run_dir)
    table, stats = method_table(rows, dilemmas, status, "Virtue/Truthfulness", 0.0)
    table = table.set_index("method")
    # each seed's Effect on the common dilemmas (valid at every coefficient of every seed), recomputed here
    random_stats = stats["random"]
    common = random_stats.per_dilemma.index
    per_seed = [analyse(rows[(rows["method"] == "random") & (rows["seed"] == s)
                             & rows["dilemma_idx"].isin(common)], dilemmas, "Virtue/Truthfulness", 0.0).effect
                for s in (0, 1, 2)]
    assert table.loc["random", "n_seeds"] == 3 and table.loc["repeng", "n_seeds"] == 1
    assert np.isclose(table.loc["random", "effect"], np.mean(per_seed))
    assert np.isclose(table.loc["random", "effect_sd"], np.std(per_seed, ddof=1))
    assert "Seeds" in (run_dir / "summary.md").read_text()
    main = (build_tables(run_dir, "Virtue/Truthfulness") / "main.md").read_text()
    assert "Effect sd (seeds)" in main and "Seeds" in main


def test_single_seed_tables_have_no_seed_columns(tiny_model_dir, small_data_dir, tmp_path):
    run_dir = tiny_runner(tiny_model_dir, small_data_dir, tmp_path, methods=("random",), run_name="one").run()
    assert "Seeds" not in (run_dir / "summary.md").read_text()
