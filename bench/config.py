"""The run configuration and the parsing of its user-facing pieces (coefficients, method options)."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any

from bench.dilemmas import DEFAULT_TARGET
from bench.errors import SteerbenchError
from bench.models import EMBEDDED_ALIAS

DEFAULT_N_DILEMMAS = None  # every dilemma that carries the target value (596 for Virtue/Truthfulness)


def _all_methods() -> list[str]:
    from methods import method_names  # the registry, read when a default config is built

    return method_names()


@dataclass
class RunConfig:
    model: str = EMBEDDED_ALIAS
    methods: list[str] = field(default_factory=lambda: _all_methods())
    coeffs: list[float] = field(default_factory=lambda: [-1.0, 0.0, 1.0])
    n_dilemmas: int | None = DEFAULT_N_DILEMMAS
    n_pairs: int = 200
    data_dir: str | None = None
    suffix_file: str | None = None
    results_dir: str = "results"
    run_name: str | None = None
    seed: int = 0
    n_seeds: int = 1  # training seeds seed, seed+1, ...: seeded methods are refit and evaluated per seed
    batch_size: int = 16
    prefix_cache: bool = True  # shared-prefix evaluation (same scores, fewer tokens); off: one full prompt per row
    dtype: str = "auto"
    device: str = "auto"
    target: str = DEFAULT_TARGET
    min_pmass: float = 0.5
    calibrate_sign: bool = True
    strength: str = "matched"  # matched: multiples of each method's KL-matched c*; raw: coefficients as given
    kl_budget: float = 0.1  # nats/token on held-out neutral text, for strength=matched
    trust_remote_code: bool = False
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def seeds(self) -> list[int]:
        return [self.seed + i for i in range(self.n_seeds)]

    def identity(self) -> dict:
        """What determines the results (not where they are written)."""
        d = dataclasses.asdict(self)
        for k in ("results_dir", "run_name", "batch_size", "device", "prefix_cache"):
            d.pop(k)
        return d


def parse_coeffs(spec: str | list) -> list[float]:
    parts = spec if isinstance(spec, list) else [p for p in str(spec).split(",") if p.strip()]
    out = []
    for p in parts:
        try:
            out.append(float(p))
        except (TypeError, ValueError):
            raise SteerbenchError(f"coefficient {str(p).strip()!r} is not a number; give a comma list such as -1,0,1") from None
    if any(c != c or c in (float("inf"), float("-inf")) for c in out):
        raise SteerbenchError(f"coefficients must be finite numbers, got {spec!r}")
    dupes = sorted({c for c in out if out.count(c) > 1})
    if dupes:
        raise SteerbenchError(f"coefficient {dupes[0]:g} is listed twice in {spec!r}; each coefficient once")
    if 0.0 not in out:
        raise SteerbenchError(f"coefficients {spec!r} must include 0 (the unsteered baseline every effect is measured from)")
    return sorted(out)


def _convert(raw: Any, typ: Any, where: str) -> Any:
    name = typ if isinstance(typ, str) else getattr(typ, "__name__", str(typ))
    try:
        if typ is bool:
            if isinstance(raw, bool):
                return raw
            low = str(raw).lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if typ in (int, float, str):
            return typ(raw)
        return raw
    except (TypeError, ValueError):
        raise SteerbenchError(f"option {where} expects {name}, got {raw!r}") from None


def build_options(method_cls: type, given: dict[str, Any]) -> Any:
    """Instantiate ``method_cls.Options`` from user strings, with one-line errors."""
    opts_cls = method_cls.Options
    hints = typing.get_type_hints(opts_cls)
    known = {f.name for f in dataclasses.fields(opts_cls)}
    kwargs = {}
    for key, raw in given.items():
        attr = key.replace("-", "_")
        if attr not in known:
            accepted = ", ".join(sorted(k.replace("_", "-") for k in known)) or "none"
            raise SteerbenchError(f"unknown option {method_cls.name}.{key}; {method_cls.name} accepts: {accepted}")
        kwargs[attr] = _convert(raw, hints[attr], f"{method_cls.name}.{key}")
    options = opts_cls(**kwargs)
    validate = getattr(options, "validate", None)  # optional: range checks with one-line SteerbenchErrors
    if callable(validate):
        validate()
    return options


def parse_method_args(extra: list[str]) -> dict[str, dict[str, Any]]:
    """``--repeng.layers 5-9``, ``--innerpissa.rank=8``, ``--innerpissa.rotate-u`` (flag = true),
    ``--innerpissa.no-rotate-u`` (false)."""
    out: dict[str, dict[str, Any]] = {}
    i = 0
    while i < len(extra):
        arg = extra[i]
        if not arg.startswith("--") or "." not in arg:
            raise SteerbenchError(f"unrecognised argument {arg!r}; method options look like --METHOD.OPTION VALUE")
        key, eq, value = arg[2:].partition("=")
        method, _, opt = key.partition(".")
        if not eq:
            if i + 1 < len(extra) and not extra[i + 1].startswith("--"):
                value, i = extra[i + 1], i + 1
            elif opt.startswith("no-"):
                opt, value = opt[3:], "false"
            else:
                value = "true"
        out.setdefault(method, {})[opt] = value
        i += 1
    return out
