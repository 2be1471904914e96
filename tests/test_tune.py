"""bench.tune: candidates are fitted, scaled to the KL budget and judged without DailyDilemmas prompts."""

import pytest


def test_tune_reports_every_candidate(tiny_model_dir, small_data_dir, tmp_path, capsys, monkeypatch):
    import bench.evaluations
    import bench.evaluator
    from bench.tune import main

    # choosing defaults must never score a DailyDilemmas prompt
    for module in (bench.evaluator, bench.evaluations):
        monkeypatch.setattr(module, "dilemma_prompts", lambda *a, **k: pytest.fail("rendered a dilemma"))
    main(["--method", "repeng", "--grid", "layers=0", "layers=1", "--model", str(tiny_model_dir),
          "--data-dir", str(small_data_dir), "--kl-budget", "0.01", "--results-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "layers=0" in out and "layers=1" in out and "format kept" in out
    assert out.count("| layers=") == 2
