"""The README's "Adding a method" example must work as written."""

import re
import sys
import types
from pathlib import Path

import numpy as np
import torch

import methods
from tests.helpers import last_logits, tiny_runner

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_plugin_example_runs(tiny_model_dir, small_data_dir, tmp_path, monkeypatch):
    section = README.read_text().split("## Adding a method", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    registry_line = re.search(r'`("mean-diff": "methods\.my_vector:MeanDiff"),`', section).group(1)
    module = types.ModuleType("methods.my_vector")
    exec(compile(code, "README:methods/my_vector.py", "exec"), module.__dict__)
    monkeypatch.setitem(sys.modules, "methods.my_vector", module)
    name, target = (s.strip().strip('"') for s in registry_line.split(":", 1))
    monkeypatch.setitem(methods.REGISTRY, name, target)

    runner = tiny_runner(tiny_model_dir, small_data_dir, tmp_path, methods=("mean-diff",))
    runner.prepare()
    steering = runner.fit("mean-diff").steering
    assert sorted(steering.directions) == [0] and np.isfinite(steering.directions[0]).all()
    base = last_logits(runner, steering, 0.0)
    assert not torch.allclose(last_logits(runner, steering, 1.0), base)
