"""The method registry: one line per plugin, ``name -> "module:Class"``.

Imports are lazy so that listing methods or running one does not import every optional backend.
To add a method: write ``methods/my_method.py`` with a ``SteeringMethod`` subclass and add one line here.
Out of the tree: decorate the class with ``@register_method("my-method")`` in your own module, and name it
with ``--plugin my_module:MyMethod`` (or ``--plugin path/to/my_method.py:MyMethod``), which imports it
before any method name is checked (``load_plugin``).
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, TypeVar

from bench.errors import SteerbenchError

if TYPE_CHECKING:
    from bench.api.steering import SteeringMethod

M = TypeVar("M", bound=type)

REGISTRY: dict[str, str] = {
    "prompting": "methods.prompting:Prompting",
    "random": "methods.random_vector:RandomVector",
    "repeng": "methods.repeng_pca:RepengPCA",
    "innerpissa": "methods.innerpissa:InnerPiSSA",
    "antipasto": "methods.antipasto:AntiPaSTO",
    "svd-steer": "methods.svd_steer:SVDSteer",
    "lora": "methods.lora:Lora",
    "sft": "methods.sft:SFT",
}


def method_names() -> list[str]:
    return list(REGISTRY)


def get_method_class(name: str) -> "type[SteeringMethod]":
    if name not in REGISTRY:
        raise SteerbenchError(f"unknown method {name!r}; known methods: {', '.join(REGISTRY)}")
    module_name, class_name = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)


def parse_method_list(spec: str) -> list[str]:
    """'all' or a comma list of registry names; a blank entry or an unknown name fails with the known list."""
    names = method_names() if spec.strip() == "all" else [s.strip() for s in spec.split(",")]
    if "" in names:
        raise SteerbenchError(f"--methods {spec!r} has a blank entry; accepted: 'all' or a comma list of "
                              f"registry names ({', '.join(REGISTRY)})")
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise SteerbenchError(f"unknown method {unknown[0]!r}; known methods: {', '.join(REGISTRY)}")
    return list(dict.fromkeys(names))


def _register(name: object, target: str, where: str) -> None:
    if not isinstance(name, str) or not name.strip() or "," in name or name == "all":
        raise SteerbenchError(f"{where}: registry name {name!r} is not accepted; accepted: a non-empty name without "
                              "commas, other than 'all' (the class attribute name)")
    if REGISTRY.get(name, target) != target:
        raise SteerbenchError(f"{where}: method name {name!r} is already registered ({REGISTRY[name]}); "
                              "give the plugin another name")
    REGISTRY[name] = target


def _check_method_class(cls: object, where: str) -> "type[SteeringMethod]":
    from bench.api.steering import SteeringMethod

    if not (isinstance(cls, type) and issubclass(cls, SteeringMethod)):
        raise SteerbenchError(f"{where}: {getattr(cls, '__qualname__', cls)!r} is not a SteeringMethod subclass; "
                              "accepted: a class deriving from bench.api.steering.SteeringMethod")
    return cls


def register_method(name: str) -> Callable[[M], M]:
    """Class decorator: registers a ``SteeringMethod`` under ``name`` when its module is imported (the class
    attribute ``name`` is set to it, or must equal it). The same class registered again is a no-op; another
    class under a registered name is refused in one line.

    Example::

        @register_method("mean-diff")
        class MeanDiff(SteeringMethod): ...
    """
    def decorate(cls: M) -> M:
        where = f"register_method({name!r})"
        _check_method_class(cls, where)
        if getattr(cls, "name", name) != name:
            raise SteerbenchError(f"{where}: the class {cls.__qualname__} says its name is {cls.name!r}; "
                                  "accepted: the same name in both places, or the class attribute left out")
        _register(name, f"{cls.__module__}:{cls.__qualname__}", where)
        cls.name = name
        return cls

    return decorate


def _import(module: str, where: str):
    """A module by dotted name, or a ``.py`` file by path (imported under its stem)."""
    try:
        if module.endswith(".py"):
            path = Path(module).expanduser().resolve()
            if not path.is_file():
                raise SteerbenchError(f"{where}: plugin file {module!r} does not exist")
            if path.stem in sys.modules and getattr(sys.modules[path.stem], "__file__", None) == str(path):
                return sys.modules[path.stem]
            spec = importlib.util.spec_from_file_location(path.stem, path)
            loaded = importlib.util.module_from_spec(spec)
            sys.modules[path.stem] = loaded  # so that the registry's "module:Class" finds it again
            try:
                spec.loader.exec_module(loaded)
            except BaseException:
                sys.modules.pop(path.stem, None)
                raise
            return loaded
        return importlib.import_module(module)
    except SteerbenchError:
        raise
    except Exception as exc:  # ImportError, SyntaxError, an error in the plugin's own module code
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise SteerbenchError(f"{where}: cannot import {module!r} ({type(exc).__name__}: {first}); accepted: an "
                              "importable module (on PYTHONPATH) or a path to a .py file") from None


def load_plugin(spec: str) -> str:
    """Import ``"module:Class"`` (or ``"path/to/file.py:Class"``) and register the class under its class
    attribute ``name``; returns that name. Every mistake is one line naming the spec."""
    where = f"--plugin {spec!r}"
    module, sep, class_name = str(spec).strip().rpartition(":")
    if not sep or not module or not class_name.isidentifier():
        raise SteerbenchError(f"{where} is not accepted; accepted: module:Class or path/to/file.py:Class")
    imported = _import(module, where)
    if not hasattr(imported, class_name):
        raise SteerbenchError(f"{where}: {module} has no class {class_name!r}")
    cls = _check_method_class(getattr(imported, class_name), where)
    name = getattr(cls, "name", None)
    if isinstance(name, str) and name in REGISTRY and get_method_class(name) is cls:
        return name  # registered already (by its own @register_method, or an earlier --plugin)
    _register(name, f"{imported.__name__}:{class_name}", where)
    return name
