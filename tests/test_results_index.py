"""results/README.md is generated from the committed runs and must match them (rerun
``python -m bench.results.index`` after committing a run)."""

from bench.results.index import RESULTS, command, render


def test_results_readme_matches_the_committed_runs():
    assert (RESULTS / "README.md").read_text() == render(), "results/README.md is stale: python -m bench.results.index"


def test_the_command_is_rebuilt_from_the_config():
    from methods import method_names

    config = {"model": "gemma3-270m", "methods": method_names(), "kl_budget": 0.03, "coeffs": [-2.0, 0.0, 2.0],
              "prefix_cache": False, "results_dir": "/tmp/x", "method_options": {"repeng": {"layers": "5-9"}},
              "split": "test"}
    assert command(config, "kl") == ("steerbench run --model gemma3-270m --coeffs=-2,0,2 --no-prefix-cache "
                                     "--kl-budget 0.03 --repeng.layers 5-9 --tuned none --run-name kl")
    tuned = {"repeng": {"candidate": "builtin", "options": {}}, "lora": {"untuned": True}}
    assert "--tuned none" not in command({**config, "tuned": "auto", "tuned_defaults": tuned}, "kl")
    assert command({**config, "methods": ["repeng"]}, "r").startswith("steerbench run --model gemma3-270m --methods repeng ")
    pre_split = {k: v for k, v in config.items() if k != "split"}  # recorded before the dev/test split existed
    assert "--no-prefix-cache --split all --kl-budget" in command(pre_split, "kl")
    assert "--overwrite" not in command({**config, "overwrite": True, "cache_dir": "/c"}, "kl")


# ------------------------------------------------------------- each printed command makes its run's config
def reparse(command_line: str):
    """The RunConfig that ``steerbench run ...`` builds from this command line (the CLI's own parser)."""
    import shlex

    from bench.cli import _parser, config_from_args

    words = shlex.split(command_line)
    assert words[:2] == ["steerbench", "run"], command_line
    args, extra = _parser().parse_known_args(words[1:])
    return config_from_args(args, extra)


# a run made before the dev/test split scored every target dilemma; one made before frontiers, one KL budget
BEFORE_RECORDED = {"split": "all", "kl_budgets": []}


def expected_config(run_dir) -> dict:
    """The run's recorded config as a command must rebuild it: options recorded only later take the value that
    did what the run did (stated here, not imported from the generator, so that the check is independent of it);
    a run on built-in options under --tuned auto is --tuned none today."""
    import json

    config = {**BEFORE_RECORDED, **json.loads((run_dir / "config.json").read_text())}
    tuned = (config.get("tuned_defaults") or {}).values()
    if config.get("tuned", "auto") == "auto" and all(t.get("untuned") for t in tuned):
        config["tuned"] = "none"
    return config


def mismatches(command_line: str, run_dir) -> list[str]:
    import dataclasses

    from bench.results.index import NOT_FLAGS

    parsed, recorded = dataclasses.asdict(reparse(command_line)), expected_config(run_dir)
    out = [f"{k}: command gives {parsed[k]!r}, the run recorded {recorded.get(k, '<absent>')!r}"
           for k in parsed if k not in NOT_FLAGS and parsed[k] != recorded.get(k, parsed[k])]
    if parsed["method_options"] != recorded.get("method_options", {}):
        out.append(f"method options: {parsed['method_options']} vs {recorded.get('method_options')}")
    if parsed["run_name"] != run_dir.name:
        out.append(f"run name {parsed['run_name']} vs folder {run_dir.name}")
    return out


def committed_runs():
    from bench.results.index import committed

    return [p.parent for p in committed(RESULTS, "*/*/rows.parquet")]


def test_every_printed_command_parses_back_to_its_runs_recorded_config():
    import re

    text = (RESULTS / "README.md").read_text()
    runs = committed_runs()
    assert len(runs) >= 10
    for run_dir in runs:
        rel = f"{run_dir.parent.name}/{run_dir.name}"
        block = re.search(rf"### `{re.escape(rel)}`\n\n```bash\n(.*?)\n```", text)
        assert block, f"results/README.md has no command for {rel}"
        assert not mismatches(block.group(1), run_dir), f"{rel}: {mismatches(block.group(1), run_dir)}"


def test_a_stale_command_is_caught():
    """The check has teeth: a pre-split run's command without --split all, or with an option changed, fails."""
    runs = {f"{r.parent.name}/{r.name}": r for r in committed_runs()}
    v1 = runs["smollm2-135m/v1-all-dilemmas"]
    good = command(expected_config(v1), v1.name)
    assert "--split all" in good and not mismatches(good, v1)
    assert any(m.startswith("split:") for m in mismatches(good.replace(" --split all", ""), v1))
    assert any(m.startswith("kl_budget:") for m in mismatches(good + " --kl-budget 0.3", v1))
    assert mismatches(good.replace("--tuned none", "--tuned auto"), v1)
