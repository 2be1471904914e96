"""A fitted steering whose every ``apply()`` is checked by the model-integrity guard on exit.

The artefact store hands this out instead of the plugin's own ``Steering``, so every caller (the c* search,
the sign calibration, the evaluations, the examples, a notebook) is covered without knowing about it. It is
a thin proxy: every attribute read, write and method call but ``apply`` goes to the plugin's steering, and
``isinstance(guarded, ResidualSteering)`` holds when the plugin's steering is one.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

from bench.api.steering import Steering
from bench.running.integrity import watch

_OWN = frozenset({"apply", "unwrapped", "_inner", "_plugin"})


class GuardedSteering(Steering):
    def __init__(self, inner: Steering, plugin: str):
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "_plugin", plugin)

    def __getattribute__(self, name: str) -> Any:
        # Everything the contract declares (and a plugin adds) is the plugin's own: c0_is_base,
        # supported_coeffs (a class or an instance attribute), first_steered_layer, system_prompt, save ...
        if name in _OWN or (name.startswith("__") and name != "__class__"):
            return object.__getattribute__(self, name)
        inner = object.__getattribute__(self, "_inner")
        return type(inner) if name == "__class__" else getattr(inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._inner, name, value)

    def __delattr__(self, name: str) -> None:
        delattr(self._inner, name)

    def __repr__(self) -> str:
        return f"guarded {self._inner!r}"

    @property
    def unwrapped(self) -> Steering:
        """The plugin's own steering (unchecked)."""
        return self._inner

    @contextlib.contextmanager
    def apply(self, model, coeff: float) -> Iterator[Any]:
        inner = self._inner
        if coeff == 0 and inner.c0_is_base and type(inner).apply is Steering.apply:
            yield model  # the contract's c=0: the plugin is not called, nothing to check
            return
        with watch(model, self._plugin, f"apply(c={coeff:+g})"), inner.apply(model, coeff) as steered:
            yield steered

    def save(self, path) -> None:  # abstract in the contract; reached through __getattribute__ anyway
        self._inner.save(path)
