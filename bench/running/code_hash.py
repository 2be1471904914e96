"""A hash of a method's own code, part of its artefact key: an edited plugin refits by itself.

The hash covers the plugin's module (every ``.py`` of its package for a folder plugin such as
``methods/innerpissa/``) and, recursively, every other module of its top-level package (``methods.*`` for
the built-ins) that it imports (AntiPaSTO imports InnerPiSSA's adapter: editing the adapter refits both).
The harness's own code (``bench/``) is not hashed: a harness-wide change that alters fits bumps
``bench.store.CACHE_VERSION`` instead.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
from pathlib import Path


def _spec(name: str):
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError):  # a module made in memory (sys.modules entry without a spec)
        return None


def _files_of(module_name: str) -> list[Path]:
    """The source files that make up one plugin module: every file of its package for a folder plugin
    (``methods.innerpissa.layer`` -> ``methods/innerpissa/*.py``), else its own file."""
    parts = module_name.split(".")
    package = _spec(".".join(parts[:2])) if len(parts) >= 2 else None
    if package is not None and package.submodule_search_locations:
        return sorted(p for loc in package.submodule_search_locations for p in Path(loc).rglob("*.py"))
    spec = _spec(module_name)
    origin = getattr(spec, "origin", None)
    return [Path(origin)] if origin and origin.endswith(".py") else []


def _imported_plugins(path: Path, root: str) -> set[str]:
    """``root.*`` modules a source file imports (absolute imports; relative ones stay in its package)."""
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else []
        found |= {n for n in names if n.startswith(root + ".")}
    return found


def method_code_hash(cls: type, length: int = 12) -> str:
    """Hash of the source of ``cls``'s plugin and the plugins it imports."""
    digest = hashlib.sha256()
    seen: set[Path] = set()
    pending = [cls.__module__]
    done: set[str] = set()
    while pending:
        name = pending.pop()
        if name in done:
            continue
        done.add(name)
        for path in _files_of(name):
            if path in seen:
                continue
            seen.add(path)
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
            pending += sorted(_imported_plugins(path, cls.__module__.split(".")[0]))
    if not seen:  # a class defined outside a file (an exec'd example): its own source, where inspect finds it
        try:
            digest.update(inspect.getsource(cls).encode())
        except (OSError, TypeError):
            digest.update(f"{cls.__module__}.{cls.__qualname__}".encode())
    return digest.hexdigest()[:length]
