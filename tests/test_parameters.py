"""Parameters (for Efficiency) come from the steering's own ``n_parameters()``; a steering that does not say is
counted from the tensors its artefact saved, as before."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from bench.api.parameters import fitted_parameters, saved_parameters
from bench.api.residual import ResidualSteering
from bench.api.steering import Steering


class FrozenBasis(Steering):
    """A new adapter: it saves a large frozen basis beside the 5 numbers it trained."""

    def __init__(self, declares: bool):
        self.declares = declares

    def n_parameters(self) -> int | None:
        return 5 if self.declares else None

    def save(self, path: Path) -> None:
        save_file({"basis": torch.zeros(64, 64), "trained": torch.zeros(5)}, str(path / "adapter.safetensors"))


def test_a_steering_that_counts_its_parameters_is_taken_at_its_word(tmp_path):
    FrozenBasis(True).save(tmp_path)
    assert fitted_parameters(tmp_path, FrozenBasis(True)) == 5  # the frozen basis does not inflate it
    assert fitted_parameters(tmp_path, FrozenBasis(False)) == 64 * 64 + 5 == saved_parameters(tmp_path)  # as before
    assert fitted_parameters(tmp_path) == 64 * 64 + 5


def test_the_old_count_stays_the_fallback_for_the_svd_adapters_tensors(tmp_path):
    save_file({"0__mlp__down_proj.theta_v": torch.zeros(4, 4), "0__mlp__down_proj.delta_s": torch.zeros(4),
               "0.o_proj|u": torch.zeros(8, 4), "0.o_proj|d": torch.zeros(4)}, str(tmp_path / "a.safetensors"))
    assert saved_parameters(tmp_path) == 4 * 3 // 2 + 4 + 0 + 4


def test_a_residual_steering_counts_one_vector_per_layer(tmp_path):
    steering = ResidualSteering({1: np.ones(8, dtype=np.float32), 3: np.ones(8, dtype=np.float32)}, "qwen3")
    steering.save(tmp_path)
    assert steering.n_parameters() == 16 == saved_parameters(tmp_path)
