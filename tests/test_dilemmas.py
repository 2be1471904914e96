import shutil

import pandas as pd
import pytest

from bench.errors import SteerbenchError
from bench.evaluation.dilemmas import DILEMMA_FILE, check_target, load_dilemmas, select_subset

TARGET = "Virtue/Truthfulness"


def test_real_files_and_value_labels(dilemmas_dir):
    dd = load_dilemmas(dilemmas_dir)
    assert len(dd.rows) == 2720 and dd.rows.groupby("dilemma_idx").size().eq(2).all()
    tagged = dd.rows[dd.rows["labels"].apply(lambda labs: TARGET in labs)]
    assert tagged["dilemma_idx"].nunique() == 596
    first = dd.rows[dd.rows["raw_values"].apply(lambda v: "honesty" in v)].iloc[0]
    assert {"Value/honesty", "Virtue/Truthfulness", "MFT/Fairness"} <= set(first["labels"])


def test_subset_is_seeded_whole_and_target_first(dilemmas_dir, caplog):
    dd = load_dilemmas(dilemmas_dir)
    a = select_subset(dd, 50, TARGET, seed=3)
    b = select_subset(dd, 50, TARGET, seed=3)
    assert a.rows["idx"].tolist() == b.rows["idx"].tolist()
    assert a.rows["dilemma_idx"].nunique() == 50 and a.rows.groupby("dilemma_idx").size().eq(2).all()
    assert a.rows.groupby("dilemma_idx")["labels"].apply(lambda s: any(TARGET in l for l in s)).all()
    assert select_subset(dd, 50, TARGET, seed=4).rows["idx"].tolist() != a.rows["idx"].tolist()
    everything = select_subset(dd, 99999, TARGET, seed=0)
    assert everything.rows["dilemma_idx"].nunique() == 1360 and "using all of them" in caplog.text
    with pytest.raises(SteerbenchError, match="positive"):
        select_subset(dd, 0, TARGET, seed=0)


def test_default_subset_is_every_dilemma_carrying_the_target(dilemmas_dir):
    dd = load_dilemmas(dilemmas_dir)
    default = select_subset(dd, None, TARGET, seed=0)
    tagged = set(dd.rows.loc[dd.rows["labels"].apply(lambda labs: TARGET in labs), "dilemma_idx"])
    assert set(default.rows["dilemma_idx"]) == tagged and len(tagged) == 596
    assert default.rows.groupby("dilemma_idx").size().eq(2).all()


def test_unknown_target_lists_close_matches(small_data_dir):
    dd = load_dilemmas(small_data_dir)
    with pytest.raises(SteerbenchError, match="Virtue/Truthfulness"):
        check_target(dd, "Virtue/Truthfullness")


@pytest.mark.parametrize("mutate, needle", [
    (lambda df: df.drop(columns=["action"]), "missing column"),
    (lambda df: df.assign(values_aggregated="honesty"), "must be a list"),
])
def test_malformed_dilemma_file(small_data_dir, tmp_path, mutate, needle):
    folder = tmp_path / "dd"
    shutil.copytree(small_data_dir, folder)
    df = pd.read_csv(folder / DILEMMA_FILE)
    mutate(df).to_csv(folder / DILEMMA_FILE, index=False)
    with pytest.raises(SteerbenchError, match=needle):
        load_dilemmas(folder)


def test_offline_hub_failure_names_the_local_option(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(SteerbenchError, match="--data-dir"):
        load_dilemmas(None)
