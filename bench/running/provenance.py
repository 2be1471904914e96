"""What made a run: package versions, Python, git commit, model source and fingerprint, data file hashes,
and the process's peak memory. Written to ``environment.json`` beside the rows."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

from bench.evaluation.dilemmas import DILEMMA_FILE, VALUES_FILE
from bench.model.loading import LoadedModel
from bench.store import file_sha256

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("torch", "transformers", "peft", "trl", "repeng", "datasets", "numpy", "pandas", "scipy", "statsmodels")


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def environment(loaded: LoadedModel, data_dir: str | None, pairs_hash: str, processes: int) -> dict:
    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    data_hashes = {f: file_sha256(Path(data_dir) / f) for f in (DILEMMA_FILE, VALUES_FILE)} if data_dir else {}
    return {"packages": versions, "python": platform.python_version(), "git_commit": git_commit(),
            "model": {"name": loaded.name, "source": loaded.source, "fingerprint": loaded.fingerprint,
                      "dtype": str(loaded.dtype), "device": str(loaded.device),
                      "dtype_choice": loaded.dtype_choice.as_dict() if loaded.dtype_choice else None},
            "data_files_sha256": data_hashes or "hub:" + "kellycyy/daily_dilemmas",
            "pairs_sha": pairs_hash, "processes": processes, "machine": machine()}


def machine() -> dict:
    """What ran it: CPU model, torch's CPU capability, cores and threads, and the GPU where there is one."""
    import os

    import torch

    from bench.model.dtype_choice import cpu_capability, cpu_model

    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else None
    return {"cpu": cpu_model(), "capability": cpu_capability(), "cores": os.cpu_count(), "threads": torch.get_num_threads(),
            "gpu": gpu}
