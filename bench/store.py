"""Atomic files and content-addressed caches under ``results/<model>/cache/``.

Everything is written to a temporary file in the same folder and renamed into place, so a crash
leaves either the old file or the new one, never half of one. Caches are keyed by a hash of the
config that produced them, so a rerun recomputes only what is missing.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

log = logging.getLogger(__name__)


def stable_hash(obj: Any, length: int = 12) -> str:
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n")


def atomic_write_frame(path: Path, frame: pd.DataFrame) -> None:
    """Parquet for ``.parquet``, CSV otherwise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        if path.suffix == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_cached_frame(path: Path) -> pd.DataFrame | None:
    """A cached frame, or None if absent. A file that fails to load is moved aside, never used."""
    if not path.is_file():
        return None
    try:
        return pd.read_parquet(path)
    except Exception as exc:
        aside = path.with_name(path.name + ".corrupt")
        log.warning("cache file %s could not be read (%s): moved to %s and recomputing", path, type(exc).__name__, aside.name)
        os.replace(path, aside)
        return None


@contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield a temporary folder that becomes ``target`` only if the block finishes.

    If ``target`` already exists (a complete folder: it only ever appears by rename) it is kept and
    the new one discarded: content-addressed folders with the same name hold the same thing.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        yield tmp
        try:
            os.rename(tmp, target)  # fails if target exists (non-empty): never half-replace a folder
        except OSError:
            if not target.is_dir():
                raise
            log.info("%s was written by another run meanwhile: keeping that copy", target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock (``flock``) held for the block: runs sharing a results folder take
    turns on one cache entry, so the second one waits and then reuses the first one's result."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def check_writable(folder: Path) -> None:
    """Fail before any compute if results cannot be written."""
    from bench.errors import SteerbenchError

    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=folder, prefix=".write-probe-", delete=True)
        probe.close()
    except OSError as exc:
        raise SteerbenchError(f"results directory {str(folder)!r} is not writable ({exc.strerror})") from None
