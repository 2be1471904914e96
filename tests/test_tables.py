import pandas as pd
import pytest

from bench.results.report import value_effects
from bench.results.tables import coefficient_table, latex_escape, to_latex
from tests.helpers import tiny_runner


def test_side_effects_column_is_mean_abs_change_over_non_target_values():
    scores = pd.DataFrame([
        # method, value, coeff, dilemma, score: target T moves, A moves by 2, B moves by 4
        *[("m", "T", c, d, c) for c in (-1.0, 0.0, 1.0) for d in range(10)],
        *[("m", "A", c, d, 2 * c) for c in (-1.0, 0.0, 1.0) for d in range(10)],
        *[("m", "B", c, d, -4 * c) for c in (-1.0, 0.0, 1.0) for d in range(10)],
    ], columns=["method", "value", "coeff", "dilemma_idx", "score"]).assign(seed=0)
    effects = value_effects(scores)
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
    import bench.model.loading

    monkeypatch.setattr(bench.model.loading, "load_model", lambda *a, **k: pytest.fail("tables must not load a model"))
    import matplotlib.pyplot as plt

    from bench.results import plots
    seen = []
    monkeypatch.setattr(plots, "save", lambda fig, folder, name: (seen.append(
        (name, [ax.get_xlabel() for ax in fig.axes], [ax.get_ylabel() for ax in fig.axes])), plt.close(fig)))
    from bench.results.tables import build_tables

    folder = build_tables(run_dir, "Virtue/Truthfulness")
    for name in ("main", "pairwise", "sensitivity", "frameworks", "coefficients_random", "coefficients_repeng"):
        for ext in ("md", "tex", "csv"):
            assert (folder / f"{name}.{ext}").is_file()
    labels = {name: (x, y) for name, x, y in seen}
    assert labels["score_vs_coeff"] == (["steering coefficient c"], ["Virtue/Truthfulness score (log-odds)"])
    assert labels["effect_vs_dnll"][0][0].startswith("dNLL")
    assert "effect_vs_kl" not in labels  # raw run: no KL to plot
    assert "95% CI" in (folder / "main.md").read_text()


def test_ablation_table_picks_the_differing_options(tiny_model_dir, small_data_dir, tmp_path):
    from bench.results.tables import cross_run_tables

    runs = []
    for layers in ("0", "1"):
        runner = tiny_runner(tiny_model_dir, small_data_dir, tmp_path, methods=("repeng",), run_name=f"L{layers}",
                             method_options={"repeng": {"layers": layers}})
        runs.append(runner.run())
    out = cross_run_tables(runs, "Virtue/Truthfulness", tmp_path / "cross")
    ablation = pd.read_csv(out / "ablation_repeng.csv")
    assert list(ablation.columns[:1]) == ["layers"] and sorted(ablation["layers"].astype(str)) == ["0", "1"]
    assert "method" not in ablation.columns and (out / "cross_models.tex").is_file()


def test_cross_model_tables_set_two_models_side_by_side(tiny_model_dir, tiny_gemma3_dir, small_data_dir, tmp_path):
    from bench.results.tables import cross_run_tables

    runs = [tiny_runner(folder, small_data_dir, tmp_path, methods=("prompting", "random", "repeng"),
                        run_name="default").run() for folder in (tiny_model_dir, tiny_gemma3_dir)]
    assert runs[0].name == runs[1].name  # same run name, two models: the model tells the column groups apart
    out = cross_run_tables(runs, "Virtue/Truthfulness", tmp_path / "cross")
    wide = pd.read_csv(out / "cross_models.csv")
    groups = {c.split(":")[0] for c in wide.columns if ":" in c}
    assert groups == {f"{tiny_model_dir.name} (raw)", f"{tiny_gemma3_dir.name} (raw)"}
    pairs = pd.read_csv(out / "cross_pairwise.csv")
    assert len(pairs) == 3 and set(pairs["Both models"]) <= {"agree", "disagree", "undecided"}
    agreement = pd.read_csv(out / "rank_agreement.csv")
    assert agreement["Methods"].iloc[0] == "with an Effect on both (3)" and agreement["Kendall tau [95% CI]"].iloc[0][0] in "+-"


def test_a_run_whose_answers_all_fail_the_pmass_filter_is_reported_out_of_range(tiny_model_dir, small_data_dir,
                                                                                  tmp_path):
    """The default NaN filter (min pmass 0.5) end to end: the tiny random model spreads its mass over the whole
    vocabulary, so no row is valid; the run must finish and say so instead of crashing or ranking noise."""
    from bench.results.tables import build_tables

    run_dir = tiny_runner(tiny_model_dir, small_data_dir, tmp_path, methods=("random", "repeng"), run_name="nan",
                          min_pmass=0.5).run()
    table = pd.read_csv(run_dir / "summary.csv")
    assert set(table["method"]) == {"random", "repeng"}
    assert (table["n_common"] == 0).all() and (~table["in_range"]).all()
    assert table["note"].str.contains("OUT OF RANGE").all()
    folder = build_tables(run_dir, "Virtue/Truthfulness")
    assert "**" not in (folder / "main.md").read_text()  # nothing bolded
    assert (folder / "pairwise.csv").is_file() and (folder / "sensitivity.csv").is_file()
    sens = pd.read_csv(folder / "sensitivity.csv")
    assert (sens["N common @0"].astype(int) > 0).all()  # at min pmass 0 every finite answer counts
