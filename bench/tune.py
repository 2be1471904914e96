"""``python -m bench.tune``: choose a trained method's defaults without looking at DailyDilemmas.

For each candidate option set (``--grid 'lr=5e-3,epochs=2' 'lr=2e-3,epochs=1' ...``) the method is fitted
(cached like any run), scaled to the KL budget on the calibration half of the held-out texts, and judged
on what the harness may use for choosing: the training pairs and project-written texts only.

- **format kept**: the share of the 40 generic yes/no probe questions still answered in the Yes/No format
  at -c* and +c*, against the unsteered model's share (criterion: >= 80% of it at both ends);
- **coherence**: dNLL at +-c* on the calibration half (the evaluation half stays unseen);
- **honesty signal**: the paired t statistic of the sign calibration at c* over the calibration pairs.

Among candidates that keep the format, the one with the largest |t| is the choice. Nothing here reads
DailyDilemmas' prompts; the dilemmas are loaded only because a Runner needs them.
"""

from __future__ import annotations

import argparse
import logging

from tabulate import tabulate

from bench.config import RunConfig, build_options
from bench.evaluator import CALIBRATION, heldout_nll, load_heldout
from bench.probe import yes_no_probe
from bench.runner import Runner
from bench.steering import NoSteering
from methods import get_method_class

FORMAT_KEPT = 0.8


def parse_candidate(spec: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in spec.split(",") if part)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    p = argparse.ArgumentParser(prog="python -m bench.tune")
    p.add_argument("--method", required=True)
    p.add_argument("--grid", nargs="+", required=True, help="candidate option sets, e.g. lr=5e-3,epochs=2")
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--kl-budget", type=float, default=0.1)
    p.add_argument("--results-dir", default="results")
    args = p.parse_args(argv)

    cfg = RunConfig(model=args.model, methods=[args.method], data_dir=args.data_dir, results_dir=args.results_dir,
                    strength="matched", kl_budget=args.kl_budget, n_dilemmas=1, run_name="tune")
    runner = Runner(cfg)
    runner.prepare()
    calib = load_heldout(CALIBRATION)
    tok, model = runner.loaded.tokenizer, runner.loaded.model
    base_nll = heldout_nll(model, tok, runner.base_system, texts=calib)
    base_yesno = yes_no_probe(runner.loaded, NoSteering(), 0.0, runner.base_system, cfg.batch_size)["answered"]
    rows = []
    for spec in args.grid:
        runner.options[args.method] = build_options(get_method_class(args.method), parse_candidate(spec))
        fitted = runner.fit(args.method)
        c_star = runner.sweep.strength(args.method, fitted)
        if c_star is None:
            rows.append((spec, "unreachable", "", "", "", "", "no"))
            continue
        sign = runner.sweep.sign(args.method, fitted, c_star)
        cal = runner.status[args.method]["calibration"]
        kept, dnll = [], []
        for c in (-c_star, c_star):
            kept.append(yes_no_probe(runner.loaded, fitted.steering, sign * c, runner.base_system, cfg.batch_size)["answered"])
            with fitted.steering.apply(model, sign * c) as steered:
                dnll.append(heldout_nll(steered, tok, fitted.steering.system_prompt(sign * c, runner.base_system),
                                        texts=calib) - base_nll)
        ok = min(kept) >= FORMAT_KEPT * base_yesno
        coherence = fitted.meta.get("describe", {}).get("coherence_term")
        rows.append((spec, f"{c_star:.3g}", f"{kept[0]:.0%} / {kept[1]:.0%}", f"{max(dnll):.3f}",
                     f"{cal['t']:.2f} (p={cal['p']:.2g})", "" if coherence is None else f"{coherence:.3g}",
                     "yes" if ok else "no"))
    print(f"{args.method} on {args.model}: unsteered model answers {base_yesno:.0%} of the yes/no probe")
    print(tabulate(rows, headers=["candidate", "c*", "Yes/No kept -c*/+c*", "dNLL (calib. half, worse end)",
                                  "calibration t at c*", "coherence term (train)", f"format kept (>= {FORMAT_KEPT:.0%})"],
                   tablefmt="github"))


if __name__ == "__main__":
    main()
