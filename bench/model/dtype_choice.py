"""Which dtype a run computes in (``--dtype auto``): bf16 where the hardware does bf16 natively, else fp32.

bf16 is only fast where the CPU has bf16 instructions (AVX512-BF16, AMX). On an AVX2-only CPU a bf16
``F.linear`` at SmolLM2's shapes ran ~10x slower than fp32 (19 vs 198 GFLOP/s, torch 2.13, 2 threads), so
a run in bf16 there takes hours instead of minutes. Whether this CPU is such a CPU is decided by timing
the operation the model runs: one ``F.linear`` at the model's (tokens x hidden x intermediate) shape in
each dtype. The timing is cached per machine, torch version, CPU capability and thread count, so the same
machine always makes the same choice (the dtype is in every cache key, so a flip would refit everything).
On CUDA the device says what it supports. An explicit ``--dtype`` always wins.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from bench.errors import SteerbenchError

log = logging.getLogger(__name__)

DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp32": torch.float32, "float32": torch.float32,
          "fp16": torch.float16, "float16": torch.float16}
SHORT = {torch.bfloat16: "bf16", torch.float32: "fp32", torch.float16: "fp16"}
PROBE_TOKENS = 256  # rows of the probe's F.linear: a batch of prompts' worth of tokens
NATIVE_RATIO = 1.0  # bf16 is chosen where it runs at least as fast as fp32
_WARNED: set[str] = set()


@dataclass(frozen=True)
class DtypeChoice:
    dtype: torch.dtype
    reason: str  # one line, logged and recorded in environment.json
    gflops: dict[str, float] = field(default_factory=dict)  # measured F.linear rate per dtype, where probed

    @property
    def name(self) -> str:
        return SHORT[self.dtype]

    def as_dict(self) -> dict:
        return {"dtype": self.name, "reason": self.reason, "linear_gflops": self.gflops}


def parse_dtype(requested: str) -> torch.dtype | None:
    """The dtype a ``--dtype`` value names (None for auto); a one-line error for anything else."""
    if requested == "auto":
        return None
    if requested not in DTYPES:
        raise SteerbenchError(f"unknown dtype {requested!r}; accepted: auto, {', '.join(sorted(DTYPES))}")
    return DTYPES[requested]


def cpu_capability() -> str:
    """What torch's CPU kernels use here: AVX512, AVX2, DEFAULT, SVE256 ... (ATEN_CPU_CAPABILITY lowers it)."""
    return torch.backends.cpu.get_cpu_capability()


def measure_linear_gflops(hidden: int, intermediate: int, tokens: int = PROBE_TOKENS, repeats: int = 5) -> dict[str, float]:
    """GFLOP/s of one ``F.linear`` (tokens x hidden -> intermediate) in bf16 and fp32, best of ``repeats``."""
    rates = {}
    gen = torch.Generator().manual_seed(0)
    for name in ("fp32", "bf16"):
        x = torch.randn(tokens, hidden, generator=gen).to(DTYPES[name])
        w = torch.randn(intermediate, hidden, generator=gen).to(DTYPES[name])
        with torch.inference_mode():
            torch.nn.functional.linear(x, w)  # warm-up: kernel selection, first-touch allocation
            best = float("inf")
            for _ in range(repeats):
                start = time.perf_counter()
                torch.nn.functional.linear(x, w)
                best = min(best, time.perf_counter() - start)
        rates[name] = round(2 * tokens * hidden * intermediate / max(best, 1e-9) / 1e9, 1)
    return rates


def cpu_model() -> str:
    """The CPU's marketing name where Linux says it, else what platform knows."""
    try:
        return next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def _machine_key(hidden: int, intermediate: int) -> str:
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "")
    return (f"{platform.node()}|{cpu_model()}|torch {torch.__version__}|{cpu_capability()}|onednn {isa}|"
            f"threads {torch.get_num_threads()}|{hidden}x{intermediate}")


def cached_linear_gflops(hidden: int, intermediate: int, cache_file: Path | None = None) -> dict[str, float]:
    """``measure_linear_gflops``, measured once per machine and shape (a JSON file in the user's cache)."""
    from bench.model.packaged import cache_root

    path = cache_file or cache_root() / "dtype_probe.json"
    key = _machine_key(hidden, intermediate)
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    if key not in known:
        known[key] = measure_linear_gflops(hidden, intermediate)
        try:
            from bench.store import atomic_write_json

            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(path, known)
        except OSError as exc:  # a read-only home still runs; it only measures again next time
            log.debug("could not cache the dtype probe in %s: %s", path, exc)
    return known[key]


def _cpu_reason(rates: dict[str, float], chosen: str) -> str:
    ratio = rates["fp32"] / max(rates["bf16"], 1e-9)
    where = f"this CPU ({cpu_capability()})"
    measured = f"F.linear at the model's shapes: bf16 {rates['bf16']:g}, fp32 {rates['fp32']:g} GFLOP/s"
    if rates["bf16"] >= NATIVE_RATIO * rates["fp32"]:
        return f"dtype {chosen}: {where} runs bf16 natively ({measured})"
    return f"dtype {chosen}: {where} has no native bf16; bf16 would be ~{ratio:.0f}x slower here ({measured})"


def choose_dtype(requested: str, device: torch.device, hidden: int, intermediate: int,
                 rates: Callable[[int, int], dict[str, float]] = cached_linear_gflops) -> DtypeChoice:
    """The run's dtype and why. ``rates``: the CPU probe (tests replace it)."""
    asked = parse_dtype(requested)
    if device.type == "cuda":
        bf16_ok = torch.cuda.is_bf16_supported()
        if asked is not None:
            return DtypeChoice(asked, f"dtype {SHORT[asked]}: as asked (--dtype {requested})")
        if bf16_ok:
            return DtypeChoice(torch.bfloat16, f"dtype bf16: {device} supports bf16")
        return DtypeChoice(torch.float16, f"dtype fp16: {device} has no bf16; fp16 is its fast half precision")
    if device.type != "cpu":
        if asked is not None:
            return DtypeChoice(asked, f"dtype {SHORT[asked]}: as asked (--dtype {requested})")
        return DtypeChoice(torch.float32, f"dtype fp32: no bf16 probe for {device.type} devices; pass --dtype to choose")
    if asked is not None and asked != torch.bfloat16:
        return DtypeChoice(asked, f"dtype {SHORT[asked]}: as asked (--dtype {requested})")
    measured = rates(hidden, intermediate)
    native = measured["bf16"] >= NATIVE_RATIO * measured["fp32"]
    if asked is None:
        chosen = torch.bfloat16 if native else torch.float32
        return DtypeChoice(chosen, _cpu_reason(measured, SHORT[chosen]), measured)
    reason = _cpu_reason(measured, "bf16").replace("dtype bf16:", "dtype bf16 (as asked):")
    if not native and reason not in _WARNED:  # once per process, however many times the model is loaded
        _WARNED.add(reason)
        log.warning("%s; --dtype auto would choose fp32", reason)
    return DtypeChoice(torch.bfloat16, reason, measured)
