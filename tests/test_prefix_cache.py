"""Shared-prefix evaluation gives the plain path's scores (fp32, 1e-3), with and without steering."""

import numpy as np
import pytest

from bench.evaluation.evaluator import dilemma_prompts, yes_no_logratios
from bench.model.padding import encode
from bench.model.prefix_cache import PrefixPlan, common_prefix_length
from tests.helpers import tiny_runner


def test_plan_reassembles_every_prompt_and_shares_stems():
    ids = [[1, 2, 3, 4, 5], [1, 2, 3, 4, 6, 7], [1, 2, 9], [1, 2, 9], [1, 2, 3, 8]]
    plan = PrefixPlan.build(ids, ["a", "a", "b", "b", "c"])
    assert plan.trunk == [1, 2]
    for rows, stem in zip(plan.groups, plan.stems):
        for i in rows:
            assert plan.trunk + stem + plan.leaves[i] == ids[i]
            assert plan.leaves[i], "every row keeps a token of its own for its logits"
    assert sorted(i for g in plan.groups for i in g) == list(range(5))
    stem_of = {tuple(rows): stem for rows, stem in zip(plan.groups, plan.stems)}
    assert stem_of[(0, 1)] == [3, 4] and stem_of[(2, 3)] == []  # identical prompts: last token stays a leaf
    assert plan.unique_tokens() < sum(map(len, ids))
    assert common_prefix_length([[1, 2], [1, 3]]) == 1


@pytest.fixture(scope="module")
def runner(tiny_model_dir, small_data_dir, tmp_path_factory):
    r = tiny_runner(tiny_model_dir, small_data_dir, tmp_path_factory.mktemp("res"), n_dilemmas=12)
    r.prepare()
    return r


@pytest.mark.parametrize("method, coeff", [(None, 0.0), ("repeng", 1.0), ("svd-steer", -1.0), ("prompting", 1.0)])
@pytest.mark.parametrize("batch_size", [3, 8])
def test_prefix_cache_matches_full_prompts(runner, method, coeff, batch_size):
    tok, rows = runner.loaded.tokenizer, runner.dilemmas.rows
    steering = runner.fit(method).steering if method else None
    system = steering.system_prompt(coeff, runner.base_system) if steering else runner.base_system
    prompts = dilemma_prompts(tok, rows, system)
    groups = rows["dilemma_idx"].tolist()
    plan = PrefixPlan.build(encode(tok, prompts), groups)
    assert len(plan.trunk) > 20 and any(plan.stems)  # the sharing being tested really happens

    def score(**kw):
        if steering is None:
            return yes_no_logratios(runner.loaded.model, tok, prompts, batch_size, **kw)
        with steering.apply(runner.loaded.model, coeff) as model:
            return yes_no_logratios(model, tok, prompts, batch_size, **kw)

    full_lr, full_pm = score()
    calls = []
    cached_lr, cached_pm = score(groups=groups, on_forward=lambda: calls.append(1))
    assert np.isfinite(full_lr).all()
    np.testing.assert_allclose(cached_lr, full_lr, atol=1e-3, rtol=0)
    np.testing.assert_allclose(cached_pm, full_pm, atol=1e-4, rtol=0)
    assert len(calls) >= 2  # trunk once, then stem and leaf passes
