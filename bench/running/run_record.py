"""What a finished run leaves in its folder: the rows, the dilemma labels, the off-target control, the status
with its work record, the summary and (unless ``--no-tables``) every table and plot.

Kept apart from ``runner`` (which computes) so that what a run *writes* is one short read: everything here is
a function of the computed chunks and the run's facts, written atomically (``bench.store``).
"""

from __future__ import annotations

import logging
import traceback
from pathlib import Path

import pandas as pd

from bench.config import RunConfig
from bench.results.display import write_summary
from bench.running.work_log import write_status
from bench.store import atomic_write_frame

log = logging.getLogger(__name__)
ROW_COLUMNS = ["model", "method", "seed", "strength", "budget", "coeff", "effective_coeff", "dilemma_idx", "idx", "action_type",
               "logratio", "pmass", "nll", "shared_c0"]
ROW_ORDER = ["method", "seed", "budget", "coeff", "dilemma_idx", "idx"]  # a fixed order: a rerun writes the same bytes


def write_rows(run_dir: Path, cfg: RunConfig, chunks: list[pd.DataFrame], dilemma_rows: pd.DataFrame,
               split: pd.Series, control: pd.DataFrame) -> None:
    """``rows.parquet`` (one row per method, seed, budget, coefficient and answer), ``dilemmas.parquet`` (the
    labels and each dilemma's dev/test side, what the tables need beside the rows) and ``control.parquet``."""
    rows = pd.concat(chunks, ignore_index=True) if chunks else pd.DataFrame(
        columns=["idx", "logratio", "pmass", "nll", "method", "coeff", "effective_coeff", "shared_c0", "seed", "budget"])
    rows = rows.merge(dilemma_rows[["idx", "dilemma_idx", "action_type"]], on="idx", how="left")
    rows["model"] = cfg.model
    rows["strength"] = cfg.strength
    rows = rows[ROW_COLUMNS].sort_values(ROW_ORDER).reset_index(drop=True)
    atomic_write_frame(run_dir / "rows.parquet", rows)
    labels = dilemma_rows[["idx", "dilemma_idx", "action_type", "action", "labels"]]
    labels = labels.assign(split=labels["dilemma_idx"].map(split))
    atomic_write_frame(run_dir / "dilemmas.parquet", labels)
    atomic_write_frame(run_dir / "control.parquet", control)  # off-target items


def write_outcome(run_dir: Path, cfg: RunConfig, status: dict, work: dict, started_at: float) -> dict:
    """The status (merged with the run's other processes' work records), the summary and the tables; returns
    the merged per-method status."""
    if len(cfg.budgets) > 1:  # the tables read the main budget; bench.results.frontier reads them all
        status["_frontier"] = {"budgets": cfg.budgets, "main": cfg.kl_budget}
    merged = write_status(run_dir, status, work, started_at)  # with this run's processes stopped midway
    if cfg.tables:  # the summary, every table and plot, from the rows just written (what make tables rebuilds)
        from bench.results.tables import build_tables

        build_tables(run_dir, cfg.target, cfg.min_pmass)
        print((run_dir / "summary.md").read_text().rstrip("\n"))
    else:
        print(write_summary(run_dir, cfg.target, cfg.min_pmass))  # seconds: not a stage
    return merged


def record_failure(run_dir: Path, name: str, exc: Exception) -> str:
    """A method that raised: say so loudly, keep its traceback in ``<run>/<name>.error.txt`` and return the
    one-line reason its status and the table show."""
    reason = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    log.error("METHOD FAILED: %s could not run (%s); it is listed as failed in the table", name, reason)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / f"{name}.error.txt").write_text(traceback.format_exc())
    return reason
