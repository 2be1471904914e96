"""A run's work record while it runs, so that a run stopped midway still leaves what it spent.

``status.json`` gets a process's work record (wall time, fits and evaluations computed, stage times) only when
the process finishes the run. A run killed after an hour (a closed laptop, a session limit) and resumed from
the cache would otherwise record only the resuming process's minutes. So every process of a run checkpoints
its record after the unsteered evaluation and after each method, in ``<run>/.work/`` (one small JSON file per
process, replaced atomically), and the process that finishes the run folds the checkpoints of the processes
that did not finish into ``_run.processes`` of ``status.json``, marked ``"unfinished": true``, then removes
them and its own. ``--overwrite`` discards a committed work record, not these: they are earlier attempts at the
run being made now.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from bench.running.validate import tracked_files
from bench.store import atomic_write_json, file_lock, process_key

log = logging.getLogger(__name__)
FOLDER = ".work"


def discard_committed_record(run_dir: Path, overwrite: bool) -> None:
    """Under ``--overwrite``, drop the committed run's ``status.json``: its processes' work record (wall time,
    fits computed) is not this run's, and ``write_status`` would merge it in as an earlier process of this run."""
    if overwrite and tracked_files(run_dir / "status.json"):
        (run_dir / "status.json").unlink()
        log.info("--overwrite: %s starts a new work record (the committed run's is in git)", run_dir)


def _checkpoint_path(run_dir: Path, started: float) -> Path:
    return run_dir / FOLDER / (re.sub(r"[^A-Za-z0-9.-]", "_", process_key(started)) + ".json")


def checkpoint(run_dir: Path, started: float, work: dict) -> None:
    """Replace this process's checkpoint (``started``: its run's ``time.time()`` at the start) with ``work``."""
    path = _checkpoint_path(run_dir, started)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, {"process": process_key(started), "work": {**work, "unfinished": True}})


def fold_unfinished(run_dir: Path, started: float) -> None:
    """Move the checkpoints of this run's unfinished processes into ``status.json`` (``_run.processes``, where
    ``bench.store.write_status`` merges them with the finishing process's record and sums the totals), and drop
    this process's own checkpoint."""
    folder = run_dir / FOLDER
    own = _checkpoint_path(run_dir, started)
    others = sorted(p for p in folder.glob("*.json") if p != own) if folder.is_dir() else []
    if others:
        path = run_dir / "status.json"
        with file_lock(run_dir / ".status.lock"):
            try:
                status = json.loads(path.read_text())
            except (OSError, ValueError):
                status = {}
            record = status.get("_run") if isinstance(status.get("_run"), dict) else {}
            processes = dict(record["processes"]) if isinstance(record.get("processes"), dict) else \
                {"earlier": record} if record else {}  # a record from before per-process records: kept
            for p in others:
                try:
                    entry = json.loads(p.read_text())
                except (OSError, ValueError):  # a checkpoint cut short: its process's time is lost, not the run
                    continue
                processes.setdefault(entry["process"], entry["work"])
            atomic_write_json(path, {**status, "_run": {**record, "processes": processes}})
        for p in others:
            p.unlink(missing_ok=True)
    own.unlink(missing_ok=True)
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
