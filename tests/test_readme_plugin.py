"""The README's "Adding a method" example must work as written."""

import numpy as np
import torch

from tests.helpers import last_logits, readme_example_plugin, tiny_runner


def test_readme_plugin_example_runs(tiny_model_dir, small_data_dir, tmp_path, monkeypatch):
    name = readme_example_plugin(monkeypatch)
    runner = tiny_runner(tiny_model_dir, small_data_dir, tmp_path, methods=(name,))
    runner.prepare()
    steering = runner.fit(name).steering
    assert sorted(steering.directions) == [0] and np.isfinite(steering.directions[0]).all()
    base = last_logits(runner, steering, 0.0)
    assert not torch.allclose(last_logits(runner, steering, 1.0), base)
