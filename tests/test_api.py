"""The Python API (``steerbench.py``): the documented example runs as written (docs/api.md, and the README when
it carries the example), on the tiny model and a tiny finished run; fitting needs no DailyDilemmas."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import torch

import steerbench as sb
from bench.errors import SteerbenchError
from tests.helpers import tiny_runner

ROOT = Path(__file__).resolve().parents[1]
MARKERS = re.compile(r"<!-- api-example -->\s*```python\n(.*?)```\s*<!-- /api-example -->", re.S)


def examples() -> dict[str, str]:
    """The example from each page that carries it (identical pages are run once)."""
    found = {}
    for page in ("docs/api.md", "README.md"):
        match = MARKERS.search((ROOT / page).read_text())
        if match and match.group(1) not in found.values():
            found[page] = match.group(1)
    assert "docs/api.md" in found
    return found


@pytest.fixture(scope="module")
def tiny_run(tiny_model_dir, small_data_dir, tmp_path_factory) -> Path:
    """A finished run on the tiny model, with its tables/."""
    runner = tiny_runner(tiny_model_dir, small_data_dir, tmp_path_factory.mktemp("api-run"), methods=("prompting",),
                         n_dilemmas=2, tables=True, run_name="tiny")
    return runner.run()


@pytest.mark.parametrize("page", list(examples()))
def test_the_documented_example_runs(page, tiny_model_dir, tiny_run, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the example's fit caches where a run would: under ./results, here a tmp folder
    monkeypatch.delenv("STEERBENCH_CACHE_DIR", raising=False)
    monkeypatch.delenv("STEERBENCH_DATA_DIR", raising=False)  # fitting needs no dilemmas
    code = examples()[page]
    assert '"smollm2-135m"' in code and '"results/smollm2-135m/default"' in code
    code = code.replace('"smollm2-135m"', repr(str(tiny_model_dir)), 1)
    code = code.replace('"results/smollm2-135m/default"', repr(str(tiny_run)))
    exec(compile(code, f"{page}:api-example", "exec", dont_inherit=True), {})
    out = capsys.readouterr().out
    starts = [m.start() for m in (re.search(rf"^{c} ", out, re.M) for c in (r"-1\.0", r"0\.0", r"1\.0")) if m]
    assert len(starts) == 3 and starts == sorted(starts), out  # a reply per coefficient, in order
    assert "Method" in out and "prompting" in out  # the main table's head
    assert list((tmp_path / "results").glob("*/cache/artifacts/repeng-*/meta.json"))


def test_fit_takes_options_as_values_or_strings_and_shares_a_runs_cache(tiny_model_dir, tmp_path):
    loaded = sb.load_model(str(tiny_model_dir), dtype="fp32", device="cpu")
    pairs = sb.make_pairs(loaded, n=8)
    a = sb.fit("repeng", loaded, pairs=pairs, cache_dir=tmp_path, layers="1", batch_size=4)
    b = sb.fit("repeng", loaded, pairs=pairs, cache_dir=tmp_path, layers="1", batch_size="4")
    assert sorted(a.directions) == [1] and all((a.directions[k] == b.directions[k]).all() for k in a.directions)
    assert len(list(tmp_path.glob("*/artifacts/repeng-*"))) == 1  # the same key: fitted once
    with a.apply(loaded.model, 1.0) as model, torch.inference_mode():
        assert model is loaded.model
    with pytest.raises(SteerbenchError, match="unknown option repeng.rank"):
        sb.fit("repeng", loaded, pairs=pairs, cache_dir=tmp_path, rank=3)
    with pytest.raises(SteerbenchError, match="unknown method 'nope'"):
        sb.fit("nope", loaded, pairs=pairs, cache_dir=tmp_path)


def test_a_method_class_from_a_notebook_cell_is_fitted(tiny_model_dir, tmp_path):
    import methods
    from tests.test_integrity import Broken

    saved = dict(methods.REGISTRY)  # the registration ends with the test
    try:
        loaded = sb.load_model(str(tiny_model_dir), dtype="fp32", device="cpu")
        steering = sb.fit(Broken, loaded, pairs=sb.make_pairs(loaded, n=4), cache_dir=tmp_path)
        assert steering.first_steered_layer() == 0 and methods.REGISTRY["broken"] == "tests.test_integrity:Broken"
        assert isinstance(sb.generate(loaded, steering, "Is water wet?", 1.0, max_new_tokens=3), str)
    finally:
        methods.REGISTRY.clear()
        methods.REGISTRY.update(saved)


def test_load_run_reads_rows_dilemmas_status_and_every_table(tiny_run):
    run = sb.load_run(tiny_run)
    assert {"method", "coeff", "logratio"} <= set(run.rows.columns) and len(run.dilemmas)
    assert "prompting" in run.status and isinstance(run.control, pd.DataFrame)
    assert set(run.tables) == {p.stem for p in (tiny_run / "tables").glob("*.csv")} and "main" in run.tables
    with pytest.raises(SteerbenchError, match="does not exist"):
        sb.load_run(tiny_run / "nope")
