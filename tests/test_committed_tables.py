"""Every committed run's summary is the one the current table code builds from its rows, and its tables agree.

A run writes ``summary.md``/``summary.csv`` and ``tables/`` when it ends, with the code of that day; when the
table code changes (a column added, a note reworded, a rule fixed), ``bench tables RUN`` rebuilds both from the
rows. This caught runs whose tables had been rebuilt but not their summary, and one-seed runs whose tables
predated the seed columns. Each run's method table is recomputed from its rows here (a few seconds a run);
``tables/main_numbers.csv`` must then hold the same numbers in the columns the two share.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
RUN_FILES = ("rows.parquet", "dilemmas.parquet", "status.json", "config.json")  # what the summary reads


def committed_runs() -> list[Path]:
    listed = subprocess.run(["git", "ls-files", "results"], cwd=ROOT, capture_output=True, text=True, check=True)
    return sorted({(ROOT / p).parent for p in listed.stdout.split() if p.endswith("/summary.csv")})


RUNS = committed_runs()


def test_there_are_committed_runs_to_check():
    assert len(RUNS) >= 10, RUNS


@pytest.mark.slow
@pytest.mark.parametrize("run", RUNS, ids=[f"{r.parent.name}/{r.name}" for r in RUNS])
def test_a_committed_summary_is_rebuilt_from_its_rows_and_agrees_with_its_tables(run, tmp_path):
    from bench.results.display import write_summary

    copy = tmp_path / run.name
    copy.mkdir()
    for name in RUN_FILES:
        shutil.copy(run / name, copy / name)
    write_summary(copy, "Virtue/Truthfulness")
    rebuild = f"stale; rebuild it from its rows: python -m bench tables {run.relative_to(ROOT)}"
    assert (copy / "summary.md").read_text() == (run / "summary.md").read_text(), f"{run.name}/summary.md is {rebuild}"
    summary = pd.read_csv(run / "summary.csv")
    pd.testing.assert_frame_equal(pd.read_csv(copy / "summary.csv"), summary, obj=f"{run.name}/summary.csv ({rebuild})")
    numbers = pd.read_csv(run / "tables" / "main_numbers.csv")
    missing = [c for c in summary.columns if c not in numbers.columns]
    assert not missing, f"{run.name}/tables predate the columns {missing}: {rebuild}"
    pd.testing.assert_frame_equal(numbers[list(summary.columns)], summary,
                                  obj=f"{run.name}: tables/main_numbers.csv against summary.csv ({rebuild})")
