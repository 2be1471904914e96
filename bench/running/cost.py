"""What a run will cost on this machine: a wall-time estimate, logged before the first fit.

The estimate is the reference run's stage times (``data/cost_reference.json``: the committed default
SmolLM2 run, measured stage by stage on a 2-core CPU with native bf16), scaled twice:
- by the plan: how many fits (not yet cached), KL searches, sign calibrations, probes and DailyDilemmas
  evaluations this run will do, over how many prompts and pairs, and each fit by its epochs against the
  reference fit's (``--antipasto.epochs 27`` costs nine times the reference's 3 epochs);
- by this machine and model: a forward probe (one no-grad forward of 8 x 64 tokens through the loaded
  model, the best of up to seven after a warm-up) against the same probe on the reference machine. The probe runs the
  real model in the run's dtype, so a bigger model, a slower CPU or a slow dtype all show in it.
Where the run's dtype is bf16 on a CPU without native bf16, the same probe on an fp32 copy says what
``--dtype fp32`` would take. Everything is counted from an empty cache except fits already cached, so a
resumed run finishes sooner than estimated; training cost is scaled like a forward pass (a stated
approximation: SFT trains in fp32 whatever the run's dtype).
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import pandas as pd
import torch

from bench.model.dtype_choice import SHORT
from bench.paths import data_file

REFERENCE_FILE = data_file("cost_reference.json")
PROBE_SHAPE = (8, 64)  # sequences x tokens: a scoring batch's size, large enough to be steady


def load_reference(path: Path = REFERENCE_FILE) -> dict:
    return json.loads(Path(path).read_text())


def forward_probe_seconds(model: torch.nn.Module, shape: tuple[int, int] = PROBE_SHAPE, repeats: int = 7) -> float:
    """Seconds of one no-grad forward of ``shape`` tokens: the best of ``repeats`` after a warm-up (of two
    where each pass takes over a second: the minimum is what the machine can do, the rest is noise)."""
    vocab = int(model.config.vocab_size)
    ids = torch.randint(5, min(vocab, 30000), shape, generator=torch.Generator().manual_seed(0))
    device = next(model.parameters()).device
    ids = ids.to(device)
    with torch.inference_mode():
        model(input_ids=ids[:1, :8], use_cache=False, logits_to_keep=1)  # warm-up
        best, spent, n = float("inf"), 0.0, 0
        while n < 2 or (n < repeats and spent < 3.0):  # a slow machine stops after two passes
            start = time.perf_counter()
            model(input_ids=ids, use_cache=False, logits_to_keep=1)
            took = time.perf_counter() - start
            best, spent, n = min(best, took), spent + took, n + 1
    return best


@dataclass(frozen=True)
class MethodPlan:
    name: str
    n_fits: int  # training seeds not yet in the cache
    kl_search: bool  # matched strength: a c* search (or, for a discrete method, KL at +-1)
    sign: bool
    evaluations: int  # steered DailyDilemmas chunks
    n_seeds: int = 1  # training seeds evaluated: each has its own c* search, sign calibration and probe
    epochs: float | None = None  # the fit's training epochs, where the method has them (resolved for this machine)


@dataclass(frozen=True)
class Estimate:
    seconds: float
    scale: float  # this machine's probe / the reference's
    dtype: str
    threads: int
    notes: tuple[str, ...]
    fp32_seconds: float | None = None  # where the run's dtype is slow here
    probe_seconds: float | None = None  # this machine's forward probe (kept in the run's work record)

    def line(self) -> str:
        text = f"estimated wall time: about {human(self.seconds)} here ({self.dtype}, {self.threads} threads"
        text += f"; {self.scale:.2g}x the reference machine's forward probe; fits already cached are skipped)"
        if self.fp32_seconds is not None:
            text += f"; --dtype fp32 would take about {human(self.fp32_seconds)}"
        return text + "".join(f"; {n}" for n in self.notes)


def plan_methods(cfg, method_classes: dict, artefacts) -> list[MethodPlan]:
    """What a run (``RunConfig``) will compute, method by method: fits not yet in ``artefacts`` (the run's
    ``ArtefactStore``), a c* search, sign calibration and probe per evaluated seed, the steered chunks, and
    each fit's epochs as the store resolves them for the fit."""
    steered = sum(c != 0 for c in cfg.coeffs)
    plans = []
    for name, cls in method_classes.items():
        seeds = cfg.seeds if cls.seeded else [cfg.seed]
        plans.append(MethodPlan(name, n_fits=sum(not artefacts.is_cached(name, s) for s in seeds),
                                kl_search=cfg.strength == "matched", sign=cls.sign_calibrated and cfg.calibrate_sign,
                                evaluations=steered * len(seeds) * max(len(cfg.budgets), 1), n_seeds=len(seeds),
                                epochs=getattr(artefacts.resolved_options(name), "epochs", None)))
    return plans


def human(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def reference_seconds(ref: dict, plans: Iterable[MethodPlan], n_prompts: int, n_pairs: int,
                      continuations: bool, calibration_pairs: int | None = None) -> tuple[float, tuple[str, ...]]:
    """The plan's wall time on the reference machine, and notes on what had no reference figure.
    ``calibration_pairs``: pairs the sign calibration scores (default: every training pair)."""
    per_eval = ref["scoring_seconds_per_evaluation"] * n_prompts / ref["n_prompts"] + ref["nll_seconds_per_evaluation"]
    total = ref["load_seconds"] + per_eval + ref["probe_seconds"]  # model load, the shared c=0 chunk, its probe
    total += ref["continuations_seconds"] * (calibration_pairs or n_pairs) / ref.get("calibration_pairs", 32) \
        if continuations else 0.0
    notes = []
    slowest = max(ref["fit_seconds"].values())
    for plan in plans:
        fit = ref["fit_seconds"].get(plan.name)
        if fit is None:
            fit = slowest  # a plugin without a reference: counted as the slowest reference fit
            notes.append(f"{plan.name} has no reference fit time (counted as the slowest, {human(fit)})")
        ref_epochs = ref.get("fit_epochs", {}).get(plan.name)
        if plan.epochs and ref_epochs:  # training time grows with the epochs (early stopping only shortens it)
            fit *= plan.epochs / ref_epochs
        total += plan.n_fits * fit * n_pairs / ref["n_pairs"]
        if plan.kl_search:
            total += plan.n_seeds * ref["kl_seconds"].get(plan.name, ref["kl_seconds"]["other"])
        # the reference calibrated on 32 pairs; calibration now scores every training pair
        sign = ref["sign_seconds"] * (calibration_pairs or n_pairs) / ref.get("calibration_pairs", 32)
        total += plan.n_seeds * (plan.sign * sign + ref["probe_seconds"]) + plan.evaluations * per_eval
    return total, tuple(notes)


def estimate(loaded, plans: list[MethodPlan], n_prompts: int, n_pairs: int, continuations: bool,
             ref: dict | None = None) -> Estimate:
    ref = ref or load_reference()
    base, notes = reference_seconds(ref, plans, n_prompts, n_pairs, continuations)
    probe = forward_probe_seconds(loaded.model)
    scale = probe / ref["forward_probe_seconds"]
    choice = getattr(loaded, "dtype_choice", None)
    fp32 = None
    slow_bf16 = (loaded.dtype == torch.bfloat16 and loaded.device.type == "cpu" and choice is not None
                 and choice.gflops and choice.gflops["bf16"] < choice.gflops["fp32"])
    if slow_bf16:
        wide = copy.deepcopy(loaded.model).to(torch.float32)
        fp32 = base * forward_probe_seconds(wide) / ref["forward_probe_seconds"]
        del wide
    dtype = SHORT.get(loaded.dtype, str(loaded.dtype))
    return Estimate(base * scale, scale, dtype, torch.get_num_threads(), notes, fp32, probe)


def build_reference(run_dir: Path, model: torch.nn.Module) -> dict:
    """The reference figures from a finished default run's ``status.json`` (every method, matched strength,
    one seed, from an empty cache) and this machine's forward probe on the run's model and dtype."""
    status = json.loads((run_dir / "status.json").read_text())
    run, methods = status["_run"], {k: v for k, v in status.items() if not k.startswith("_")}
    first = next(iter(run["processes"].values()))  # the run itself, not a later rerun of the same folder
    stages, computed = first["stage_seconds"], first["computed"]
    n_eval = computed["evaluations"]  # the c=0 chunk included
    passes = {m: v["strength"].get("forward_passes") or 0 for m, v in methods.items()}
    discrete = [m for m, v in methods.items() if v["strength"].get("discrete")]
    kl_batches = 3  # one KL evaluation: the 44 calibration texts in batches of 16
    total_passes = sum(passes.values()) + kl_batches * (2 * len(discrete) + 1)
    per_pass = stages["KL search (c*)"] / total_passes
    continuous = [m for m in methods if m not in discrete]
    config = json.loads((run_dir / "config.json").read_text())
    probe = first.get("estimate", {}).get("probe_seconds")
    return {
        "source": f"{run_dir}: status.json stage seconds, and the forward probe the run measured at its start",
        # the run's own probe, taken seconds before its stages were timed; older runs: the median of five now
        "forward_probe_seconds": probe or round(sorted(forward_probe_seconds(model) for _ in range(5))[2], 4),
        "n_prompts": len(pd.read_parquet(run_dir / "dilemmas.parquet")),
        "n_pairs": config["n_pairs"],
        "load_seconds": round(stages["load (data, model, pairs)"] + 10.0 + kl_batches * per_pass, 1),  # + start-up
        "scoring_seconds_per_evaluation": round(stages["DailyDilemmas scoring"] / n_eval, 2),
        "nll_seconds_per_evaluation": round(stages["held-out NLL"] / n_eval, 2),
        "probe_seconds": round(stages["yes/no probe"] / (len(methods) + 1), 2),
        "sign_seconds": round(stages["sign calibration"] / sum(not v["calibration"].get("skipped") for v in methods.values()), 2),
        "continuations_seconds": 6.0,  # the 32 x 16-token set for sign calibration (LoRA's 200 x 32 are in its fit)
        # per method: a search for the continuous ones, KL at +-1 for the discrete; "other": a plugin's
        "kl_seconds": {**{m: round(per_pass * (2 * kl_batches if m in discrete else passes[m]), 1) for m in methods},
                       "other": round(per_pass * sum(passes[m] for m in continuous) / len(continuous), 1)},
        "fit_seconds": {m: v["fit_seconds"] for m, v in methods.items()},
        # the epochs each timed fit trained (0: "the machine's default", which the reference does not know)
        "fit_epochs": {m: e for m, v in methods.items() if (e := v["meta"].get("options", {}).get("epochs"))},
        "wall_seconds": first["wall_seconds"],
    }


if __name__ == "__main__":  # python -m bench.running.cost results/smollm2-135m/default  -> data/cost_reference.json
    import sys

    from bench.model.loading import load_model
    from bench.store import atomic_write_json

    folder = Path(sys.argv[1])
    config = json.loads((folder / "config.json").read_text())
    loaded = load_model(config["model"], config["dtype"])
    atomic_write_json(REFERENCE_FILE, build_reference(folder, loaded.model))
    print(REFERENCE_FILE.read_text())
