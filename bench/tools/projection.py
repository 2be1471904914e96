"""``make projection``: an *estimate* of ``make bench MODEL=Qwen/Qwen3-0.6B`` on this machine, made offline.

The hub is not reachable here, so Qwen3-0.6B is built from its published configuration with random
weights: the speed of a forward or backward pass does not depend on the weights' values. Each kind of
work the benchmark does is timed on both the embedded SmolLM2-135M and that model, on the same token ids
(the embedded tokenizer stands in for Qwen3's; both tokenise English prose to similar lengths):

- **scoring**: the harness's shared-prefix scoring of DailyDilemmas prompts (last-position logits);
- **full logits**: forwards that read every position's logits through the fp32 head (KL search, held-out
  NLL, sign calibration, yes/no probe, continuations);
- **training**: a forward + backward + AdamW step over every weight (SFT's step; LoRA and InnerPiSSA
  back-propagate through the same layers), with the process's peak RSS.

Each stage of a finished SmolLM2 run (``--run-dir``, its ``status.json`` stage times) is then scaled by
the ratio of its kind, and the projected stages are summed. Peak memory is projected from the measured
training step's RSS. This is a projection, not a measurement, and the README labels it so.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

import torch

from bench.tools.perf import median_time
from bench.tools.run_costs import first_process

# Qwen/Qwen3-0.6B config.json as published (architecture fields only)
QWEN3_0_6B = dict(hidden_size=1024, intermediate_size=3072, num_hidden_layers=28, num_attention_heads=16,
                  num_key_value_heads=8, head_dim=128, vocab_size=151936, max_position_embeddings=40960,
                  rope_theta=1_000_000.0, rms_norm_eps=1e-6, tie_word_embeddings=True)
STAGE_KIND = {"DailyDilemmas scoring": "scoring", "fit": "training", "KL search (c*)": "full_logits",
              "held-out NLL": "full_logits", "continuations": "full_logits", "sign calibration": "full_logits",
              "yes/no probe": "scoring", "load (data, model, pairs)": "load"}


def _timed(fn, repeats: int = 3) -> float:
    fn()  # warm-up: first-call allocations and kernel choices
    return median_time(fn, repeats)


def measure(which: str, data_dir: str | None) -> dict:
    """Seconds per unit of each kind of work, and peak RSS, for one model (run in its own process)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen3Config

    from bench.evaluation.dilemmas import load_dilemmas, select_subset
    from bench.evaluation.evaluator import EVALUATION, dilemma_prompts, load_heldout, score_prompts
    from bench.model.chat import DEFAULT_SYSTEM
    from bench.model.hooks import contiguous_head_input, fp32_output_head
    from bench.model.loading import ensure_embedded_model
    from bench.model.padding import encode, left_padded_batches

    torch.manual_seed(0)
    folder = ensure_embedded_model()
    tok = AutoTokenizer.from_pretrained(folder)
    tok.padding_side = "left"
    if which == "smollm2-135m":
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16)
    else:
        config = Qwen3Config(**QWEN3_0_6B, pad_token_id=tok.pad_token_id)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.eval().requires_grad_(False)
    contiguous_head_input(model)
    fp32_output_head(model)
    n_params = sum(p.numel() for p in model.parameters())

    rows = select_subset(load_dilemmas(data_dir), 32, "Virtue/Truthfulness", 0).rows
    prompts = dilemma_prompts(tok, rows, DEFAULT_SYSTEM)
    groups = rows["dilemma_idx"].tolist()
    scoring = _timed(lambda: score_prompts(model, tok, prompts, 16, "scoring", groups=groups)) / len(prompts)

    texts = [tok.apply_chat_template([{"role": "user", "content": u}, {"role": "assistant", "content": a}],
                                     tokenize=False) for u, a in load_heldout(EVALUATION)[:16]]
    batches = list(left_padded_batches(encode(tok, texts), 8, tok.pad_token_id, torch.device("cpu")))

    def full_logits():
        with torch.inference_mode():
            for _, batch in batches:
                model(**batch).logits.float().log_softmax(-1)

    full = _timed(full_logits) / len(texts)

    model.train().requires_grad_(True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)

    def train_step():
        for _, batch in batches:
            out = model(**batch, labels=batch["input_ids"])
            out.loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    training = _timed(train_step, repeats=2) / len(texts)
    return {"model": which, "params": n_params, "scoring_s_per_prompt": scoring, "full_logits_s_per_text": full,
            "training_s_per_text": training, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.tools.projection")
    p.add_argument("--run-dir", default="results/smollm2-135m/default", help="a finished SmolLM2 run to scale")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--measure", choices=["smollm2-135m", "qwen3-0.6b"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.data_dir)))
        return
    results = {}
    for which in ("smollm2-135m", "qwen3-0.6b"):  # one process each: a clean peak RSS per model
        cmd = [sys.executable, "-m", "bench.tools.projection", "--measure", which] + (
            ["--data-dir", args.data_dir] if args.data_dir else [])
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        results[which] = json.loads(out)
    small, big = results["smollm2-135m"], results["qwen3-0.6b"]
    ratio = {"scoring": big["scoring_s_per_prompt"] / small["scoring_s_per_prompt"],
             "full_logits": big["full_logits_s_per_text"] / small["full_logits_s_per_text"],
             "training": big["training_s_per_text"] / small["training_s_per_text"], "load": 1.0}
    status = json.loads((Path(args.run_dir) / "status.json").read_text())
    process = first_process(status)
    stages = process["stage_seconds"]
    lines = [("measured on this machine", "SmolLM2-135M", "Qwen3-0.6B (random weights)", "ratio")]
    lines.append(("parameters (M)", f"{small['params'] / 1e6:.0f}", f"{big['params'] / 1e6:.0f}",
                  f"{big['params'] / small['params']:.2f}"))
    for kind, key in (("scoring", "scoring_s_per_prompt"), ("full_logits", "full_logits_s_per_text"),
                      ("training", "training_s_per_text")):
        lines.append((f"{kind}: s per prompt/text", f"{small[key]:.4f}", f"{big[key]:.4f}", f"{ratio[kind]:.2f}"))
    lines.append(("peak RSS of the training step (MiB)", f"{small['peak_rss_mb']:.0f}", f"{big['peak_rss_mb']:.0f}",
                  f"{big['peak_rss_mb'] / small['peak_rss_mb']:.2f}"))
    print("\n".join(" | ".join(map(str, line)) for line in lines))
    print(f"\nprojection of {args.run_dir} (stage seconds x ratio of its kind):")
    total = 0.0
    for stage, seconds in stages.items():
        kind = STAGE_KIND.get(stage, "full_logits")
        projected = seconds * ratio[kind]
        total += projected
        print(f"  {stage}: {seconds:.0f} s -> {projected:.0f} s ({kind} x{ratio[kind]:.2f})")
    measured_peak = process.get("peak_rss_mb") or 0
    peak = measured_peak * big["peak_rss_mb"] / small["peak_rss_mb"]
    print(f"  total: {sum(stages.values()):.0f} s -> {total:.0f} s ({total / 60:.0f} min); peak RSS "
          f"{measured_peak / 1024:.1f} GiB -> ~{peak / 1024:.1f} GiB (run peak x training-step RSS ratio)")
    print(json.dumps({"ratios": ratio, "measured": results, "projected_seconds": total, "projected_peak_mb": peak}))


if __name__ == "__main__":
    main()
