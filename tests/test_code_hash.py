"""Fits follow the code: a plugin's source is in its artefact key, so an edited plugin refits by itself
(and says so), an unchanged one reuses its fit, and a folder plugin's or an imported plugin's files count."""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path

import methods
from bench.running.code_hash import method_code_hash
from methods import get_method_class
from tests.helpers import tiny_runner

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_plugin_source() -> str:
    section = README.read_text().split("## Adding a method", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def fits_of(tiny_model_dir, data_dir, results_dir) -> tuple[int, str]:
    runner = tiny_runner(tiny_model_dir, data_dir, results_dir, methods=("mean-diff",))
    fitted = runner.fit("mean-diff")
    return runner.work["fits"], fitted.key


def test_editing_a_plugin_refits_it_and_an_unchanged_one_reuses_its_fit(tiny_model_dir, small_data_dir, tmp_path,
                                                                       monkeypatch, caplog):
    plugin = tmp_path / "plugins" / "my_vector_plugin.py"
    plugin.parent.mkdir()
    plugin.write_text(readme_plugin_source())
    monkeypatch.syspath_prepend(str(plugin.parent))
    monkeypatch.setitem(methods.REGISTRY, "mean-diff", "my_vector_plugin:MeanDiff")
    results = tmp_path / "results"
    first = fits_of(tiny_model_dir, small_data_dir, results)
    again = fits_of(tiny_model_dir, small_data_dir, results)
    assert first[0] == 1 and again == (0, first[1])  # unchanged source: the cached fit, same key
    # The researcher edits fit() (here: scales the direction) and reruns, without touching CACHE_VERSION.
    plugin.write_text(plugin.read_text().replace(".mean(0)", ".mean(0) * 2.0"))
    with caplog.at_level(logging.INFO, logger="bench.running.artefacts"):
        edited = fits_of(tiny_model_dir, small_data_dir, results)
    assert edited[0] == 1 and edited[1] != first[1]
    assert any(r.getMessage().startswith("refitting mean-diff: its code changed") for r in caplog.records)
    sys.modules.pop("my_vector_plugin", None)


def test_a_folder_plugin_hashes_its_whole_package_and_the_plugins_it_imports(tmp_path, monkeypatch):
    root = tmp_path / "plugroot"
    files = {"__init__.py": "", "folder/__init__.py": "class Folder:\n    pass\n",
             "folder/layer.py": "SCALE = 1.0\n",
             "single.py": "from plugroot.folder.layer import SCALE\n\n\nclass Single:\n    pass\n",
             "other.py": "class Other:\n    pass\n"}
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    classes = [importlib.import_module(m).__dict__[c] for m, c in
               (("plugroot.folder", "Folder"), ("plugroot.single", "Single"), ("plugroot.other", "Other"))]
    before = [method_code_hash(c) for c in classes]
    assert before == [method_code_hash(c) for c in classes]  # stable for unchanged files
    (root / "folder" / "layer.py").write_text("SCALE = 2.0\n")  # an edit to the adapter, not the class's file
    after = [method_code_hash(c) for c in classes]
    assert after[0] != before[0]  # the folder plugin: every file of its package counts
    assert after[1] != before[1]  # a plugin that imports it refits too
    assert after[2] == before[2]  # an unrelated plugin keeps its fits
    for name in [m for m in sys.modules if m.startswith("plugroot")]:
        sys.modules.pop(name)


def test_the_built_in_plugins_hash_their_own_files():
    innerpissa, lora = get_method_class("innerpissa"), get_method_class("lora")
    assert len({method_code_hash(innerpissa), method_code_hash(lora)}) == 2


def test_a_harness_edit_refits_what_imports_it_and_nothing_else(tmp_path, monkeypatch):
    """The harness (here a stand-in package, so the test edits no real file) is followed like a plugin: an edit to
    a harness module a plugin imports changes its key; an edit to one it does not (the report) changes nothing."""
    import importlib

    from bench.running import code_hash

    files = {"fakebench/__init__.py": "", "fakebench/api/__init__.py": "", "fakebench/api/residual.py": "SCALE = 1\n",
             "fakebench/results/__init__.py": "", "fakebench/results/report.py": "WIDTH = 80\n",
             "plugx/__init__.py": "", "plugx/uses.py": "from fakebench.api.residual import SCALE\n\n\nclass Uses:\n    pass\n",
             "plugx/alone.py": "class Alone:\n    pass\n"}
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(code_hash, "HARNESS", "fakebench")
    uses, alone = importlib.import_module("plugx.uses").Uses, importlib.import_module("plugx.alone").Alone
    before = (method_code_hash(uses), method_code_hash(alone))
    (tmp_path / "fakebench/results/report.py").write_text("WIDTH = 120\n")
    assert (method_code_hash(uses), method_code_hash(alone)) == before  # the report: nothing refits
    (tmp_path / "fakebench/api/residual.py").write_text("SCALE = 2\n")
    assert method_code_hash(uses) != before[0] and method_code_hash(alone) == before[1]
    for name in [m for m in sys.modules if m.startswith(("plugx", "fakebench"))]:
        sys.modules.pop(name)


def test_the_real_closures_reach_the_harness_a_fit_or_score_runs_and_not_the_report():
    from bench.running.code_hash import SCORE_MODULES, code_files

    root = README.parent
    fit = {str(p.relative_to(root)) for p in code_files(["methods.antipasto"], ("methods", "bench"))}
    assert {"bench/api/steering.py", "bench/model/layers.py", "methods/innerpissa/layer.py"} <= fit
    score = {str(p.relative_to(root)) for p in code_files(list(SCORE_MODULES))}
    assert {"bench/evaluation/evaluator.py", "bench/evaluation/calibration.py", "bench/running/sweep.py"} <= score
    assert not any(f.startswith("bench/results/") for f in fit | score), sorted(fit | score)


def test_a_cpu_fit_and_a_cuda_fit_never_share_a_key(tiny_model_dir, small_data_dir, tmp_path, monkeypatch):
    import torch

    runner = tiny_runner(tiny_model_dir, small_data_dir, tmp_path, methods=("antipasto", "repeng"))
    runner.prepare()
    cpu = {m: runner.artefacts._identify(m, 0, {}) for m in ("antipasto", "repeng")}
    monkeypatch.setattr(runner.loaded, "device", torch.device("cuda"))  # a mocked GPU: nothing runs on it
    cuda = {m: runner.artefacts._identify(m, 0, {}) for m in ("antipasto", "repeng")}
    assert cpu["antipasto"][1].epochs == 3 and cuda["antipasto"][1].epochs == 30  # resolved before hashing
    assert all(cpu[m][2] != cuda[m][2] for m in cpu)
