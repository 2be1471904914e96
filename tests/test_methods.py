import numpy as np
import pytest
import torch

from bench.errors import SteerbenchError
from methods import REGISTRY, get_method_class, method_names, parse_method_list
from tests.helpers import last_logits, tiny_runner


def test_registry_discovers_methods():
    assert {"prompting", "random", "repeng"} <= set(method_names())
    for name in method_names():
        cls = get_method_class(name)
        assert cls.name == name and cls.description


def test_every_option_of_every_method_has_help_text():
    import dataclasses

    from methods import get_method_class, method_names

    for name in method_names():
        for f in dataclasses.fields(get_method_class(name).Options):
            assert f.metadata.get("help"), f"--{name}.{f.name} has no help text (use bench.api.steering.option)"


def test_unknown_method_lists_known_ones():
    with pytest.raises(SteerbenchError) as err:
        parse_method_list("repeng,nope")
    assert "'nope'" in str(err.value) and all(n in str(err.value) for n in REGISTRY)
    assert parse_method_list("all") == method_names()


@pytest.fixture(scope="module")
def runner(tiny_model_dir, small_data_dir, tmp_path_factory):
    r = tiny_runner(tiny_model_dir, small_data_dir, tmp_path_factory.mktemp("res"))
    r.prepare()
    return r


@pytest.mark.parametrize("name", ["random", "repeng"])
def test_residual_methods_move_logits_in_opposite_directions(runner, name):
    steering = runner.fit(name).steering
    base = last_logits(runner, steering, 0.0)
    plus = last_logits(runner, steering, 1.0) - base
    minus = last_logits(runner, steering, -1.0) - base
    assert plus.norm() > 1e-3 and minus.norm() > 1e-3
    cos = torch.nn.functional.cosine_similarity(plus, minus, dim=-1)
    assert (cos < 0).all(), cos
    # c=0 leaves the model untouched (the hooks are removed after each use)
    assert torch.equal(last_logits(runner, steering, 0.0), base)


def test_prompting_changes_only_the_system_message(runner):
    steering = runner.fit("prompting").steering
    assert steering.system_prompt(0.0, "S") == "S"
    assert "an honest person" in steering.system_prompt(1.0, "S") and steering.system_prompt(1.0, "S").startswith("S ")
    assert "a dishonest person" in steering.system_prompt(-1.0, "S")
    base = last_logits(runner, steering, 0.0)
    plus, minus = last_logits(runner, steering, 1.0), last_logits(runner, steering, -1.0)
    assert not torch.allclose(plus, base) and not torch.allclose(minus, base) and not torch.allclose(plus, minus)
    assert not steering.supports(2.0)


def test_random_is_scaled_to_repeng_norms(runner):
    rep = runner.fit("repeng").steering
    rnd = runner.fit("random").steering
    assert sorted(rep.directions) == sorted(rnd.directions)
    for layer in rep.directions:
        assert np.linalg.norm(rnd.directions[layer]) == pytest.approx(np.linalg.norm(rep.directions[layer]), rel=1e-5)
        cos = rep.directions[layer] @ rnd.directions[layer] / np.linalg.norm(rep.directions[layer]) ** 2
        assert abs(cos) < 0.9  # a different direction


def test_repeng_batched_training_matches_one_at_a_time(runner):
    a = runner.fit("repeng", batch_size=1).steering
    b = runner.fit("repeng", batch_size=8).steering
    for layer in a.directions:
        assert abs(float(a.directions[layer] @ b.directions[layer])) == pytest.approx(1.0, abs=1e-4)


def test_sign_is_calibrated_at_the_evaluated_magnitude_with_a_test(runner):
    from bench.evaluation.calibration import calibrate_sign

    fitted = runner.fit("repeng")
    cont = runner.continuations()
    cal = calibrate_sign(runner.loaded, fitted.steering, cont, runner.base_system, 4, magnitude=8.0)
    assert cal["magnitude"] == 8.0 and cal["n_pairs"] == len(cont.suffixes) and 0 <= cal["p"] <= 1
    assert cal["determined"] == (cal["p"] < 0.05)
    assert cal["sign"] == (-1 if cal["determined"] and cal["pref_plus"] < cal["pref_minus"] else 1)


def test_a_steering_that_changes_nothing_has_an_undetermined_sign(runner):
    from bench.api.steering import NoSteering
    from bench.evaluation.calibration import calibrate_sign

    cal = calibrate_sign(runner.loaded, NoSteering(), runner.continuations(), runner.base_system, 4, magnitude=1.0)
    assert cal == {**cal, "sign": 1, "determined": False, "p": 1.0}


def test_run_records_signs_where_they_are_used(tiny_model_dir, small_data_dir, tmp_path):
    """Matched strength: the sign is calibrated at c* (not at 1); random, the noise floor, never is."""
    r = tiny_runner(tiny_model_dir, small_data_dir, tmp_path, methods=("random", "repeng"), strength="matched",
                    kl_budget=0.01, run_name="signs")
    r.run()
    rep, rnd = r.status["repeng"], r.status["random"]
    assert rep["calibration"]["magnitude"] == pytest.approx(rep["strength"]["c_star"])
    assert "determined" in rep["calibration"] and rep["sign"] == rep["calibration"]["sign"]
    assert rnd["calibration"]["skipped"] and rnd["sign"] == 1
    assert rep["yesno"]["plus"]["n"] == 40 and 0 <= rep["yesno"]["minus"]["answered"] <= 1
    table = (r.run_dir / "summary.md").read_text()
    assert "not calibrated" in table and "KL (calib. half)" in table


def test_repeng_fits_are_identical_whatever_numpys_global_state(runner, monkeypatch):
    """On real models sklearn runs repeng's PCA with its randomized solver (seeded from numpy's global
    RNG); forced here onto the tiny model, two fits from different global states must still agree exactly."""
    import functools

    import repeng.extract
    from sklearn.decomposition import PCA

    from methods.repeng_pca import RepengPCA

    monkeypatch.setattr(repeng.extract, "PCA", functools.partial(PCA, svd_solver="randomized", iterated_power=1,
                                                                 n_oversamples=1))
    method = RepengPCA(RepengPCA.Options(layers="0,1"))
    from bench.api.steering import FitContext

    ctx = FitContext(runner.loaded, runner.pairs, 0, 4, fit_method=None)
    np.random.seed(1)
    a = method.fit(ctx)
    np.random.seed(2)
    b = method.fit(ctx)
    for layer in a.directions:
        assert np.array_equal(a.directions[layer], b.directions[layer])
