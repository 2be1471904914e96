"""The training-volume curve's choice of a default: the fewest steps within one seed SD of the best mean."""

import pandas as pd

from bench.results.training_volume import choose


def test_the_fewest_steps_within_one_seed_sd_of_the_best_is_chosen():
    table = pd.DataFrame({"steps planned": [33, 99, 297], "effect": [0.05, 0.10, 0.12], "seed_sd": [0.01, 0.02, 0.03]})
    assert choose(table) == [False, True, False]  # 0.10 >= 0.12 - 0.03; 0.05 is not
    table["seed_sd"] = [0.01, 0.02, 0.08]  # a noisier best: the shortest schedule is as good, within its spread
    assert choose(table) == [True, False, False]
    table["seed_sd"] = [0.01, 0.02, 0.001]
    assert choose(table) == [False, False, True]
