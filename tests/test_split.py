"""The dev/test split: by dilemma, seeded, stratified, independent of a run's seed and subset size; a test run
never renders a dev dilemma and a dev run (what tuning does) never a test one; the split is recorded."""

from __future__ import annotations

import pandas as pd
import pytest

import bench.evaluation.evaluator
from bench.errors import SteerbenchError
from bench.evaluation.dilemmas import load_dilemmas
from bench.evaluation.split import _stratum, dilemma_split, restrict
from tests.helpers import tiny_runner

TARGET = "Virtue/Truthfulness"


@pytest.fixture(scope="module")
def full(dilemmas_dir):
    return load_dilemmas(dilemmas_dir)


def test_a_quarter_of_each_stratum_is_dev_and_the_split_is_fixed(full):
    split = dilemma_split(full, TARGET)
    assert split.index.is_unique and set(split) == {"dev", "test"} and len(split) == 1360
    strata = {idx: _stratum(g, TARGET) for idx, g in full.rows.groupby("dilemma_idx")}
    frame = pd.DataFrame({"split": split, "stratum": pd.Series(strata)})
    for stratum, group in frame.groupby("stratum"):
        share = (group["split"] == "dev").mean()
        assert abs(share - 0.25) < 0.01, (stratum, share)
    assert split.equals(dilemma_split(full, TARGET))  # a pure function of the data
    assert not split.equals(dilemma_split(full, TARGET, seed=1))  # and of its seed


def test_the_sides_are_disjoint_and_cover_every_dilemma(full):
    test, sides = restrict(full, TARGET, "test")
    dev, _ = restrict(full, TARGET, "dev")
    t, d = set(test.rows["dilemma_idx"]), set(dev.rows["dilemma_idx"])
    assert not t & d and t | d == set(full.rows["dilemma_idx"])
    assert (sides[sorted(t)] == "test").all() and (sides[sorted(d)] == "dev").all()
    with pytest.raises(SteerbenchError, match=r"--split 'val' is not accepted; accepted: test, dev, all"):
        restrict(full, TARGET, "val")


def rendered_dilemmas(monkeypatch) -> set:
    seen: set = set()
    real = bench.evaluation.evaluator.dilemma_prompts

    def spy(tokenizer, rows, system):
        seen.update(rows["dilemma_idx"])
        return real(tokenizer, rows, system)

    monkeypatch.setattr("bench.evaluation.evaluations.dilemma_prompts", spy)
    return seen


@pytest.mark.slow  # a whole run per side (make test-fast leaves it out)
@pytest.mark.parametrize("side, other", [("test", "dev"), ("dev", "test")])
def test_a_run_renders_only_its_own_side(tiny_model_dir, dilemmas_dir, full, tmp_path, monkeypatch, side, other):
    seen = rendered_dilemmas(monkeypatch)
    for seed in (0, 1):  # another seed picks another subset, never from the other side
        runner = tiny_runner(tiny_model_dir, dilemmas_dir, tmp_path, methods=("prompting",), split=side, seed=seed,
                             n_dilemmas=8)
        run_dir = runner.run()
    sides = dilemma_split(full, TARGET)
    assert seen and set(sides[sorted(seen)]) == {side}
    recorded = pd.read_parquet(run_dir / "dilemmas.parquet")
    assert set(recorded["split"]) == {side} and set(recorded["dilemma_idx"]) <= set(sides.index[sides == side])
    assert not set(recorded["dilemma_idx"]) & set(sides.index[sides == other])
