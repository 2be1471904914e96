"""The model-integrity guard: a plugin must leave the shared model exactly as it found it.

Every method is fitted on, and steers, the one loaded model, and the c=0 evaluation is computed once and
shared by all of them: a plugin that leaves one hook, one changed weight or one swapped module behind
silently corrupts every method scored after it. ``watch`` takes a cheap ``Fingerprint`` of the model before
a plugin's ``fit()`` or ``apply()`` and compares it afterwards (also when the plugin raised, since the
runner goes on with the next method). ``check_boundary`` tests, once per fitted steering, the promise layer
replay relies on (``Steering.first_steered_layer``): what enters that layer is the unsteered model's.

The fingerprint is per parameter and buffer (shape, dtype, device, a float64 sum and sum of absolute
values), per module (type, training mode, the ids of its forward / pre / backward hooks, an instance-level
``forward``) and the global module hooks. Sums miss a change that keeps both (two weights swapped), which
no plugin does by accident. The price is one read of the weights per watched ``fit()`` / ``apply()`` (the
fingerprint a watch ends with is where the next one starts, unless a tensor was written in between): about
0.3 s on SmolLM2-135M in bf16 on one CPU thread, some 160 watches in a default run.
"""

from __future__ import annotations

import contextlib
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

import torch
import torch.nn.modules.module as torch_module

from bench.errors import SteerbenchError
from bench.model.layers import decoder_layers
from bench.model.padding import encode, left_padded_batches, model_device

if TYPE_CHECKING:
    from bench.api.steering import Steering

HOOK_KINDS = (("_forward_hooks", "a forward hook"), ("_forward_pre_hooks", "a forward pre-hook"),
              ("_backward_hooks", "a backward hook"), ("_backward_pre_hooks", "a backward pre-hook"))
# transformers installs these on the first forward that asks for hidden states and keeps them: inert unless
# a forward collects outputs, so they change nothing (a hook any plugin leaves is still seen)
INERT_HOOKS = ("transformers.utils.output_capturing",)
GLOBAL_HOOKS = ("_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
                "_global_backward_pre_hooks")


@dataclass(frozen=True)
class ModuleState:
    type: str
    training: bool
    hooks: tuple[tuple[int, ...], ...]  # hook ids per HOOK_KINDS entry: a hook removed and another added differ
    forward_override: bool


@dataclass(frozen=True)
class Fingerprint:
    tensors: dict[str, tuple]  # "parameter <name>" / "buffer <name>" -> (shape, dtype, device, sum, abs sum)
    modules: dict[str, ModuleState]
    global_hooks: tuple[tuple[int, ...], ...]


CHUNK = 1 << 22  # elements summed at a time: a float64 copy of 32 MB, not of the whole embedding


def _tensor_state(t: torch.Tensor) -> tuple:
    flat = t.detach().reshape(-1)
    total = absolute = 0.0
    for start in range(0, flat.numel(), CHUNK):  # a fixed order: the same tensor always gives the same sums
        part = flat[start:start + CHUNK].to(torch.float64)  # one widening copy serves both sums
        total += float(part.sum())
        absolute += float(part.abs_().sum())
    # hex: exact, and a NaN equals itself (a NaN weight is a fact about the model, not a change)
    return tuple(t.shape), str(t.dtype), str(t.device), total.hex(), absolute.hex()


def _tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {f"parameter {n}": p for n, p in model.named_parameters()} | {f"buffer {n}": b for n, b in model.named_buffers()}


def _hook_ids(hooks: dict) -> tuple[int, ...]:
    return tuple(i for i, fn in hooks.items() if getattr(fn, "__module__", None) not in INERT_HOOKS)


def _structure(model: torch.nn.Module) -> tuple[dict[str, ModuleState], tuple[tuple[int, ...], ...]]:
    modules = {name: ModuleState(f"{type(m).__module__}.{type(m).__qualname__}", m.training,
                                 tuple(_hook_ids(getattr(m, attr)) for attr, _ in HOOK_KINDS), "forward" in m.__dict__)
               for name, m in model.named_modules()}
    return modules, tuple(tuple(getattr(torch_module, g)) for g in GLOBAL_HOOKS)


def _writes(tensors: dict[str, torch.Tensor]) -> tuple | None:
    """Where each tensor lives and how often it was written in place (autograd's version counter), or None
    when a tensor keeps no counter (one made under inference mode)."""
    try:
        return tuple((name, t.data_ptr(), t._version) for name, t in tensors.items())
    except RuntimeError:
        return None


def fingerprint(model: torch.nn.Module) -> Fingerprint:
    """What a plugin could leave changed: weights, buffers, modules, hooks, forward overrides."""
    with torch.no_grad():
        tensors = {name: _tensor_state(t) for name, t in _tensors(model).items()}
    return Fingerprint(tensors, *_structure(model))


# The last fingerprint taken of each model, with the tensors' write counters at that moment: the next watch
# starts from it when nothing was written since (one read of the weights per watch instead of two).
_LAST: "weakref.WeakKeyDictionary[torch.nn.Module, tuple[tuple, Fingerprint]]" = weakref.WeakKeyDictionary()


def _remember(model: torch.nn.Module, print_: Fingerprint) -> None:
    writes = _writes(_tensors(model))
    if writes is None:
        _LAST.pop(model, None)
    else:
        _LAST[model] = (writes, print_)


def _current(model: torch.nn.Module) -> Fingerprint:
    """The model's fingerprint now: the remembered one when no tensor was written or moved since and the
    structure is the same (the sums are read again at the end of every watch, never reused there)."""
    remembered = _LAST.get(model)
    if remembered is not None and remembered[0] == _writes(_tensors(model)):
        modules, global_hooks = _structure(model)
        if (modules, global_hooks) == (remembered[1].modules, remembered[1].global_hooks):
            return remembered[1]
    print_ = fingerprint(model)
    _remember(model, print_)
    return print_


def _where(name: str) -> str:
    return name or "the model itself"


def differences(before: Fingerprint, after: Fingerprint) -> list[str]:
    """What changed, most telling first: modules, hooks, overrides, then tensors."""
    found = []
    for name in before.modules.keys() - after.modules.keys():
        found.append(f"module {_where(name)} is gone")
    for name in after.modules.keys() - before.modules.keys():
        found.append(f"module {_where(name)} ({after.modules[name].type}) was added")
    for name in before.modules.keys() & after.modules.keys():
        was, now = before.modules[name], after.modules[name]
        if was.type != now.type:
            found.append(f"module {_where(name)} is a {now.type}, was a {was.type}")
        for (_, what), old, new in zip(HOOK_KINDS, was.hooks, now.hooks):
            if set(new) - set(old):
                found.append(f"{what} is left on {_where(name)}")
            if set(old) - set(new):
                found.append(f"{what} was removed from {_where(name)}")
        if was.forward_override != now.forward_override:
            found.append(f"{_where(name)}.forward is {'overridden' if now.forward_override else 'no longer overridden'}")
        if was.training != now.training:
            found.append(f"{_where(name)} is left in {'training' if now.training else 'eval'} mode")
    for (kind, old, new) in zip(GLOBAL_HOOKS, before.global_hooks, after.global_hooks):
        if old != new:
            found.append(f"a global module hook ({kind.strip('_')}) is {'left' if set(new) - set(old) else 'removed'}")
    for name in sorted(before.tensors.keys() - after.tensors.keys()):
        found.append(f"{name} is gone")
    for name in sorted(after.tensors.keys() - before.tensors.keys()):
        found.append(f"{name} was added")
    for name in sorted(before.tensors.keys() & after.tensors.keys()):
        was, now = before.tensors[name], after.tensors[name]
        if was[:3] != now[:3]:
            found.append(f"{name} changed shape, dtype or device ({was[0]} {was[1]} {was[2]} -> {now[0]} {now[1]} {now[2]})")
        elif was != now:
            found.append(f"{name} differs")
    return sorted(found, key=lambda f: f.startswith(("parameter", "buffer")))  # structure first, stable


def check(before: Fingerprint, model: torch.nn.Module, plugin: str, when: str) -> None:
    """Raise one line naming ``plugin`` and the first change when ``model`` no longer matches ``before``."""
    after = fingerprint(model)
    _remember(model, after)
    changes = differences(before, after)
    if changes:
        more = f" (and {len(changes) - 1} more changes)" if len(changes) > 1 else ""
        raise SteerbenchError(f"model integrity: {plugin} left the model changed after {when}: {changes[0]}{more}")


@contextlib.contextmanager
def watch(model: torch.nn.Module, plugin: str, when: str) -> Iterator[None]:
    """The model must be as it was when the block ends, also when the block raised: a failed method is
    recorded and the run goes on, so a model it left changed would corrupt every later method."""
    before = _current(model)
    try:
        yield
    except Exception:
        check(before, model, plugin, f"a failed {when}")  # a changed model outranks the plugin's own error
        raise
    check(before, model, plugin, when)


# ------------------------------------------------------------------- the replay boundary, once per steering
def _input_of_layer(model: torch.nn.Module, layer: int, call) -> torch.Tensor:
    """The hidden state entering decoder layer ``layer`` during ``call()`` (the module at that index now,
    whatever a steering put there), as layer replay's own hook reads it."""
    seen: list[torch.Tensor] = []

    def hook(module, args, kwargs):
        seen.append((args[0] if args else kwargs["hidden_states"]).detach().clone())

    handle = decoder_layers(model)[layer].register_forward_pre_hook(hook, with_kwargs=True)
    try:
        call()
    finally:
        handle.remove()
    if len(seen) != 1:
        raise SteerbenchError(f"model integrity: decoder layer {layer} ran {len(seen)} times in one forward pass "
                              "(expected once); rerun with --no-layer-replay")
    return seen[0]


def boundary_coefficient(steering: "Steering") -> float | None:
    """The coefficient the boundary is checked at: +1, else the first nonzero one the steering supports."""
    if steering.supports(1.0):
        return 1.0
    return next((c for c in steering.supported_coeffs or () if c != 0), None)


def check_boundary(model: torch.nn.Module, tokenizer, steering: "Steering", plugin: str, texts: list[str]) -> None:
    """The hidden state entering ``steering.first_steered_layer()`` must be the unsteered model's, bit for
    bit, on one small batch of ``texts`` (layer replay feeds that layer from an unsteered pass). The same
    tokens go through both passes: replay records under the steered prompt too."""
    layer = steering.first_steered_layer()
    coeff = boundary_coefficient(steering)
    if layer is None or coeff is None or not texts or not 0 <= layer < len(decoder_layers(model)):
        return
    _, batch = next(left_padded_batches(encode(tokenizer, texts), len(texts), tokenizer.pad_token_id,
                                        model_device(model), sort=False))
    with torch.inference_mode():
        base = _input_of_layer(model, layer, lambda: model(**batch, use_cache=False, logits_to_keep=1))
        with steering.apply(model, coeff) as steered:
            moved = _input_of_layer(model, layer, lambda: steered(**batch, use_cache=False, logits_to_keep=1))
    if not torch.equal(base, moved):
        raise SteerbenchError(f"model integrity: {plugin} says its first steered layer is {layer}, but the hidden "
                              f"state entering layer {layer} changed under steering (the layers below are "
                              "steered): fix first_steered_layer()")
