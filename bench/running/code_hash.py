"""Hashes of the code a cached number depends on, part of the cache keys: an edit refits or rescores by itself.

``method_code_hash``, in a fit's artefact key, covers the plugin's module (every ``.py`` of its package for a
folder plugin such as ``methods/innerpissa/``) and, recursively, every module of its top-level package
(``methods.*`` for the built-ins) and of the harness (``bench.*``) that it imports, at module level or
inside a function: AntiPaSTO imports InnerPiSSA's adapter and ``bench.api.steering``, so editing either
refits it. ``score_code_hash``, in every evaluation, c* search, calibration, control and example key, covers
the scoring modules and what they import. Neither reaches the report, table or plot code, so an edit there
recomputes nothing. ``bench.store.CACHE_VERSION`` remains for a change outside both (a dependency upgrade).
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
    except (ImportError, ValueError, AttributeError):  # made in memory (no spec), or a name that is no module
        return None


HARNESS = "bench"
# What a score is computed by (the run's sweep, its stores and the evaluator); their imports are followed.
SCORE_MODULES = ("bench.running.sweep", "bench.evaluation.evaluations",
                 "bench.evaluation.evaluator", "bench.evaluation.strength", "bench.evaluation.calibration",
                 "bench.evaluation.control", "bench.evaluation.examples", "bench.evaluation.probe")


def _files_of(module_name: str) -> list[Path]:
    """The source files that make up one module: every file of its package for a folder plugin
    (``methods.innerpissa.layer`` -> ``methods/innerpissa/*.py``), else its own file (harness modules
    always: an edit to one harness module must not touch the keys of code that does not import it)."""
    parts = module_name.split(".")
    package = _spec(".".join(parts[:2])) if len(parts) >= 2 and parts[0] != HARNESS else None
    if package is not None and package.submodule_search_locations:
        return sorted(p for loc in package.submodule_search_locations for p in Path(loc).rglob("*.py"))
    spec = _spec(module_name)
    origin = getattr(spec, "origin", None)
    return [Path(origin)] if origin and origin.endswith(".py") else []


def _imported_plugins(path: Path, roots: tuple[str, ...]) -> set[str]:
    """Modules of the ``roots`` packages a source file imports (absolute imports; relative ones stay in its
    package), including ``from package import module``."""
    tree = ast.parse(path.read_text())
    for node in list(ast.walk(tree)):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []  # imports for type hints only: not code that runs
    found = set()
    for node in ast.walk(tree):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else []
        found |= {n for n in names if n.split(".")[0] in roots and "." in n}
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.split(".")[0] in roots:
            # ``from package import module``: the name is a module only when it has a spec of its own
            found |= {f"{node.module}.{a.name}" for a in node.names if _spec(f"{node.module}.{a.name}") is not None}
    return found


def _closure_digest(modules: list[str], roots: tuple[str, ...]) -> tuple["hashlib._Hash", set[Path]]:
    digest = hashlib.sha256()
    seen: set[Path] = set()
    pending, done = list(modules), set()
    while pending:
        name = pending.pop()
        if name in done:
            continue
        done.add(name)
        for path in _files_of(name):
            if path in seen:
                continue
            seen.add(path)
            pending += sorted(_imported_plugins(path, roots))
    for path in sorted(seen):  # a fixed order, whatever order the imports were found in
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest, seen


def code_files(modules: list[str], roots: tuple[str, ...] = (HARNESS,)) -> list[Path]:
    """The source files a hash over ``modules`` covers (for a test or a curious user)."""
    return sorted(_closure_digest(modules, roots)[1])


def score_code_hash(length: int = 12) -> str:
    """Hash of the scoring code (``SCORE_MODULES`` and the harness modules they import)."""
    return _closure_digest(list(SCORE_MODULES), (HARNESS,))[0].hexdigest()[:length]


def method_code_hash(cls: type, length: int = 12) -> str:
    """Hash of the source of ``cls``'s plugin, the plugins it imports and the harness modules it imports."""
    roots = tuple(dict.fromkeys((cls.__module__.split(".")[0], HARNESS)))
    digest, seen = _closure_digest([cls.__module__], roots)
    if not seen:  # a class defined outside a file (an exec'd example): its own source, where inspect finds it
        try:
            digest.update(inspect.getsource(cls).encode())
        except (OSError, TypeError):
            digest.update(f"{cls.__module__}.{cls.__qualname__}".encode())
    return digest.hexdigest()[:length]
