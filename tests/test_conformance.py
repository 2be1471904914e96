"""The conformance suite every registered method gets for free (peft's shared tester, for steering plugins).

Parametrised over every line of ``methods.REGISTRY`` (a new line is covered with no test code) and over the
README's "Adding a method" example, on the tiny 3-layer Gemma3 (a first steered layer of 1 makes layer
replay do real work). Each method's case is fitted once per module: by the artefact store (fit -> save ->
load, guarded) and once more directly with the same seed. ``SMALL`` holds per-method options that make a
case take seconds; a method it does not list runs on its built-in defaults.

The checks: c=0 scores are the unsteered model's; save -> load gives identical scores; the model is
restored after ``fit()`` and after ``apply()``; layer replay gives the scores a full pass gives; the same
seed gives the same fit; the steering counts its own trained parameters; ``validate()`` refuses a bad option
with one line. ``run_conformance`` runs them
all on any registered name (an out-of-tree plugin: tests/test_plugins.py).
"""

from __future__ import annotations

import dataclasses
import tempfile
import typing
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

import methods
from bench.api.parameters import fitted_parameters, saved_parameters
from bench.api.steering import FitContext, NoSteering, Steering
from bench.config import build_options
from bench.errors import SteerbenchError
from bench.evaluation.evaluator import dilemma_prompts, score_prompts
from bench.model.chat import DEFAULT_SYSTEM
from bench.running.guarded import GuardedSteering
from bench.running.integrity import Fingerprint, boundary_coefficient, differences, fingerprint
from bench.running.runner import Runner
from tests.helpers import readme_example_plugin, tiny_runner

README_EXAMPLE = "mean-diff"  # the README's example plugin, registered by the fixture as the README says
FROM_LAYER_1 = {"layers": "1-2"}
SMALL: dict[str, dict[str, str]] = {
    "random": FROM_LAYER_1, "repeng": FROM_LAYER_1, "svd-steer": {**FROM_LAYER_1, "rank": "4"},
    README_EXAMPLE: FROM_LAYER_1,
    "innerpissa": {**FROM_LAYER_1, "measure_layer": "-1", "rank": "4", "epochs": "1", "batch_pairs": "4"},
    "antipasto": {"epochs": "1", "batch_pairs": "4", "rank": "4", "lr": "1e-2", "subspace": "4", "first_layer": "0.34",
                  "loss_layer": "1.0"},
    "lora": {**FROM_LAYER_1, "epochs": "1", "lr": "0.01", "rank": "2", "continuation_tokens": "4", "batch_size": "4"},
    "sft": {"epochs": "1", "lr": "0.001", "continuation_tokens": "4", "batch_size": "4"},
}
# int / float options for which a negative value is meaningful, or not yet refused (with why)
NEGATIVE_ALLOWED = {
    ("innerpissa", "measure_layer"): "a layer index: negative counts from the end",
}
NAMES = [*methods.REGISTRY, README_EXAMPLE]


@dataclass
class Case:
    """One method fitted on the tiny model: by the store (fit, save, load; guarded) and directly again."""

    name: str
    runner: Runner
    folder: Path  # the stored fit's artefact folder
    stored: Steering  # from the artefact store
    refit: Steering  # method.fit(ctx) again, same seed, never saved
    method: object
    ctx: FitContext
    before: Fingerprint  # the model before either fit
    after_fit: Fingerprint

    @property
    def coeff(self) -> float:
        return boundary_coefficient(self.stored)


def scores(runner: Runner, steering: Steering, coeff: float) -> pd.DataFrame:
    """The harness's DailyDilemmas scores at ``coeff`` (replayed below the first steered layer when enabled)."""
    loaded, tok = runner.loaded, runner.loaded.tokenizer
    system = steering.system_prompt(coeff, DEFAULT_SYSTEM)
    prompts = dilemma_prompts(tok, runner.dilemmas.rows, system)
    groups = runner.dilemmas.rows["dilemma_idx"].tolist()
    with steering.apply(loaded.model, coeff) as model:
        return loaded.steered_loop(steering, coeff, ("conformance", system),
                                   lambda: score_prompts(model, tok, prompts, 4, groups=groups))


def fit_case(name: str, model_dir: Path, data_dir: Path, results: Path) -> Case:
    runner = tiny_runner(model_dir, data_dir, results, methods=(name,), n_dilemmas=2, n_pairs=8,
                         method_options={name: SMALL.get(name, {})}).prepare()
    model = runner.loaded.model
    before = fingerprint(model)
    fitted = runner.fit(name)
    cls = methods.get_method_class(name)
    method = cls(cls(runner.options[name]).resolved(runner.loaded))
    ctx = FitContext(runner.loaded, runner.pairs, runner.cfg.seed, runner.cfg.batch_size,
                     fit_method=lambda other, **o: runner.fit(other, **o).steering,
                     log_dir=Path(tempfile.mkdtemp(dir=results)), continuations=runner.continuations)
    refit = GuardedSteering(method.fit(ctx), name)
    return Case(name, runner, fitted.folder, fitted.steering, refit, method, ctx, before, fingerprint(model))


@pytest.fixture(scope="module", params=NAMES)
def case(request, tiny_gemma3_dir, small_data_dir, tmp_path_factory) -> Case:
    with pytest.MonkeyPatch.context() as mp:
        if request.param == README_EXAMPLE:
            readme_example_plugin(mp)
        yield fit_case(request.param, tiny_gemma3_dir, small_data_dir, tmp_path_factory.mktemp(request.param))


def check_c0_is_the_unsteered_model(case: Case) -> None:
    base = scores(case.runner, NoSteering(), 0.0)
    for steering in (case.stored, case.refit):
        if steering.c0_is_base:
            pd.testing.assert_frame_equal(scores(case.runner, steering, 0.0), base, check_exact=True)
        else:  # the plugin computes its c=0 itself: the same numbers up to float error
            pd.testing.assert_frame_equal(scores(case.runner, steering, 0.0), base, atol=1e-5, rtol=1e-5)


def check_save_then_load(case: Case, folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    case.refit.save(folder)
    loaded = GuardedSteering(case.method.load(folder, case.ctx), case.name)
    assert type(loaded.unwrapped) is type(case.refit.unwrapped)
    assert loaded.first_steered_layer() == case.refit.first_steered_layer()
    pd.testing.assert_frame_equal(scores(case.runner, loaded, case.coeff), scores(case.runner, case.refit, case.coeff),
                                  check_exact=True)


def check_model_restored(case: Case) -> None:
    model = case.runner.loaded.model
    assert differences(case.before, case.after_fit) == [], "fit() left the model changed"
    for coeff in (case.coeff, -case.coeff):
        if case.stored.supports(coeff):
            with case.stored.unwrapped.apply(model, coeff):  # the plugin's own apply, unguarded
                pass
            assert differences(case.before, fingerprint(model)) == [], f"apply({coeff:+g}) left the model changed"


def check_replay_is_a_full_pass(case: Case) -> None:
    replay = case.runner.loaded.replay
    try:
        replay.enabled = False
        full = scores(case.runner, case.stored, case.coeff)
        replay.enabled = True
        pd.testing.assert_frame_equal(scores(case.runner, case.stored, case.coeff), full, check_exact=True)
    finally:
        replay.enabled = True


def check_same_seed_same_fit(case: Case) -> None:
    pd.testing.assert_frame_equal(scores(case.runner, case.refit, case.coeff),
                                  scores(case.runner, case.stored, case.coeff), check_exact=True)


def check_n_parameters(case: Case) -> None:
    """The steering's own count: a non-negative int, or None (then the artefact's tensors are counted); the same
    after save -> load; for the built-ins, the count their saved tensors always gave."""
    n = case.stored.n_parameters()
    assert n is None or (isinstance(n, int) and n >= 0), n
    assert case.refit.n_parameters() == n
    assert fitted_parameters(case.folder, case.stored) == (saved_parameters(case.folder) if n is None else n)
    if case.name in methods.REGISTRY and methods.REGISTRY[case.name].startswith("methods."):
        assert n is None or n == saved_parameters(case.folder), (n, saved_parameters(case.folder))


def check_validate_refuses_bad_options(name: str) -> None:
    cls = methods.get_method_class(name)
    with pytest.raises(SteerbenchError) as err:
        build_options(cls, {"no-such-option": "1"})
    assert "\n" not in str(err.value) and "no-such-option" in str(err.value)
    hints = typing.get_type_hints(cls.Options)
    for f in dataclasses.fields(cls.Options):
        if hints[f.name] in (int, float) and (name, f.name) not in NEGATIVE_ALLOWED:
            with pytest.raises(SteerbenchError) as err:
                build_options(cls, {f.name: "-1"})
            assert "\n" not in str(err.value) and "-1" in str(err.value), (name, f.name, str(err.value))


def run_conformance(case: Case, tmp: Path) -> None:
    """Every check, on one fitted case (for a plugin registered outside ``methods.REGISTRY``'s source)."""
    check_validate_refuses_bad_options(case.name)
    check_model_restored(case)
    check_c0_is_the_unsteered_model(case)
    check_save_then_load(case, tmp / "saved")
    check_replay_is_a_full_pass(case)
    check_same_seed_same_fit(case)
    check_n_parameters(case)


def test_c0_scores_are_the_unsteered_models(case):
    check_c0_is_the_unsteered_model(case)


def test_save_then_load_gives_identical_scores(case, tmp_path):
    check_save_then_load(case, tmp_path / "saved")


def test_the_model_is_restored_after_fit_and_apply(case):
    check_model_restored(case)


def test_layer_replay_gives_a_full_pass_scores(case):
    check_replay_is_a_full_pass(case)


def test_the_same_seed_gives_the_same_fit(case):
    check_same_seed_same_fit(case)


def test_the_steering_counts_its_own_parameters(case):
    check_n_parameters(case)


@pytest.mark.parametrize("name", NAMES)
def test_validate_refuses_a_bad_option_in_one_line(name, monkeypatch):
    if name == README_EXAMPLE:
        readme_example_plugin(monkeypatch)
    check_validate_refuses_bad_options(name)
