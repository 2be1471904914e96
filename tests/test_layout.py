"""The code layout docs/layout.md promises: bench/ grouped by layer, each layer importing only from the
layers before it, and modules short unless they say why."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
# the layers in import order: a module may import from its own layer and the ones before it
LAYERS = ["model", "api", "evaluation", "results", "running", "tools"]
# top-level modules every layer may import, which import no layer themselves
FOUNDATIONS = {"errors", "paths", "store", "distributed", "timing"}
MAX_PER_FOLDER = 15
LONG = 275  # "about 250 lines": past this, the module's docstring says why it is one module


def _bench_imports(path: Path) -> list[str]:
    modules = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            modules.append(node.module)
        elif isinstance(node, ast.Import):
            modules += [a.name for a in node.names]
    return [m for m in modules if m == "bench" or m.startswith("bench.")]


def layering_violations(bench: Path) -> list[str]:
    found = []
    for path in sorted(bench.rglob("*.py")):
        parts = path.relative_to(bench).parts
        here = parts[0] if len(parts) > 1 else None
        for module in _bench_imports(path):
            target = module.split(".")[1] if "." in module else None
            if here is None and path.stem in FOUNDATIONS and target in LAYERS:
                found.append(f"{path.relative_to(bench)} (a foundation) imports {module}")
            elif here in LAYERS and target in LAYERS and LAYERS.index(target) > LAYERS.index(here):
                found.append(f"{path.relative_to(bench)} ({here}) imports {module} (a later layer)")
    return found


def test_each_layer_imports_only_from_the_layers_before_it():
    assert layering_violations(BENCH) == []


def test_the_layering_check_catches_an_upward_import(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "loading.py").write_text("from bench.running.runner import Runner\n")
    (tmp_path / "store.py").write_text("from bench.api.steering import Steering\n")
    assert len(layering_violations(tmp_path)) == 2


def test_every_package_is_a_layer_and_none_is_crowded():
    folders = [p for p in BENCH.iterdir() if p.is_dir() and (p / "__init__.py").exists()]
    assert {p.name for p in folders} == set(LAYERS)
    for folder in [BENCH, *folders]:
        modules = [p for p in folder.glob("*.py") if p.name != "__init__.py"]
        assert len(modules) <= MAX_PER_FOLDER, f"{folder.name}/ holds {len(modules)} modules"


def test_a_long_module_says_why_it_is_one_module():
    for path in sorted([*BENCH.rglob("*.py"), *(ROOT / "methods").rglob("*.py")]):
        lines = len(path.read_text().splitlines())
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        assert lines <= LONG or "Why one module" in doc, f"{path.relative_to(ROOT)}: {lines} lines, no reason given"


# ------------------------------------------------------------------------------------------ import cycles
# Cycles allowed for now, each with why (none: a lazy import that hides a cycle is still a cycle).
KNOWN_CYCLES: dict[frozenset[str], str] = {}


def _module_name(path: Path, top: Path) -> str:
    parts = list(path.relative_to(top.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(path: Path, name: str, known: set[str]) -> set[str]:
    """The known modules a file imports when its code runs: at module level or inside a function, absolute or
    relative, with their parent packages (Python imports those first); not what ``if TYPE_CHECKING:`` imports."""
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []  # type hints only: never imported at run time
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            targets |= {f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names}
    own = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}  # packages already importing
    found = set()
    for target in targets & known:
        parts = target.split(".")
        found |= {target} | ({".".join(parts[:i]) for i in range(1, len(parts))} & known) - own
    return found - {name}


def import_cycles(*tops: Path) -> list[str]:
    """Every import cycle among the modules under ``tops``, one line each (``a -> b -> a``)."""
    files = {_module_name(p, top): p for top in tops for p in sorted(top.rglob("*.py"))}
    graph = {name: _runtime_imports(path, name, set(files)) for name, path in files.items()}
    cycles = []
    for start in sorted(graph):  # the shortest way back to each module, found once per set of modules
        paths, queue = {start: [start]}, [start]
        while queue:
            here = queue.pop(0)
            for nxt in sorted(graph[here]):
                if nxt == start:
                    cycle = paths[here] + [start]
                    if min(cycle[:-1]) == start and frozenset(cycle) not in KNOWN_CYCLES:
                        cycles.append(" -> ".join(cycle))
                    queue = []
                    break
                if nxt not in paths:
                    paths[nxt] = paths[here] + [nxt]
                    queue.append(nxt)
    return cycles


def test_no_import_cycle_among_the_harness_and_its_plugins():
    assert import_cycles(BENCH, ROOT / "methods") == []


def test_the_cycle_check_sees_lazy_and_relative_imports_and_skips_type_checking(tmp_path):
    top = tmp_path / "bench"
    (top / "sub").mkdir(parents=True)
    for init in (top / "__init__.py", top / "sub" / "__init__.py"):
        init.write_text("")
    (top / "a.py").write_text("def f():\n    from bench import b\n")  # lazy: still a cycle
    (top / "b.py").write_text("import bench.a\n")
    (top / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from bench.d import D\n")
    (top / "d.py").write_text("from bench.c import C\n")  # c imports d for type hints only: no cycle
    (top / "sub" / "x.py").write_text("from . import y\n")
    (top / "sub" / "y.py").write_text("from .x import X\n")
    (top / "sub" / "__init__.py").write_text("from bench.sub.z import Z\n")  # a package and its own submodule:
    (top / "sub" / "z.py").write_text("from bench.sub.w import W\n")  # no cycle (the package is importing)
    (top / "sub" / "w.py").write_text("")
    assert import_cycles(top) == ["bench.a -> bench.b -> bench.a", "bench.sub.x -> bench.sub.y -> bench.sub.x"]
