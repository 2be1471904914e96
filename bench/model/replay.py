"""Replay of the decoder layers a steering leaves alone: below its first steered layer, recompute nothing.

Most methods change the model only from some decoder layer ``k`` on (the default layer range starts at
30% of depth), so every steered forward pass computes layers ``0..k-1`` exactly as the unsteered model
does. A loop of forward passes (all DailyDilemmas prompts, the held-out texts, the calibration pairs) is
therefore run once with layers ``k..`` switched off to record what enters layer ``k``, and every steered
run of the same loop replays those hidden states into layer ``k`` with layers ``0..k-1`` switched off.

The numbers are the same bit for bit: layer ``k`` receives the very tensor the full pass would have
computed (same tokens, same batches, same kernels), and the layers above run as before. The KV cache of a
switched-off layer holds a one-wide placeholder per token, so cache lengths and attention masks are what
the model expects; nothing ever attends to it. Each replayed forward checks that its tokens are the
recorded ones, so a loop that is not deterministic fails loudly instead of mixing prompts.

The contract this relies on is ``Steering.first_steered_layer``: the lowest decoder layer whose
computation or output the steering changes (``None`` when it may change anything, e.g. the prompt).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, ContextManager, Hashable, Iterator, TypeVar

import torch

from bench.errors import SteerbenchError
from bench.model.layers import decoder_layers

T = TypeVar("T")


@dataclass
class Recording:
    """What entered layer ``layer`` on each forward of one loop, and the tokens of each forward."""

    layer: int
    hidden: list[torch.Tensor] = field(default_factory=list)
    tokens: list[torch.Tensor] = field(default_factory=list)


def _switched_off(index: int) -> Callable[..., torch.Tensor]:
    """A decoder layer's stand-in: returns its input, and grows the KV cache by one-wide placeholders so
    the cache's length (which sets positions and masks) stays that of the real model."""

    def forward(hidden_states: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        if cache is not None:
            placeholder = hidden_states.new_zeros(hidden_states.shape[0], 1, hidden_states.shape[1], 1)
            cache.update(placeholder, placeholder, index)
        return hidden_states

    return forward


class LayerReplay:
    """Records and replays, for one model, the hidden states entering a steering's first steered layer."""

    def __init__(self, model: torch.nn.Module, enabled: bool = True):
        self.model = model
        self.enabled = enabled
        self.recording = False  # True while a recording loop runs (its outputs are placeholders)
        self._recordings: dict[tuple[Hashable, int], Recording] = {}

    def run(self, first_layer: int | None, key: Hashable, loop: Callable[[], T]) -> T:
        """Run ``loop`` (a deterministic sequence of forward passes of the model, steered from
        ``first_layer`` on) with layers below ``first_layer`` replayed from a recording of the same loop,
        ``key``; the recording is made on first use. Without a first layer the loop runs as is."""
        n_layers = len(decoder_layers(self.model))
        if not self.enabled or not first_layer or first_layer >= n_layers:
            return loop()
        recording = self._recordings.get((key, first_layer))
        if recording is None:
            recording = Recording(first_layer)
            with self.record(recording):
                loop()
            self._recordings[(key, first_layer)] = recording
        with self.replay(recording):
            return loop()

    def record(self, recording: Recording, full_pass: bool = False) -> ContextManager[None]:
        """Forward passes inside append to ``recording``; the layers from ``recording.layer`` on are switched
        off (the passes' outputs are placeholders) unless ``full_pass``, e.g. a training step's c=0 pass."""
        return self._patched(recording, replay=False, full_pass=full_pass)

    def replay(self, recording: Recording) -> ContextManager[None]:
        """Forward passes inside take ``recording``'s hidden states, in order, and skip the layers below."""
        return self._patched(recording, replay=True)

    @contextlib.contextmanager
    def _patched(self, recording: Recording, replay: bool, full_pass: bool = False) -> Iterator[None]:
        layers = decoder_layers(self.model)
        k = recording.layer
        # Recording switches off the layers from k on (their outputs are never used); replaying, those below k.
        off = range(k) if replay else range(k, k if full_pass else len(layers))
        saved = {i: layers[i].__dict__.get("forward") for i in off}
        done = [0]  # forwards of this loop replayed so far (the embeddings run before layer k in each)
        handles = []

        def on_tokens(module, args):
            tokens = args[0].detach()
            if not replay:
                recording.tokens.append(tokens.clone())
                return
            i = done[0]
            if i >= len(recording.tokens) or not torch.equal(recording.tokens[i], tokens):
                raise SteerbenchError(f"layer replay: forward {i} of this loop has other tokens than the recorded "
                                      "one (the loop is not deterministic); rerun with --no-layer-replay")

        def on_layer_input(module, args, kwargs):
            hidden = args[0] if args else kwargs["hidden_states"]
            if not replay:
                recording.hidden.append(hidden.detach().clone())
                return None
            i = done[0]
            done[0] += 1
            if i >= len(recording.hidden):
                raise SteerbenchError(f"layer replay: forward {i} of this loop was never recorded; "
                                      "rerun with --no-layer-replay")
            stored = recording.hidden[i]
            if stored.shape != hidden.shape:
                raise SteerbenchError(f"layer replay: forward {i} expects hidden states of shape {tuple(stored.shape)}, "
                                      f"got {tuple(hidden.shape)}; rerun with --no-layer-replay")
            if args:
                return (stored, *args[1:]), kwargs
            return args, {**kwargs, "hidden_states": stored}

        try:
            for i in off:
                layers[i].forward = _switched_off(i)
            handles.append(self.model.get_input_embeddings().register_forward_pre_hook(on_tokens))
            handles.append(layers[k].register_forward_pre_hook(on_layer_input, with_kwargs=True))
            self.recording = not replay and not full_pass
            yield
        finally:
            self.recording = False
            for h in handles:
                h.remove()
            for i, previous in saved.items():
                if previous is None:
                    layers[i].__dict__.pop("forward", None)
                else:
                    layers[i].forward = previous
