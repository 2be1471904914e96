import numpy as np
import pandas as pd
import pytest

from bench.stats import bootstrap_effect_ci
from bench.tables import coefficient_table, latex_escape, to_latex, value_effects
from tests.helpers import tiny_runner


def test_bootstrap_ci_is_seeded_and_has_the_expected_width():
    rng = np.random.default_rng(0)
    n = 400
    frame = pd.DataFrame({"dilemma_idx": np.tile(np.arange(n), 2), "coeff": np.repeat([-1.0, 1.0], n),
                          "score": np.concatenate([rng.normal(0, 1, n), rng.normal(0.5, 1, n)])})
    lo, hi = bootstrap_effect_ci(frame, -1.0, 1.0, seed=1)
    assert (lo, hi) == bootstrap_effect_ci(frame, -1.0, 1.0, seed=1)
    assert lo < 0.5 < hi
    se = np.sqrt(2 / n)  # independent unit-variance scores at each end
    assert 0.8 * 2 * 1.96 * se < hi - lo < 1.2 * 2 * 1.96 * se


def test_side_effects_column_is_mean_abs_change_over_non_target_values():
    scores = pd.DataFrame([
        # method, value, coeff, dilemma, score: target T moves, A moves by 2, B moves by 4
        *[("m", "T", c, d, c) for c in (-1.0, 0.0, 1.0) for d in range(10)],
        *[("m", "A", c, d, 2 * c) for c in (-1.0, 0.0, 1.0) for d in range(10)],
        *[("m", "B", c, d, -4 * c) for c in (-1.0, 0.0, 1.0) for d in range(10)],
    ], columns=["method", "value", "coeff", "dilemma_idx", "score"])
    effects = value_effects(scores, [-1.0, 0.0, 1.0])
    table = coefficient_table(effects, "m", "T", [-1.0, 0.0, 1.0])
    side = table.set_index("coeff")["side effects (mean |change|, non-target)"]
    assert side.tolist() == [3.0, 0.0, 3.0]
    assert list(table.columns[1:4]) == ["T", "B", "A"]  # target first, then by |Effect|


def test_latex_is_escaped_and_balanced():
    frame = pd.DataFrame({"Method": ["svd_steer"], "NaN %": ["5%"], "x": ["{a}"]})
    tex = to_latex(frame, {(0, "Method")})
    assert r"svd\_steer" in tex and r"NaN \%" in tex and r"5\%" in tex and r"\{a\}" in tex
    assert tex.count("{") - tex.count(r"\{") == tex.count("}") - tex.count(r"\}")
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"\textbf{svd\_steer}" in tex
    assert latex_escape("a_b&c") == r"a\_b\&c"


def test_tables_and_plots_from_a_run_without_a_model(tiny_model_dir, small_data_dir, tmp_path, monkeypatch):
    run_dir = tiny_runner(tiny_model_dir, small_data_dir, tmp_path, methods=("random", "repeng"), run_name="t").run()
    import bench.models

    monkeypatch.setattr(bench.models, "load_model", lambda *a, **k: pytest.fail("tables must not load a model"))
    import matplotlib.pyplot as plt

    from bench import plots
    seen = []
    monkeypatch.setattr(plots, "_save", lambda fig, folder, name: (seen.append(
        (name, [ax.get_xlabel() for ax in fig.axes], [ax.get_ylabel() for ax in fig.axes])), plt.close(fig)))
    from bench.tables import build_tables

    folder = build_tables(run_dir, "Virtue/Truthfulness")
    for name in ("main", "frameworks", "coefficients_random", "coefficients_repeng"):
        for ext in ("md", "tex", "csv"):
            assert (folder / f"{name}.{ext}").is_file()
    labels = {name: (x, y) for name, x, y in seen}
    assert labels["score_vs_coeff"] == (["steering coefficient c"], ["Virtue/Truthfulness score (log-odds)"])
    assert labels["effect_vs_dnll"][0][0].startswith("dNLL")
    assert "effect_vs_kl" not in labels  # raw run: no KL to plot
    assert "95% CI" in (folder / "main.md").read_text()


def test_ablation_table_picks_the_differing_options(tiny_model_dir, small_data_dir, tmp_path):
    from bench.tables import cross_run_tables

    runs = []
    for layers in ("0", "1"):
        runner = tiny_runner(tiny_model_dir, small_data_dir, tmp_path, methods=("repeng",), run_name=f"L{layers}",
                             method_options={"repeng": {"layers": layers}})
        runs.append(runner.run())
    out = cross_run_tables(runs, "Virtue/Truthfulness", tmp_path / "cross")
    ablation = pd.read_csv(out / "ablation_repeng.csv")
    assert list(ablation.columns[:1]) == ["layers"] and sorted(ablation["layers"].astype(str)) == ["0", "1"]
    assert "method" not in ablation.columns and (out / "cross_models.tex").is_file()
