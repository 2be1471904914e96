import torch

from bench.model.layers import target_module
from tests.helpers import last_logits, tiny_runner


def test_svd_steer_equals_dense_product_and_is_identity_at_c0(tiny_model_dir, small_data_dir, tmp_path):
    runner = tiny_runner(tiny_model_dir, small_data_dir, tmp_path, methods=("svd-steer",),
                         method_options={"svd-steer": {"modules": "q_proj,k_proj,o_proj", "layers": "0,1", "rank": 8}})
    runner.prepare()
    steering = runner.fit("svd-steer").steering
    model = runner.loaded.model
    widths = {target_module(model, t).out_features for t in steering.factors}
    assert len(widths) > 1  # q_proj is wider than k_proj: no special case needed
    for target, f in steering.factors.items():
        linear = target_module(model, target)
        x = torch.randn(3, linear.in_features)
        for c in (0.0, 1.0, -2.0):
            dense = linear.weight + c * f["u"] @ torch.diag(f["d"]) @ f["v"].T
            with steering.apply(model, c), torch.no_grad():
                torch.testing.assert_close(linear(x), x @ dense.T, atol=1e-5, rtol=1e-5)
    base = last_logits(runner, steering, 0.0)
    plus, minus = last_logits(runner, steering, 1.0) - base, last_logits(runner, steering, -1.0) - base
    assert plus.norm() > 1e-4
    assert (torch.nn.functional.cosine_similarity(plus, minus, dim=-1) < 0).all()


def test_svd_steer_pca_direction_runs(tiny_model_dir, small_data_dir, tmp_path):
    runner = tiny_runner(tiny_model_dir, small_data_dir, tmp_path, methods=("svd-steer",),
                         method_options={"svd-steer": {"direction": "pca", "layers": "0,1"}})
    runner.prepare()
    steering = runner.fit("svd-steer").steering
    assert all(torch.isfinite(f["d"]).all() for f in steering.factors.values())
