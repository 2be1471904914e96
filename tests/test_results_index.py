"""results/README.md is generated from the committed runs and must match them (rerun
``python -m bench.results.index`` after committing a run)."""

from bench.results.index import RESULTS, command, render


def test_results_readme_matches_the_committed_runs():
    assert (RESULTS / "README.md").read_text() == render(), "results/README.md is stale: python -m bench.results.index"


def test_the_command_is_rebuilt_from_the_config():
    from methods import method_names

    config = {"model": "gemma3-270m", "methods": method_names(), "kl_budget": 0.03, "coeffs": [-2.0, 0.0, 2.0],
              "prefix_cache": False, "results_dir": "/tmp/x", "method_options": {"repeng": {"layers": "5-9"}}}
    assert command(config, "kl") == ("steerbench run --model gemma3-270m --coeffs=-2,0,2 --no-prefix-cache "
                                     "--kl-budget 0.03 --repeng.layers 5-9 --tuned none --run-name kl")
    tuned = {"repeng": {"candidate": "builtin", "options": {}}, "lora": {"untuned": True}}
    assert "--tuned none" not in command({**config, "tuned": "auto", "tuned_defaults": tuned}, "kl")
    assert command({**config, "methods": ["repeng"]}, "r").startswith("steerbench run --model gemma3-270m --methods repeng ")
