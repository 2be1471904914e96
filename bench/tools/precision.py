"""``make precision``: how much of a score is numerics, measured on the embedded model (a benchmark, not a test).

Scores the same DailyDilemmas prompts (unsteered, and with a random residual direction of repeng's size at
a small coefficient) under several numerical set-ups and prints how far they are from one another:

- the fp32 model (reference) against bf16 with the harness's fp32 final norm and LM head (the default),
  and against plain bf16 (bf16 head: logits on a 1/16-nat grid at these magnitudes);
- how many per-row changes from c=0 are whole multiples of 0.0625 nat under each;
- bf16 batch sizes 8 / 16 / 32, shared-prefix vs full prompts, and the same scoring twice.
"""

from __future__ import annotations

import argparse
import os
import types

import numpy as np
import torch
from tabulate import tabulate

from bench.api.residual import ResidualSteering
from bench.evaluation.dilemmas import load_dilemmas, select_subset
from bench.evaluation.evaluator import dilemma_prompts, yes_no_logratios
from bench.model.chat import DEFAULT_SYSTEM
from bench.model.loading import load_model

GRID = 0.0625  # the bf16 spacing of logits between 8 and 16


def plain_bf16_head(model: torch.nn.Module) -> None:
    """Undo ``fp32_output_head`` on this instance: the LM head and final norm back in bf16."""
    head = model.get_output_embeddings()
    head.forward = types.MethodType(torch.nn.Linear.forward, head)
    norm = model.get_decoder().norm
    norm._forward_pre_hooks.clear()


def on_grid(delta: np.ndarray, tol: float = 1e-6) -> float:
    """Share of ``delta`` within ``tol`` nat of a whole multiple of 1/16 nat (uniform values: 32 * tol)."""
    ok = np.isfinite(delta)
    return float(np.mean(np.abs(delta[ok] - GRID * np.round(delta[ok] / GRID)) < tol))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.tools.precision")
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--data-dir", default=os.environ.get("STEERBENCH_DATA_DIR"),
                   help="folder with the two DailyDilemmas CSVs (default: $STEERBENCH_DATA_DIR, else the hub)")
    p.add_argument("--n-dilemmas", type=int, default=64)
    p.add_argument("--coeff", type=float, default=1.0, help="steering coefficient of the random residual direction")
    args = p.parse_args(argv)
    torch.manual_seed(0)

    dd = select_subset(load_dilemmas(args.data_dir), args.n_dilemmas, "Virtue/Truthfulness", seed=0)
    groups = dd.rows["dilemma_idx"].tolist()
    models = {"fp32": load_model(args.model, dtype="fp32"), "bf16 + fp32 head": load_model(args.model, dtype="bf16"),
              "bf16": load_model(args.model, dtype="bf16")}
    plain_bf16_head(models["bf16"].model)
    tok = models["fp32"].tokenizer
    prompts = dilemma_prompts(tok, dd.rows, DEFAULT_SYSTEM)
    hidden = models["fp32"].model.config.hidden_size
    n_layers = models["fp32"].n_layers
    rng = np.random.default_rng(0)
    # a random direction per middle-to-late layer, unit norm like a repeng direction
    directions = {layer: (v / np.linalg.norm(v)).astype(np.float32)
                  for layer in range(int(0.3 * n_layers), int(0.9 * n_layers))
                  for v in [rng.standard_normal(hidden)]}
    steering = ResidualSteering(directions, models["fp32"].model.config.model_type)

    def score(name: str, coeff: float = 0.0, batch_size: int = 16, prefix: bool = True) -> np.ndarray:
        loaded = models[name]
        with steering.apply(loaded.model, coeff) as m:
            lr, _ = yes_no_logratios(m, tok, prompts, batch_size, f"{name} c={coeff:g} b={batch_size}",
                                     groups=groups if prefix else None)
        return lr

    ref0, ref1 = score("fp32"), score("fp32", args.coeff)
    rows = []
    for name in ("bf16 + fp32 head", "bf16"):
        s0, s1 = score(name), score(name, args.coeff)
        d0, d1 = np.abs(s0 - ref0), np.abs(s1 - ref1)
        rows.append((f"{name}: |logratio - fp32|, c=0 (max / mean)", f"{np.nanmax(d0):.4f} / {np.nanmean(d0):.4f}"))
        rows.append((f"{name}: |logratio - fp32|, c={args.coeff:g} (max / mean)", f"{np.nanmax(d1):.4f} / {np.nanmean(d1):.4f}"))
        change = s1 - s0
        rows.append((f"{name}: per-row changes c={args.coeff:g} vs 0 on the 1/16-nat grid (exact / within 0.002)",
                     f"{on_grid(change):.1%} / {on_grid(change, 0.002):.1%}"))
        err = np.abs(change - (ref1 - ref0))
        rows.append((f"{name}: |change - fp32 change| (max / mean)", f"{np.nanmax(err):.4f} / {np.nanmean(err):.4f}"))
    rows.append(("fp32: per-row changes on the 1/16-nat grid (exact / within 0.002; chance: 6.4%)",
                 f"{on_grid(ref1 - ref0):.1%} / {on_grid(ref1 - ref0, 0.002):.1%}"))
    rows.append(("fp32: mean |change| c vs 0 (the size of the effect being measured)", f"{np.nanmean(np.abs(ref1 - ref0)):.4f}"))
    base = score("bf16 + fp32 head", 0.0, 16)
    for bs in (8, 32):
        d = np.abs(score("bf16 + fp32 head", 0.0, bs) - base)
        rows.append((f"bf16 + fp32 head: batch {bs} vs 16, c=0 (max / mean)", f"{np.nanmax(d):.4f} / {np.nanmean(d):.4f}"))
    d = np.abs(score("bf16 + fp32 head", 0.0, 16, prefix=False) - base)
    rows.append(("bf16 + fp32 head: full prompts vs shared prefix, c=0 (max / mean)", f"{np.nanmax(d):.4f} / {np.nanmean(d):.4f}"))
    d = np.abs(score("bf16 + fp32 head", 0.0, 16) - base)
    rows.append(("bf16 + fp32 head: the same scoring twice, c=0 (max)", f"{np.nanmax(d):.2g}"))
    print(f"{len(prompts)} prompts ({args.n_dilemmas} Truthfulness dilemmas), model {args.model}")
    print(tabulate(rows, headers=["measure", "value"], tablefmt="github"))


if __name__ == "__main__":
    main()
