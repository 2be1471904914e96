"""``make perf``: speed and memory measured as ratios within one run, on the embedded model.

Timings are medians of interleaved repeats; ratios compare runs made back to back on the same
batches, so a noisy machine shifts both sides alike. Nothing here is asserted: these are benchmarks.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tabulate import tabulate

from bench.chat import DEFAULT_SYSTEM
from bench.config import RunConfig
from bench.dilemmas import load_dilemmas, select_subset
from bench.evaluator import (
    dilemma_prompts,
    encode,
    left_padded_batches,
    yes_no_logratios,
)
from bench.models import load_model
from bench.residual import ResidualSteering


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bare_loop(model, batches, **kwargs) -> None:
    with torch.inference_mode():
        for _, batch in batches:
            model(**batch, **kwargs)


def padding_fraction(token_ids, batch_size: int, sort: bool) -> float:
    order = sorted(range(len(token_ids)), key=lambda i: len(token_ids[i])) if sort else list(range(len(token_ids)))
    pad = total = 0
    for s in range(0, len(order), batch_size):
        lens = [len(token_ids[i]) for i in order[s : s + batch_size]]
        pad += sum(max(lens) - n for n in lens)
        total += max(lens) * len(lens)
    return pad / total


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.perf")
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--n-prompts", type=int, default=96)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--run-dir", default=None, help="a finished default bench run, for the training-cost table")
    args = p.parse_args(argv)

    loaded = load_model(args.model)
    tok, model = loaded.tokenizer, loaded.model
    rows = select_subset(load_dilemmas(args.data_dir), args.n_prompts // 2, "Virtue/Truthfulness", 0).rows
    prompts = dilemma_prompts(tok, rows, DEFAULT_SYSTEM)
    ids = encode(tok, prompts)
    sorted_batches = list(left_padded_batches(ids, args.batch_size, tok.pad_token_id, loaded.device))
    shuffled = list(range(len(ids)))
    random.Random(0).shuffle(shuffled)
    unsorted_batches = list(left_padded_batches([ids[i] for i in shuffled], args.batch_size, tok.pad_token_id,
                                                loaded.device, sort=False))
    n = len(prompts)
    report = []

    bare = median_time(lambda: bare_loop(model, sorted_batches), args.repeats)
    harness = median_time(lambda: yes_no_logratios(model, tok, prompts, args.batch_size, desc="perf"), args.repeats)
    report.append(("harness c=0 vs bare model(**batch) loop (prompts/s ratio, target >= 0.95)", bare / harness))

    hidden = model.config.hidden_size
    rng = np.random.default_rng(0)
    layers = list(range(loaded.n_layers // 3, loaded.n_layers - 3))
    residual = ResidualSteering({i: rng.standard_normal(hidden).astype(np.float32) for i in layers},
                                model.config.model_type)
    from bench.layers import find_linear_targets
    from methods.innerpissa.layer import AdapterShape
    from methods.innerpissa.model import InnerPiSSAAdapters

    adapters = InnerPiSSAAdapters(model, find_linear_targets(model, ["o_proj", "down_proj"], layers), AdapterShape())
    from methods.innerpissa import InnerPiSSASteering

    for label, steering in (("residual (repeng/random)", residual), ("innerpissa adapter", InnerPiSSASteering(adapters, {}))):
        for c in (1.0, -1.0):
            def steered():
                with steering.apply(model, c) as m:
                    yes_no_logratios(m, tok, prompts, args.batch_size, desc="perf")
            report.append((f"harness {label} c={c:+g} vs bare loop (target >= 0.9)", bare / median_time(steered, args.repeats)))

    full = median_time(lambda: bare_loop(model, sorted_batches), args.repeats)
    last = median_time(lambda: bare_loop(model, sorted_batches, logits_to_keep=1), args.repeats)
    report.append(("speed-up of logits_to_keep=1 over full logits", full / last))

    report.append(("padding fraction, length-sorted batches (target <= 0.10)", padding_fraction(ids, args.batch_size, True)))
    report.append(("padding fraction, unsorted batches", padding_fraction(ids, args.batch_size, False)))
    unsorted = median_time(lambda: bare_loop(model, unsorted_batches, logits_to_keep=1), args.repeats)
    report.append(("speed-up of length-sorted over unsorted batches", unsorted / last))
    report.append(("prompts evaluated per timing", float(n)))
    print(tabulate([(k, f"{v:.3f}") for k, v in report], headers=["measure (one run)", "value"], tablefmt="github"))

    # Work done once: a rerun of a finished run does no forward pass.
    from bench.runner import Runner

    with tempfile.TemporaryDirectory() as tmp:
        counts = []
        for _ in range(2):
            cfg = RunConfig(model=args.model, methods=["random", "repeng"], n_dilemmas=8, n_pairs=16,
                            data_dir=args.data_dir, results_dir=tmp, run_name="perf")
            runner = Runner(cfg)
            runner.run()
            counts.append(runner.forward_passes)
    print(tabulate([("first run (random + repeng, 8 dilemmas)", counts[0]), ("identical rerun", counts[1])],
                   headers=["evaluation forward passes", "count"], tablefmt="github"))

    if args.run_dir and (Path(args.run_dir) / "status.json").is_file():
        status = json.loads((Path(args.run_dir) / "status.json").read_text())
        table = [(m, i["meta"].get("fit_seconds"), round(i["meta"]["fit_seconds"] / max(i["meta"].get("n_pairs", 1), 1), 3),
                  i["meta"].get("peak_rss_mb")) for m, i in status.items() if not m.startswith("_") and "meta" in i]
        print(tabulate(table, headers=["method", "fit s", "s / pair", "peak RSS MB (process, so far)"], tablefmt="github"))


if __name__ == "__main__":
    main()
