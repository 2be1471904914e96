"""Atomic files and content-addressed caches under ``results/<model>/cache/``.

Everything is written to a temporary file in the same folder and renamed into place, so a crash
leaves either the old file or the new one, never half of one. Caches are keyed by a hash of the
config that produced them, so a rerun recomputes only what is missing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import pandas as pd
from filelock import FileLock, Timeout

log = logging.getLogger(__name__)

# The version of the code that produces cached results (fitting, calibration, continuations, scoring).
# It is part of every cache key: bump it when a change alters what any of them computes, and every
# artefact, continuation and evaluation chunk is recomputed instead of silently reused.
CACHE_VERSION = 1


def stable_hash(obj: Any, length: int = 12) -> str:
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def cache_key(obj: dict, length: int = 12) -> str:
    """``stable_hash`` of a cache entry's inputs plus ``CACHE_VERSION`` (read at call time)."""
    return stable_hash({**obj, "cache_version": CACHE_VERSION}, length)


def current_umask() -> int:
    """This process's umask, without changing it where /proc says it (no window for other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _plain_mode(path: str | Path, folder: bool = False) -> None:
    """Give a mkstemp file (0600) or mkdtemp folder (0700) the mode open()/mkdir() would have."""
    os.chmod(path, (0o777 if folder else 0o666) & ~current_umask())


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)`` into a temporary file beside ``path``, flush it to disk, then rename it into place:
    a crash leaves the old file or the new one, never half of one (every writer below goes through here)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        _plain_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n")


def atomic_write_frame(path: Path, frame: pd.DataFrame) -> None:
    """Parquet for ``.parquet``, CSV otherwise."""
    if path.suffix == ".parquet":
        atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))
    else:
        atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))


def cached_base_result(cache: Path, kind: str, key: dict, compute: Callable[[], dict]) -> dict:
    """The unsteered model's result of one kind (control scores, example texts), computed once per ``key``
    (model, items, dtype, batch size, system prompt) under ``<cache>/<kind>/base-<hash>.json``."""
    path = cache / kind / f"base-{stable_hash(key, 12)}.json"
    if path.is_file():
        return json.loads(path.read_text())
    result = {"key": key, **compute()}
    atomic_write_json(path, result)
    return result


def read_cached_frame(path: Path) -> pd.DataFrame | None:
    """A cached frame, or None if absent. A file that fails to load is moved aside, never used."""
    if not path.is_file():
        return None
    try:
        return pd.read_parquet(path)
    except Exception as exc:
        aside = path.with_name(path.name + ".corrupt")
        try:
            os.replace(path, aside)
        except OSError as move:
            from bench.errors import SteerbenchError

            raise SteerbenchError(f"cache file {str(path)!r} could not be read ({type(exc).__name__}) nor moved aside "
                                  f"({move.strerror}); delete it and rerun") from None
        log.warning("cache file %s could not be read (%s): moved to %s and recomputing", path, type(exc).__name__, aside.name)
        return None


def move_aside(folder: Path) -> Path:
    """Rename an unusable folder to ``<folder>.corrupt-<n>`` (first free n); SteerbenchError if it cannot be."""
    from bench.errors import SteerbenchError

    n = 1
    while folder.with_name(f"{folder.name}.corrupt-{n}").exists():
        n += 1
    aside = folder.with_name(f"{folder.name}.corrupt-{n}")
    try:
        os.rename(folder, aside)
    except OSError as exc:
        raise SteerbenchError(f"{str(folder)!r} is unreadable and could not be moved aside ({exc.strerror}); "
                              "delete it and rerun") from None
    return aside


def load_artefact(folder: Path, load: Callable[[Path], Any]) -> tuple[dict, Any] | None:
    """``(meta, load(folder))`` of a cached artefact folder; None when there is none. A folder that does not
    load (truncated or missing file, bad meta.json) is moved aside to ``<folder>.corrupt-<n>`` and None is
    returned, so the caller refits instead of failing on it forever."""
    if not folder.exists():
        return None
    try:
        meta = json.loads((folder / "meta.json").read_text())
        return meta, load(folder)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"
        aside = move_aside(folder)  # raises (and nothing is logged as moved) if the rename fails
        log.warning("artefact %s could not be loaded (%s): moved to %s, refitting", folder.name, reason, aside.name)
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
        _plain_mode(tmp, folder=True)
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


def lock_timeout() -> float:
    """Seconds a run waits for a cache entry another run is computing (a fit can take many minutes)."""
    return float(os.environ.get("STEERBENCH_LOCK_TIMEOUT", 6 * 3600))


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock (``filelock``) held for the block: runs sharing a results folder take turns on
    one cache entry, so the second one waits, says so, and then reuses the first one's result. The OS
    releases it when its process dies, so a killed run never leaves a stale lock behind."""
    from bench.errors import SteerbenchError

    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=1)
    except Timeout:
        log.info("waiting for %s: another run is computing that cache entry", path.name)
        try:
            lock.acquire(timeout=lock_timeout())
        except Timeout:
            raise SteerbenchError(f"gave up after {lock_timeout():g} s waiting for the lock {str(path)!r} (another run "
                                  "holds it; STEERBENCH_LOCK_TIMEOUT sets the wait)") from None
    try:
        yield
    finally:
        lock.release()


def check_writable(folder: Path) -> None:
    """Fail before any compute if results cannot be written."""
    from bench.errors import SteerbenchError

    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=folder, prefix=".write-probe-", delete=True)
        probe.close()
    except OSError as exc:
        raise SteerbenchError(f"results directory {str(folder)!r} is not writable ({exc.strerror})") from None
