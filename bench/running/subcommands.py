"""The options of the subcommands other than ``run``, checked before any work: an option a subcommand would
ignore is refused, as is an argument it does not know, each in one line naming it and what is accepted.

``run``'s own options are ``bench.running.validate``'s; ``tune`` takes them too, less the ones it fixes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bench.errors import SteerbenchError
from bench.running.validate import MAX_SEED, check_run_folder, default_of

if TYPE_CHECKING:
    from bench.config import RunConfig

# What tune decides itself (bench.running.tuning.tune), so a value given for it would be ignored or would
# break the protocol (candidates are compared at -c* and +c*, as make tune says): option -> flag
TUNE_FIXED = {"split": "--split", "strength": "--strength", "tuned": "--tuned", "tables": "--no-tables",
              "run_name": "--run-name", "n_seeds": "--seeds", "kl_budgets": "--kl-budgets", "coeffs": "--coeffs"}


def check_no_extra(command: str, extra: list[str]) -> None:
    """``list``, ``tables`` and ``summary`` take no method options: any argument left over is unknown."""
    if extra:
        raise SteerbenchError(f"{command}: unrecognised argument {extra[0]!r}; accepted: the options of "
                              f"`steerbench {command} --help`")


def check_tune_options(cfg: "RunConfig") -> None:
    """tune scores the dev split at matched strength (-c*, +c*) from the built-in options, with one training
    seed, at --kl-budget, and writes its tables and tuned file, not a run folder: those options, given, are
    refused."""
    for name, flag in TUNE_FIXED.items():
        if getattr(cfg, name) != default_of(cfg, name):
            raise SteerbenchError(f"{flag} is not a tune option (tune always scores the dev split at -c* and +c* "
                                  "from the built-in defaults, one training seed, at --kl-budget; "
                                  "--tuned-name names its output); leave it out")
    for method, given in cfg.method_options.items():
        if given:
            raise SteerbenchError(f"--{method}.{next(iter(given))} is not a tune option: every candidate's options "
                                  "come from the tuning grid (--grid); leave it out, or edit the grid")


def check_value(run_dir: str | Path, value: str) -> None:
    """``--value`` must label some dilemma of the run (else every table would be empty, and written)."""
    import difflib

    import pandas as pd

    labels = pd.read_parquet(Path(run_dir) / "dilemmas.parquet", columns=["labels"])["labels"]
    names = sorted({str(label) for labs in labels for label in labs})
    if value not in names:
        close = difflib.get_close_matches(value, names, n=5, cutoff=0.4)
        raise SteerbenchError(f"--value {value!r} labels no dilemma of {str(run_dir)!r}; close matches: "
                              f"{', '.join(close) or 'none'} (Virtue/Truthfulness is the default)")


def check_results_options(run_dirs: list[str], value: str, seed: int | None = None, out: str | None = None) -> None:
    """``tables`` and ``summary``: finished run folders, a value their dilemmas carry, a bootstrap seed in range,
    and ``--out`` only where there are cross-run tables to write (several runs)."""
    for run in run_dirs:
        check_run_folder(run)
        check_value(run, value)
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise SteerbenchError(f"--seed {seed} is out of range; accepted: an integer in [0, {MAX_SEED}]")
    if out is not None and len(run_dirs) < 2:
        raise SteerbenchError(f"--out {out!r} is for the cross-run tables of several run folders; one run's tables "
                              "go into its own tables/ folder: leave --out out")
