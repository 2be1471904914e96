"""The plugin contract: a ``SteeringMethod`` learns from honesty pairs and returns a ``Steering``.

A ``Steering`` makes the model behave steered at a signed coefficient ``c`` (``c=0`` off, ``c>0``
more honest), either by changing the model inside ``apply`` (hooks, adapters, swapped weights) or
by changing the system prompt (``system_prompt``). It saves and loads its own artefacts so the
harness can cache them by config hash.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, ContextManager, Iterator

from bench.api.pairs import HonestyPair

if TYPE_CHECKING:  # types only (a plugin's code hash follows runtime imports: bench.running.code_hash)
    from transformers import PreTrainedModel

    from bench.model.loading import LoadedModel


@dataclass
class FitContext:
    """Everything a method may use while fitting. All methods see the same pairs and seed."""

    loaded: LoadedModel
    pairs: list[HonestyPair]
    seed: int
    batch_size: int
    # Fit (or load from cache) another registered method, e.g. random borrows repeng's norms.
    fit_method: Callable[..., "Steering"] = field(repr=False)
    log_dir: Path | None = None  # where a method may write training curves
    # Base-model continuations of the pairs under each persona: continuations(n_pairs or None, max_new_tokens)
    continuations: Callable[..., Any] | None = field(default=None, repr=False)


class Steering(ABC):
    """A fitted intervention, applied with a signed coefficient."""

    # Coefficients this steering can realise; None means any real number (continuous methods).
    supported_coeffs: ClassVar[tuple[float, ...] | None] = None
    # Whether c=0 is exactly the unsteered model, so the shared c=0 evaluation can be reused.
    c0_is_base: ClassVar[bool] = True

    @contextlib.contextmanager
    def apply(self, model: PreTrainedModel, coeff: float) -> Iterator[PreTrainedModel]:
        """Context in which ``model`` behaves steered at ``coeff``; yields the model to call. The harness
        calls this; plugins implement ``steer``, which is never called at c=0 when ``c0_is_base``."""
        if coeff == 0 and self.c0_is_base:
            yield model
            return
        with self.steer(model, coeff) as steered:
            yield steered

    def steer(self, model: PreTrainedModel, coeff: float) -> ContextManager[PreTrainedModel]:
        """Change the model for c != 0 inside a context (hooks, adapters, swapped weights) and undo it on
        exit; yield the model to call. Default: no change (a method that only changes the prompt)."""
        return contextlib.nullcontext(model)

    def first_steered_layer(self) -> int | None:
        """The lowest decoder layer whose computation or output this steering changes; None when it may
        change anything (the prompt, the embeddings, every weight). Every layer below it must compute what
        the unsteered model computes: the harness then replays those layers' output from one unsteered
        pass instead of recomputing them (``bench.model.replay``; same numbers, fewer FLOPs). A plugin that
        leaves this at None is always correct, only slower."""
        return None

    def trained_orientation(self) -> int | None:
        """What the fit's own training record says about its orientation: +1 when its training made +c the
        honest end, -1 when -c, None when it keeps no such record. Recorded beside the sign calibration,
        never used to set the sign (the calibration alone decides)."""
        return None

    def n_parameters(self) -> int | None:
        """How many numbers the fit trained (Efficiency = Effect / log10 of it): frozen bases, copies of the
        model's own weights and constrained entries (a skew matrix's lower half) do not count. None: unknown,
        and the harness counts the tensors the artefact saved (``bench.api.parameters``)."""
        return None

    def system_prompt(self, coeff: float, base: str | None) -> str | None:
        """The system message to use at ``coeff``; identical to ``base`` unless the method prompts."""
        return base

    def supports(self, coeff: float) -> bool:
        return self.supported_coeffs is None or coeff in self.supported_coeffs

    @abstractmethod
    def save(self, path: Path) -> None: ...

    def describe(self) -> dict[str, Any]:
        """Facts recorded with every result (target layers, norms, ...): a steering's ``info`` by default."""
        return dict(getattr(self, "info", {}) or {})


def option(default: Any, help: str) -> Any:
    """A field of a method's ``Options`` with its help text, which ``bench list`` prints beside the default."""
    return field(default=default, metadata={"help": help})


class SteeringMethod(ABC):
    """A registry entry. Subclasses set ``name``, an ``Options`` dataclass, ``fit`` and ``load``."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    # Whether fitting makes random choices (init, batch order, sampling): such methods are refit once per
    # training seed with --seeds N; deterministic ones are fit once and their rows shared by every seed.
    seeded: ClassVar[bool] = True
    # Whether the harness calibrates the sign on the training pairs (False for the random noise floor: a
    # best-of-two direction is no longer a noise floor).
    sign_calibrated: ClassVar[bool] = True

    @dataclass
    class Options:
        pass

    def __init__(self, options: "SteeringMethod.Options | None" = None):
        self.options = options if options is not None else self.Options()

    def resolved(self, loaded: "LoadedModel") -> "SteeringMethod.Options":
        """The options with every machine-dependent default made explicit (AntiPaSTO's epochs depend on the
        device): the harness hashes these, so a fit on a GPU and one on a CPU never share a cache key."""
        return self.options

    @abstractmethod
    def fit(self, ctx: FitContext) -> Steering: ...

    @abstractmethod
    def load(self, path: Path, ctx: FitContext) -> Steering: ...


class NoSteering(Steering):
    """The unsteered model: what every method's c=0 is compared against."""

    def save(self, path: Path) -> None:
        pass
