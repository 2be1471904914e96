"""``python -m bench`` — run the benchmark, list methods, rebuild a run's summary."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from bench.config import DEFAULT_N_DILEMMAS, RunConfig, parse_coeffs, parse_method_args
from bench.errors import SteerbenchError
from bench.validate import check_run_folder

log = logging.getLogger("bench")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run", help="fit methods on the honesty pairs and score them on DailyDilemmas",
        epilog="Method options: --METHOD.OPTION VALUE (e.g. --repeng.layers 0.4:0.8); see `python -m bench list`.",
    )
    d = RunConfig()
    run.add_argument("--model", default=d.model, help="alias (smollm2-135m), local folder, or Hugging Face id")
    run.add_argument("--methods", default="all", help="comma list of registry names, or 'all' (default); a name "
                     "listed twice runs once (random,random is random)")
    run.add_argument("--coeffs", default="-1,0,1", help="comma list of coefficients; must include 0")
    run.add_argument("--n-dilemmas", type=int, default=DEFAULT_N_DILEMMAS,
                     help="dilemmas to evaluate (both actions each): default every dilemma that carries the target "
                          "value (596 for Virtue/Truthfulness); N narrows it to a seeded subset, target-tagged first "
                          "(N >= 1360 takes every dilemma)")
    run.add_argument("--n-pairs", type=int, default=d.n_pairs, help="honesty pairs to train on")
    run.add_argument("--data-dir", default=os.environ.get("STEERBENCH_DATA_DIR") or None,
                     help="folder with the two DailyDilemmas CSVs (default: $STEERBENCH_DATA_DIR, else the hub)")
    run.add_argument("--suffix-file", default=None, help="repeng-format JSON list of statement suffixes")
    run.add_argument("--results-dir", default=d.results_dir)
    run.add_argument("--run-name", default=None, help="run folder name (default: a hash of the config)")
    run.add_argument("--seed", type=int, default=d.seed, help="seed of the subset, pairs and first training seed")
    run.add_argument("--seeds", type=int, default=d.n_seeds,
                     help="refit the seeded (trained) methods with this many training seeds; tables show mean +- sd")
    run.add_argument("--batch-size", type=int, default=d.batch_size)
    run.add_argument("--no-prefix-cache", action="store_true",
                     help="run every prompt in full instead of sharing the template/situation prefix's KV cache")
    run.add_argument("--dtype", default=d.dtype, help="auto (bf16), bf16, fp32, fp16")
    run.add_argument("--device", default=d.device, help="auto, cpu, cuda, cuda:1 ...")
    run.add_argument("--target", default=d.target, help="value the table is about")
    run.add_argument("--min-pmass", type=float, default=d.min_pmass, help="below this Yes+No mass a row is NaN")
    run.add_argument("--no-sign-calibration", action="store_true")
    run.add_argument("--strength", default=d.strength, choices=("matched", "raw"),
                     help="matched: coefficients are multiples of each method's c*, the |c| whose mean "
                          "per-token KL from the unsteered model on held-out text equals --kl-budget")
    run.add_argument("--kl-budget", type=float, default=d.kl_budget, help="nats/token, for --strength matched")
    run.add_argument("--trust-remote-code", action="store_true", help="allow model code from the hub (off by default)")
    sub.add_parser("list", help="list registered methods and their options")
    tab = sub.add_parser("tables", help="rebuild every table and plot of finished runs (no model loaded)")
    tab.add_argument("run_dirs", nargs="+")
    tab.add_argument("--value", default=d.target)
    tab.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    tab.add_argument("--out", default="results/tables", help="folder for the cross-run tables (several runs)")
    summ = sub.add_parser("summary", help="rebuild a finished run's method table from its rows")
    summ.add_argument("run_dir")
    summ.add_argument("--value", default=d.target)
    return p


def _list_methods() -> None:
    import dataclasses

    from methods import REGISTRY, get_method_class

    for name in REGISTRY:
        cls = get_method_class(name)
        opts = ", ".join(f"{f.name.replace('_', '-')}={f.default!r}" for f in dataclasses.fields(cls.Options))
        print(f"{name:12s} {cls.description}\n{'':12s} options: {opts or 'none'}")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    try:
        if args.command == "list":
            if extra:
                parser.error(f"unrecognised arguments: {' '.join(extra)}")
            _list_methods()
            return 0
        if args.command == "tables":
            from bench.tables import build_tables

            for run in args.run_dirs:
                check_run_folder(run)
            for run in args.run_dirs:
                print(f"tables and plots written to {build_tables(Path(run), args.value, seed=args.seed)}")
            if len(args.run_dirs) > 1:
                from bench.tables import cross_run_tables

                out = cross_run_tables([Path(r) for r in args.run_dirs], args.value, Path(args.out))
                print(f"cross-run tables written to {out}")
            return 0
        if args.command == "summary":
            from bench.report import write_summary

            check_run_folder(args.run_dir)
            print(write_summary(Path(args.run_dir), args.value))
            return 0
        from methods import parse_method_list

        cfg = RunConfig(
            model=args.model, methods=parse_method_list(args.methods), coeffs=parse_coeffs(args.coeffs),
            n_dilemmas=args.n_dilemmas, n_pairs=args.n_pairs, data_dir=args.data_dir, suffix_file=args.suffix_file,
            results_dir=args.results_dir, run_name=args.run_name, seed=args.seed, n_seeds=args.seeds, batch_size=args.batch_size,
            prefix_cache=not args.no_prefix_cache,
            dtype=args.dtype, device=args.device, target=args.target, min_pmass=args.min_pmass,
            calibrate_sign=not args.no_sign_calibration, trust_remote_code=args.trust_remote_code,
            strength=args.strength, kl_budget=args.kl_budget,
            method_options=parse_method_args(extra),
        )
        return _run(cfg)
    except SteerbenchError as exc:
        print(f"steerbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("steerbench: interrupted; finished work is kept, rerun the same command to resume", file=sys.stderr)
        return 130


def _run(cfg: RunConfig) -> int:
    """Run with a log file in the run folder; a run that fails before writing anything but its log leaves
    no folder behind (nor the results/model folders it created)."""
    from bench.models import model_slug
    from bench.runner import Runner

    model_dir = Path(cfg.results_dir) / model_slug(cfg.model)
    created = [p for p in (Path(cfg.results_dir), model_dir) if not p.exists()]
    handler = None
    try:
        runner = Runner(cfg)
        if not runner.run_dir.exists():
            created.append(runner.run_dir)
        handler = logging.FileHandler(_log_path(runner.run_dir))
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(handler)
        runner.run()
        return 0
    except BaseException:
        if handler is not None:
            logging.getLogger().removeHandler(handler)
            handler.close()
            handler = None
        for folder in reversed(created):  # only what this command created, and only if nothing else is in it
            if folder.is_dir() and [f.name for f in folder.iterdir()] in ([], ["run.log"]):
                (folder / "run.log").unlink(missing_ok=True)
                folder.rmdir()
        raise
    finally:
        if handler is not None:
            logging.getLogger().removeHandler(handler)
            handler.close()


def _log_path(run_dir: Path) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir / "run.log"


if __name__ == "__main__":
    sys.exit(main())
