"""``python -m bench`` — run the benchmark, list methods, rebuild a run's summary."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import re
import sys
import typing
from pathlib import Path
from typing import Any

from bench.config import RunConfig, parse_budgets, parse_coeffs, parse_method_args, parse_plugins
from bench.errors import SteerbenchError
from bench.evaluation.dilemmas import DEFAULT_TARGET
from bench.running.subcommands import check_no_extra, check_results_options, check_tune_options
from bench.running.validate import validate_config

log = logging.getLogger("bench")
CROSS_RUN_OUT = "results/tables"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser(
        "run", help="fit methods on the honesty pairs and score them on DailyDilemmas",
        epilog="Method options: --METHOD.OPTION VALUE (e.g. --repeng.layers 0.4:0.8); see `python -m bench list`.",
    )
    add_run_arguments(run)
    tune = sub.add_parser("tune", help="the fair protocol: fit the grid's K candidates per method, score them on "
                                       "dev dilemmas only, pick each method's by the grid's fixed rule")
    add_run_arguments(tune)
    tune.add_argument("--grid", default=None, help="tuning grid file (default: data/tuning_grid.json)")
    tune.add_argument("--tuned-name", default="", help="write data/tuned/<model>.<NAME>.json and "
                      "results/<model>/tuning-<NAME>/ (make tune: candidate) instead of the files make bench reads")
    listing = sub.add_parser("list", help="list registered methods and their options")
    listing.add_argument("--plugin", action="append", default=None, help="also list an out-of-tree method: "
                         "module:Class or path/to/file.py:Class (repeatable, or a comma list)")
    tab = sub.add_parser("tables", help="rebuild every table and plot of finished runs (no model loaded)")
    tab.add_argument("run_dirs", nargs="+")
    tab.add_argument("--value", default=DEFAULT_TARGET)
    tab.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    tab.add_argument("--out", default=None, help=f"folder for the cross-run tables (several runs; default {CROSS_RUN_OUT})")
    summ = sub.add_parser("summary", help="rebuild a finished run's method table from its rows")
    summ.add_argument("run_dir")
    summ.add_argument("--value", default=DEFAULT_TARGET)
    return p


def _scalar_type(hint: Any) -> type:
    """The type argparse converts to: ``int | None`` -> int; lists are parsed from their comma string."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) is list:
        return str
    return args[0] if args else hint


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """One command-line option per ``RunConfig`` field, from the field's own default, help and flag."""
    hints = typing.get_type_hints(RunConfig)
    for f in dataclasses.fields(RunConfig):
        meta = f.metadata
        if meta.get("flag") == "":  # not a command-line option (method options are --METHOD.OPTION)
            continue
        flag = meta.get("flag") or "--" + f.name.replace("_", "-")
        if hints[f.name] is bool:
            parser.add_argument(flag, dest=f.name, action="store_false" if f.default else "store_true",
                                help=meta["help"])
            continue
        if meta.get("repeat"):
            parser.add_argument(flag, dest=f.name, action="append", default=None, help=meta["help"])
            continue
        # a list option left out is None here and takes the config's default (a blank one is refused)
        default = None if typing.get_origin(hints[f.name]) is list else f.default
        if f.name == "data_dir":
            default = os.environ.get("STEERBENCH_DATA_DIR") or None
        parser.add_argument(flag, dest=f.name, type=_scalar_type(hints[f.name]), default=default,
                            choices=meta.get("choices"), help=meta["help"])


def config_from_args(args: argparse.Namespace, extra: list[str]) -> RunConfig:
    from methods import load_plugin, parse_method_list

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(RunConfig) if f.metadata.get("flag") != ""}
    values["plugins"] = parse_plugins(values["plugins"])
    for spec in values["plugins"]:  # registered before any method name is checked
        load_plugin(spec)
    for name, parse in (("methods", parse_method_list), ("coeffs", parse_coeffs), ("kl_budgets", parse_budgets)):
        if values[name] is None:
            del values[name]  # left out: the config's own default
        else:
            values[name] = parse(values[name])
    return RunConfig(**values, method_options=parse_method_args(extra))


def _list_methods() -> None:
    from methods import REGISTRY, get_method_class

    for name in REGISTRY:
        cls = get_method_class(name)
        print(f"{name:12s} {cls.description}")
        for f in dataclasses.fields(cls.Options):
            flag = f"--{name}.{f.name.replace('_', '-')}"
            print(f"{'':4s}{flag:36s} {f.default!r:20s} {f.metadata.get('help', '')}")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    try:
        if args.command != "run" and args.command != "tune":
            check_no_extra(args.command, extra)  # no method options here: a left-over argument is unknown
        if args.command == "list":
            from methods import load_plugin

            for spec in parse_plugins(args.plugin):
                load_plugin(spec)
            _list_methods()
            return 0
        if args.command == "tables":
            from bench.results.tables import build_tables

            check_results_options(args.run_dirs, args.value, args.seed, args.out)
            for run in args.run_dirs:
                print(f"tables and plots written to {build_tables(Path(run), args.value, seed=args.seed)}")
            if len(args.run_dirs) > 1:
                from bench.results.tables import cross_run_tables

                out = cross_run_tables([Path(r) for r in args.run_dirs], args.value, Path(args.out or CROSS_RUN_OUT))
                print(f"cross-run tables written to {out}")
            return 0
        if args.command == "summary":
            from bench.results.display import write_summary

            check_results_options([args.run_dir], args.value)
            print(write_summary(Path(args.run_dir), args.value))
            return 0
        if args.command == "tune":
            return _tune(args, extra)
        cfg = config_from_args(args, extra)
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
    from bench.model.loading import model_slug
    from bench.running.runner import Runner

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


def _tune(args: argparse.Namespace, extra: list[str]) -> int:
    from bench.running.tuning import GRID_FILE, load_grid, outputs, tune
    from bench.running.validate import check_tune_overwrite

    cfg = config_from_args(args, extra)  # first: a plugin the grid names is registered by it
    check_tune_options(cfg)  # what tune fixes itself, given, would be ignored
    validate_config(cfg)  # and every option a run checks, before the grid and the output files
    grid = load_grid(Path(args.grid) if args.grid else GRID_FILE)  # a bad grid: one line, before any work
    name = args.tuned_name.strip()
    if name and not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise SteerbenchError(f"--tuned-name {name!r} is not a name part; accepted: letters, digits, '-' and '_'")
    table_dir, tuned_file = outputs(cfg, name)
    check_tune_overwrite(table_dir, tuned_file, reads=not name, overwrite=cfg.overwrite)
    table, tuned = tune(cfg, grid, name)
    chosen = table[table["chosen"]]
    for method in table["method"].unique():
        pick = chosen[chosen["method"] == method]
        print(f"{method:12s} " + (f"chosen: {pick['candidate'].iloc[0]} (dev Effect {pick['effect'].iloc[0]:.3f})"
                                   if len(pick) else "no candidate in range on dev: built-in defaults"))
    print(f"tuning table in {table_dir}; tuned defaults written to {tuned}")
    if name:
        table_home, tuned_home = outputs(cfg)
        print(f"try them: make bench MODEL={cfg.model} ARGS='--tuned {tuned}'; promote them to the defaults make bench "
              f"reads: cp {tuned} {tuned_home} && mkdir -p {table_home} && cp {table_dir}/tuning.* {table_home}/")
    return 0


def _log_path(run_dir: Path) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir / "run.log"


if __name__ == "__main__":
    sys.exit(main())
