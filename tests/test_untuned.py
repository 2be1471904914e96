"""A plugin needs no tuning-grid entry: ``bench tune`` skips it with a log line, and a run marks it "untuned (no
grid)" in its status (where the report reads the tuning note)."""

from __future__ import annotations

import logging

import pytest

import bench.running.tuning
import methods
from bench.config import RunConfig
from bench.errors import SteerbenchError
from bench.running.tuned_defaults import starting_points
from bench.running.tuning import load_grid, tune


class Started(Exception):
    """Raised by the stand-in Runner: the tune got past its checks and would start work."""


def test_a_tune_skips_a_method_without_a_grid_entry_with_a_log_line(monkeypatch, caplog):
    monkeypatch.setitem(methods.REGISTRY, "no-grid", "methods.repeng_pca:RepengPCA")
    seen = []

    def runner(cfg):
        seen.append(cfg.methods)
        raise Started

    monkeypatch.setattr(bench.running.tuning, "Runner", runner)
    with caplog.at_level(logging.INFO, logger="bench.running.tuning"), pytest.raises(Started):
        tune(RunConfig(methods=["no-grid", "repeng"]), load_grid())
    assert seen == [["repeng"]]
    assert "tuning: no-grid has no entry in tuning_grid.json: skipped (untuned, no grid" in caplog.text


def test_a_tune_of_only_methods_without_a_grid_entry_is_one_line_before_any_work(monkeypatch):
    monkeypatch.setitem(methods.REGISTRY, "no-grid", "methods.repeng_pca:RepengPCA")
    monkeypatch.setattr(bench.running.tuning, "Runner", lambda cfg: pytest.fail("work started"))
    with pytest.raises(SteerbenchError) as err:
        tune(RunConfig(methods=["no-grid"]), load_grid())
    assert "\n" not in str(err.value)
    assert str(err.value).startswith("nothing to tune: no method of --methods no-grid has candidates in tuning_grid.json")


def test_a_run_marks_a_method_without_a_grid_entry_untuned_no_grid():
    points = starting_points(RunConfig(methods=["repeng", "no-grid"], tuned="none"))
    assert points == {"repeng": {"untuned": True}, "no-grid": {"untuned": True, "no_grid": True}}
