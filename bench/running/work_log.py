"""A run's work record: what each process that wrote a run folder spent, kept in ``status.json``.

``write_status`` merges a process's record (wall time, forward passes, fits and evaluations computed, stage
times) with those of the run's other processes under ``_run.processes``, and sums them. It runs when the
process finishes the run. A run killed after an hour (a closed laptop, a session limit) and resumed from the
cache would otherwise record only the resuming process's minutes. So every process of a run checkpoints its
record after the unsteered evaluation and after each method, in ``<run>/.work/`` (one small JSON file per
process, replaced atomically), and the process that finishes the run folds the checkpoints of the processes
that did not finish into ``_run.processes`` of ``status.json``, marked ``"unfinished": true``, then removes
them and its own. ``--overwrite`` discards a committed work record, not these: they are earlier attempts at the
run being made now.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import re
import socket
import time
from pathlib import Path

from bench.running.provenance import peak_rss_mb
from bench.running.validate import tracked_files
from bench.store import atomic_write_json, file_lock

log = logging.getLogger(__name__)
FOLDER = ".work"
WORK_TOTALS = ("forward_passes", "wall_seconds")


def process_key(started: float) -> str:
    """A process's key in a run's work record: host, pid and its run's start time (unique across runs)."""
    when = datetime.datetime.fromtimestamp(started, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{socket.gethostname()}:{os.getpid()}:{when}"


def process_record(forward_passes: int, computed: dict, stage_seconds: dict, estimate: dict | None,
                   started: float) -> dict:
    """One process's work record so far (``started``: its ``time.perf_counter()`` at the start)."""
    return {"forward_passes": forward_passes, "computed": computed, "stage_seconds": stage_seconds,
            "estimate": estimate, "wall_seconds": round(time.perf_counter() - started, 1),
            "peak_rss_mb": peak_rss_mb()}


def _read_status(path: Path) -> tuple[dict, dict, dict[str, dict]]:
    """``status.json`` (``{}`` when missing or unreadable), its ``_run`` record and that record's processes. A
    record from before per-process records (totals only) is kept as one process, ``"earlier"``."""
    try:
        status = json.loads(path.read_text())
    except (OSError, ValueError):
        status = {}
    status = status if isinstance(status, dict) else {}
    record = status.get("_run") if isinstance(status.get("_run"), dict) else {}
    if isinstance(record.get("processes"), dict):
        return status, record, dict(record["processes"])
    return status, record, {"earlier": record} if record else {}


def write_status(run_dir: Path, status: dict, work: dict, started: float) -> dict:
    """Write ``status.json``: this run's per-method status, and under ``_run`` the work record of every process
    that has written this run folder, merged with the file's under a lock, so two runs on one folder do not
    erase each other's record. ``_run.processes`` maps ``host:pid:start`` (``started``: this run's
    ``time.time()`` at its start) to a record: the file's, the checkpoints of this run's processes that were
    stopped midway (folded in and removed, in the same locked read and write) and this process's. The top level
    of ``_run`` holds the totals over them (``forward_passes``, ``wall_seconds``, and each ``computed`` count)."""
    path = run_dir / "status.json"
    with file_lock(run_dir / ".status.lock"):
        processes = _read_status(path)[2]
        folded = _fold_unfinished(run_dir, started, processes)
        processes[process_key(started)] = work
        computed: dict[str, int] = {}
        for rec in processes.values():
            for k, v in (rec.get("computed") or {}).items():
                computed[k] = computed.get(k, 0) + v
        totals = {k: round(sum(rec.get(k) or 0 for rec in processes.values()), 1) for k in WORK_TOTALS}
        merged = {**status, "_run": {**totals, "computed": computed, "processes": processes}}
        atomic_write_json(path, merged)
    for checkpoint_file in folded:  # only once their records are in status.json
        checkpoint_file.unlink(missing_ok=True)
    folder = run_dir / FOLDER
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
    return merged


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


def _fold_unfinished(run_dir: Path, started: float, processes: dict[str, dict]) -> list[Path]:
    """Add the checkpoints of this run's unfinished processes to ``processes`` (a record already there wins) and
    return every checkpoint file to remove once they are written, this process's own among them."""
    folder = run_dir / FOLDER
    own = _checkpoint_path(run_dir, started)
    others = sorted(p for p in folder.glob("*.json") if p != own) if folder.is_dir() else []
    for p in others:
        try:
            entry = json.loads(p.read_text())
        except (OSError, ValueError):  # a checkpoint cut short: its process's time is lost, not the run
            continue
        processes.setdefault(entry["process"], entry["work"])
    return [*others, own]
