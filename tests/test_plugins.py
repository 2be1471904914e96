"""Out-of-tree plugins: one file anywhere, registered by one line (``@register_method``) and named on the command
line with ``--plugin`` (``module:Class`` or ``path/to/file.py:Class``); every mistake is one line, before any work."""

from __future__ import annotations

import json
import sys
import textwrap

import pandas as pd
import pytest

import methods
from bench.cli import _parser, config_from_args, main
from bench.errors import SteerbenchError
from bench.running.validate import validate_config
from tests.test_cli import one_error_line
from tests.test_conformance import fit_case, run_conformance

PLUGIN = '''
from dataclasses import dataclass
from pathlib import Path

from bench.api.residual import ResidualSteering, last_token_hidden_states
from bench.api.steering import FitContext, Steering, SteeringMethod, option
from bench.model.layers import resolve_layers
from methods import register_method


@register_method("tmp-vector")
class TmpVector(SteeringMethod):
    description = "mean hidden-state difference of the pairs (a plugin outside the repository)"
    seeded = False

    @dataclass
    class Options:
        layers: str = option("1-2", "layer spec")
        scale: float = option(1.0, "multiplies the direction")

        def validate(self) -> None:
            from bench.errors import positive

            positive("--tmp-vector.scale", self.scale)

    def fit(self, ctx: FitContext) -> Steering:
        layers = resolve_layers(self.options.layers, ctx.loaded.n_layers)
        texts = [t for p in ctx.pairs for t in (p.positive, p.negative)]
        hidden = last_token_hidden_states(ctx.loaded, texts, layers, ctx.batch_size)
        directions = {i: self.options.scale * (h[0::2] - h[1::2]).mean(0) for i, h in hidden.items()}
        return ResidualSteering(directions, ctx.loaded.model.config.model_type)

    def load(self, path: Path, ctx: FitContext) -> Steering:
        return ResidualSteering.load(path)


class NotAMethod:
    name = "not-a-method"
'''


@pytest.fixture()
def plugin_file(tmp_path, monkeypatch):
    """The plugin as a file outside the repository; the registry and sys.modules are restored afterwards."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    path = folder / "tmp_vector_plugin.py"
    path.write_text(textwrap.dedent(PLUGIN))
    saved = dict(methods.REGISTRY)
    yield path
    methods.REGISTRY.clear()
    methods.REGISTRY.update(saved)
    sys.modules.pop("tmp_vector_plugin", None)


def test_a_plugin_file_is_registered_by_plugin_before_the_method_names_are_checked(plugin_file):
    args, extra = _parser().parse_known_args(["run", "--plugin", f"{plugin_file}:TmpVector", "--methods", "tmp-vector",
                                              "--tmp-vector.scale", "2"])
    cfg = config_from_args(args, extra)
    assert cfg.methods == ["tmp-vector"] and cfg.plugins == [f"{plugin_file}:TmpVector"]
    assert methods.REGISTRY["tmp-vector"] == "tmp_vector_plugin:TmpVector"
    assert methods.get_method_class("tmp-vector").__name__ == "TmpVector"
    validate_config(cfg)  # idempotent: the same class again
    assert "plugins" not in cfg.identity()


def test_a_plugin_module_on_the_path_and_a_comma_list(plugin_file, monkeypatch):
    monkeypatch.syspath_prepend(str(plugin_file.parent))
    args, extra = _parser().parse_known_args(["tune", "--plugin", "tmp_vector_plugin:TmpVector,json:JSONDecoder",
                                              "--methods", "tmp-vector"])
    with pytest.raises(SteerbenchError, match=r"'JSONDecoder' is not a SteeringMethod subclass"):
        config_from_args(args, extra)
    assert methods.REGISTRY["tmp-vector"] == "tmp_vector_plugin:TmpVector"


def test_list_shows_a_plugins_options(plugin_file, capsys):
    assert main(["list", "--plugin", f"{plugin_file}:TmpVector"]) == 0
    assert "--tmp-vector.scale" in capsys.readouterr().out


@pytest.mark.parametrize("spec, needle", [
    ("no-colon", "is not accepted; accepted: module:Class or path/to/file.py:Class"),
    ("no_such_module_xyz:X", "cannot import 'no_such_module_xyz' (ModuleNotFoundError"),
    ("{file}:Missing", "has no class 'Missing'"),
    ("{file}:NotAMethod", "'NotAMethod' is not a SteeringMethod subclass"),
    ("{folder}/nope.py:X", "does not exist"),
    ("methods.repeng_pca:RepengPCA,", "has a blank entry"),
    ("", "has a blank entry"),
])
def test_a_bad_plugin_is_one_line_before_any_work(plugin_file, tmp_path, capsys, spec, needle):
    spec = spec.format(file=plugin_file, folder=plugin_file.parent)
    code = main(["run", "--plugin", spec, "--methods", "repeng", "--results-dir", str(tmp_path / "r")])
    assert code == 2 and needle in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "r").exists()


def test_a_plugin_cannot_take_a_registered_name(plugin_file, tmp_path):
    plugin_file.write_text(plugin_file.read_text().replace('@register_method("tmp-vector")', '@register_method("repeng")'))
    with pytest.raises(SteerbenchError) as err:
        methods.load_plugin(f"{plugin_file}:TmpVector")
    assert "method name 'repeng' is already registered (methods.repeng_pca:RepengPCA)" in str(err.value)
    assert methods.REGISTRY["repeng"] == "methods.repeng_pca:RepengPCA"


@pytest.mark.slow  # a whole run (make test-fast leaves it out)
def test_a_tiny_run_with_a_plugin_from_the_command_line(plugin_file, tiny_model_dir, small_data_dir, tmp_path):
    code = main(["run", "--plugin", f"{plugin_file}:TmpVector", "--methods", "tmp-vector,prompting", "--model",
                 str(tiny_model_dir), "--data-dir", str(small_data_dir), "--results-dir", str(tmp_path), "--n-dilemmas",
                 "2", "--n-pairs", "4", "--dtype", "fp32", "--device", "cpu", "--strength", "raw", "--no-tables",
                 "--tmp-vector.layers", "1", "--run-name", "plugin"])
    run = tmp_path / tiny_model_dir.name / "plugin"
    assert code == 0
    assert {"tmp-vector", "prompting"} <= set(pd.read_parquet(run / "rows.parquet")["method"])
    assert json.loads((run / "config.json").read_text())["plugins"] == [f"{plugin_file}:TmpVector"]


def test_the_conformance_suite_covers_a_plugin_registered_by_one_line(plugin_file, tiny_gemma3_dir, small_data_dir,
                                                                       tmp_path):
    assert methods.load_plugin(f"{plugin_file}:TmpVector") == "tmp-vector"
    run_conformance(fit_case("tmp-vector", tiny_gemma3_dir, small_data_dir, tmp_path), tmp_path)
