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
