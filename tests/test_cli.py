import json
import shutil

import pandas as pd
import pytest

from bench.cli import main
from bench.config import parse_coeffs, parse_method_args
from bench.errors import SteerbenchError
from tests.helpers import tiny_runner


def run_cli(capsys, *args):
    code = main(list(args))
    return code, capsys.readouterr()


def one_error_line(err: str) -> str:
    lines = [l for l in err.strip().splitlines() if l.startswith("steerbench: error:")]
    assert len(lines) == 1, err
    return lines[0]


def test_list_shows_every_method(capsys):
    code, out = run_cli(capsys, "list")
    assert code == 0 and all(m in out.out for m in ("prompting", "random", "repeng"))


@pytest.mark.parametrize("args, needle", [
    (["--methods", "repeng,bogus"], "unknown method 'bogus'"),
    (["--coeffs=-1,1"], "must include 0"),
    (["--coeffs=-1,0,x"], "'x' is not a number"),
    (["--coeffs", "0,1,1"], "listed twice"),
    (["--repeng.nonsense", "3"], "unknown option repeng.nonsense"),
    (["--repeng.batch-size", "big"], "repeng.batch-size expects int"),
    (["--model", "no-such-org/no-such-model-xyz"], "could not load model 'no-such-org/no-such-model-xyz'"),
    (["--seeds", "0"], "--seeds 0 is not a number of training seeds"),
    (["--n-dilemmas", "0"], "n_dilemmas must be a positive integer, got 0"),
])
def test_bad_input_is_one_clear_line(capsys, tmp_path, small_data_dir, args, needle):
    code, out = run_cli(capsys, "run", "--data-dir", str(small_data_dir), "--results-dir", str(tmp_path), *args)
    assert code == 2
    assert needle in one_error_line(out.err)


def test_data_dir_missing_a_file(capsys, tmp_path, small_data_dir, tiny_model_dir):
    broken = tmp_path / "dd"
    shutil.copytree(small_data_dir, broken)
    (broken / "values.csv").unlink()
    code, out = run_cli(capsys, "run", "--model", str(tiny_model_dir), "--data-dir", str(broken),
                        "--results-dir", str(tmp_path / "r"))
    assert code == 2 and "missing values.csv" in one_error_line(out.err)


def test_method_option_parsing():
    assert parse_method_args(["--repeng.layers", "-3", "--x.rank=8", "--x.rotate-u", "--x.no-scale"]) == {
        "repeng": {"layers": "-3"}, "x": {"rank": "8", "rotate-u": "true", "scale": "false"}}
    assert parse_coeffs("1,0,-1") == [-1.0, 0.0, 1.0]
    with pytest.raises(SteerbenchError):
        parse_coeffs("nan,0")


def test_end_to_end_run_and_zero_work_rerun(tiny_model_dir, small_data_dir, tmp_path, capsys):
    first = tiny_runner(tiny_model_dir, small_data_dir, tmp_path, run_name="e2e")
    run_dir = first.run()
    assert first.forward_passes > 0
    rows = pd.read_parquet(run_dir / "rows.parquet")
    n_rows = 12  # 6 dilemmas x 2 actions
    assert set(rows["method"]) == {"prompting", "random", "repeng"}
    assert len(rows) == 3 * 3 * n_rows
    assert rows[rows["coeff"] == 0]["shared_c0"].all()
    # c=0 is one shared evaluation: identical rows for every method
    c0 = rows[rows["coeff"] == 0].pivot(index="idx", columns="method", values="logratio")
    assert (c0.nunique(axis=1) == 1).all()
    summary = (run_dir / "summary.md").read_text()
    assert all(m in summary for m in ("prompting", "random", "repeng")) and "Virtue/Truthfulness" in summary
    for f in ("config.json", "environment.json", "status.json", "dilemmas.parquet", "summary.csv"):
        assert (run_dir / f).is_file()
    env = json.loads((run_dir / "environment.json").read_text())
    assert env["packages"]["repeng"] == "0.4.0" and env["model"]["dtype"] == "torch.float32"

    again = tiny_runner(tiny_model_dir, small_data_dir, tmp_path, run_name="e2e")
    again.run()
    assert again.forward_passes == 0
    pd.testing.assert_frame_equal(pd.read_parquet(run_dir / "rows.parquet"), rows)


def test_failed_method_is_listed_not_hidden(tiny_model_dir, small_data_dir, tmp_path, monkeypatch):
    from methods.repeng_pca import RepengPCA

    def boom(self, ctx):
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(RepengPCA, "fit", boom)
    runner = tiny_runner(tiny_model_dir, small_data_dir, tmp_path, methods=("prompting", "repeng"), run_name="f")
    run_dir = runner.run()
    summary = (run_dir / "summary.md").read_text()
    assert "FAILED: RuntimeError: simulated failure" in summary
    assert json.loads((run_dir / "status.json").read_text())["repeng"]["status"] == "failed"
    assert "in boom" in (run_dir / "repeng.error.txt").read_text()  # the traceback, kept beside the run


def test_remote_code_is_off_unless_asked(tiny_model_dir, monkeypatch):
    """Model code from the hub never runs by default: trust_remote_code reaches from_pretrained as False."""
    import transformers

    from bench.model.loading import load_model

    seen = []
    real = transformers.AutoModelForCausalLM.from_pretrained

    def spy(*args, **kwargs):
        seen.append(kwargs.get("trust_remote_code"))
        return real(*args, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", spy)
    monkeypatch.setattr("bench.model.loading.AutoModelForCausalLM.from_pretrained", spy, raising=False)
    load_model(str(tiny_model_dir), dtype="fp32", device="cpu")
    assert seen == [False]


def test_run_options_are_declared_once_in_the_config_and_reach_it(monkeypatch):
    import dataclasses

    from bench.cli import _parser, config_from_args
    from bench.config import RunConfig

    monkeypatch.delenv("STEERBENCH_DATA_DIR", raising=False)
    args, extra = _parser().parse_known_args(["run"])
    assert config_from_args(args, extra) == RunConfig()  # the command line's defaults are the config's
    args, extra = _parser().parse_known_args(
        ["run", "--seeds", "3", "--no-prefix-cache", "--no-sign-calibration", "--n-dilemmas", "7", "--strength", "raw",
         "--methods", "repeng,random", "--coeffs", "0,2", "--kl-budget", "0.2", "--repeng.layers", "3"])
    cfg = config_from_args(args, extra)
    assert (cfg.n_seeds, cfg.prefix_cache, cfg.calibrate_sign, cfg.n_dilemmas, cfg.strength) == (3, False, False, 7, "raw")
    assert cfg.methods == ["repeng", "random"] and cfg.coeffs == [0.0, 2.0] and cfg.kl_budget == 0.2
    assert cfg.method_options == {"repeng": {"layers": "3"}}
    assert all(f.metadata.get("help") for f in dataclasses.fields(RunConfig) if f.name != "method_options")
