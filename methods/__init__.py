"""The method registry: one line per plugin, ``name -> "module:Class"``.

Imports are lazy so that listing methods or running one does not import every optional backend.
To add a method: write ``methods/my_method.py`` with a ``SteeringMethod`` subclass and add one line here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from bench.errors import SteerbenchError

if TYPE_CHECKING:
    from bench.api.steering import SteeringMethod

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
    """'all' or a comma list of registry names; unknown names fail with the known list."""
    names = method_names() if spec.strip() == "all" else [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise SteerbenchError(f"no methods given in {spec!r}; known methods: {', '.join(REGISTRY)}")
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise SteerbenchError(f"unknown method {unknown[0]!r}; known methods: {', '.join(REGISTRY)}")
    return list(dict.fromkeys(names))
