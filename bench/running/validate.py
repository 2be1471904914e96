"""Checks of everything a user can get wrong, run before any work (and before the model loads).

``validate_config`` needs no model: run options, the run name, the suffix file, the cache layout.
``check_method_layers`` runs right after the model loads, before any method is fitted: every method's
layer spec (and module names) must fit the model. Each failure is one ``SteerbenchError`` line that
names the bad value and what is accepted.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.errors import SteerbenchError, between, names_list, one_of, positive
from bench.evaluation.split import SPLITS
from methods import REGISTRY, load_plugin

if TYPE_CHECKING:
    from bench.config import RunConfig
    from bench.model.loading import LoadedModel

MAX_SEED = 2**32 - 1  # numpy's and torch's seeds


# ------------------------------------------------------------------------------ the run config
def check_run_name(name: str | None) -> None:
    """A run name is one path component: the run folder is ``<results-dir>/<model>/<run-name>``."""
    if name is None:
        return
    bad = (not isinstance(name, str) or not name.strip() or name in (".", "..") or "/" in name or "\\" in name
           or any(ord(ch) < 32 or ord(ch) == 127 for ch in name) or Path(name).is_absolute())
    if bad:
        raise SteerbenchError(f"--run-name {name!r} is not a folder name; accepted: one path component "
                              "(no '/', '\\', '..', control characters; not empty)")


def check_cache_layout(cache: Path) -> None:
    """Cache sub-folders replaced by files would fail only after the compute they were to store."""
    if cache.exists() and not cache.is_dir():
        raise SteerbenchError(f"{str(cache)!r} is a file, not the cache folder; move it away and rerun")
    for sub in ("eval", "artifacts", "continuations", "locks"):
        path = cache / sub
        if path.exists() and not path.is_dir():
            raise SteerbenchError(f"{str(path)!r} is a file, not a cache folder; move it away and rerun")


def default_of(cfg: "RunConfig", name: str) -> Any:
    """A run option's default (what the command line gives when the option is left out)."""
    f = next(f for f in dataclasses.fields(cfg) if f.name == name)
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def check_device(device: str) -> None:
    """A device torch knows and this machine has (a CUDA device asked for on a machine without one fails here,
    not after the data and the model are loaded)."""
    import torch

    if device == "auto":
        return
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise SteerbenchError(f"--device {device!r} is not a device; accepted: auto, cpu, cuda, cuda:N") from None
    if dev.type == "cuda" and (not torch.cuda.is_available() or (dev.index or 0) >= torch.cuda.device_count()):
        raise SteerbenchError(f"--device {device!r} is not on this machine ({torch.cuda.device_count()} CUDA devices); "
                              "accepted: auto, cpu" + (", cuda, cuda:N below the count" if torch.cuda.is_available() else ""))


def validate_config(cfg: "RunConfig") -> None:
    """Every run option, before anything is loaded, computed, cached or created."""
    from bench.api.pairs import load_suffixes
    from bench.config import parse_plugins
    from bench.model.dtype_choice import parse_dtype

    def integer(where: str, value: Any, low: int, extra: str = "") -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise SteerbenchError(f"{where} {value!r} is out of range; accepted: an integer >= {low}{extra}")

    for flag, value in (("--model", cfg.model), ("--results-dir", cfg.results_dir), ("--data-dir", cfg.data_dir),
                        ("--cache-dir", cfg.cache_dir), ("--suffix-file", cfg.suffix_file), ("--target", cfg.target),
                        ("--tuned", cfg.tuned), ("--dtype", cfg.dtype), ("--device", cfg.device)):
        if value is not None and not str(value).strip():  # a blank value is a mistake, never the default
            raise SteerbenchError(f"{flag} is blank; accepted: a value, or leave the option out for its default")
    integer("--batch-size", cfg.batch_size, 1)
    if isinstance(cfg.n_seeds, bool) or not isinstance(cfg.n_seeds, int) or cfg.n_seeds < 1:
        raise SteerbenchError(f"--seeds {cfg.n_seeds} is not a number of training seeds; give 1 or more")
    if cfg.n_dilemmas is not None and (not isinstance(cfg.n_dilemmas, int) or cfg.n_dilemmas < 1):
        raise SteerbenchError(f"--n-dilemmas: n_dilemmas must be a positive integer, got {cfg.n_dilemmas} "
                              "(accepted: an integer >= 1)")
    integer("--n-pairs", cfg.n_pairs, 1)
    if isinstance(cfg.seed, bool) or not isinstance(cfg.seed, int) or not 0 <= cfg.seed <= MAX_SEED - cfg.n_seeds:
        raise SteerbenchError(f"--seed {cfg.seed!r} is out of range; accepted: an integer in [0, {MAX_SEED - cfg.n_seeds}]")
    positive("--kl-budget", cfg.kl_budget)
    for b in cfg.kl_budgets:
        positive("--kl-budgets", b)
    if cfg.kl_budgets and cfg.strength == "raw":
        raise SteerbenchError(f"--kl-budgets {','.join(f'{b:g}' for b in cfg.kl_budgets)} needs --strength matched "
                              "(a raw-strength run has no KL budget)")
    between("--min-pmass", cfg.min_pmass, 0.0, 1.0)
    one_of("--strength", cfg.strength, ("raw", "matched"))
    one_of("--split", cfg.split, SPLITS)
    parse_dtype(cfg.dtype)  # unknown dtype: the same one line the model loader gives
    if not cfg.methods:
        raise SteerbenchError("no methods given; give --methods with a comma list of registry names")
    for spec in parse_plugins(cfg.plugins):  # importable, a SteeringMethod, a free name: registered here
        load_plugin(spec)
    unknown = [m for m in [*cfg.methods, *cfg.method_options] if m not in REGISTRY]
    if unknown:
        raise SteerbenchError(f"unknown method {unknown[0]!r}; known methods: {', '.join(REGISTRY)}")
    for method, given in cfg.method_options.items():  # an option of a method that does not run would be ignored
        if given and method not in cfg.methods:
            raise SteerbenchError(f"--{method}.{next(iter(given))} is given, but {method} is not in --methods "
                                  f"({','.join(cfg.methods)}); accepted: options of the methods that run")
    if cfg.strength == "raw" and cfg.kl_budget != default_of(cfg, "kl_budget"):
        raise SteerbenchError(f"--kl-budget {cfg.kl_budget:g} needs --strength matched (a raw-strength run has no KL "
                              "budget)")
    check_device(cfg.device)
    check_run_name(cfg.run_name)
    check_cache_layout(cfg.cache_path())
    if cfg.suffix_file:
        load_suffixes(cfg.suffix_file, cfg.seed)  # a missing or malformed suffix file fails here, not after the model


# ------------------------------------------------------------------ committed files, never silently replaced
def tracked_files(path: Path) -> list[str]:
    """The files at or under ``path`` that git tracks (none outside a git checkout, or without git)."""
    import subprocess

    anchor = path if path.is_dir() else path.parent
    if not path.exists() or not anchor.is_dir():
        return []
    try:
        out = subprocess.run(["git", "ls-files", "--", str(path.resolve())], cwd=anchor, capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return []
    return out.stdout.split() if out.returncode == 0 else []


def check_overwrite(path: Path, overwrite: bool, what: str, remedy: str) -> None:
    """Refuse, in one line, to write over a committed run folder or tuned file unless ``--overwrite``."""
    if overwrite:
        return
    tracked = tracked_files(path)
    if tracked:
        raise SteerbenchError(f"{path} is committed ({what}: {len(tracked)} file(s) tracked by git) and would be "
                              f"overwritten; {remedy}, or add --overwrite to replace it")


def check_run_overwrite(run_dir: Path, overwrite: bool) -> None:
    check_overwrite(run_dir, overwrite, "a committed run", "give another --run-name")


def check_tune_overwrite(table_dir: Path, tuned_file: Path, reads: bool, overwrite: bool) -> None:
    """A tune replaces neither a committed tuning table nor a committed tuned file, nor (``reads``) the tuned
    file ``make bench`` reads, committed or not, unless ``--overwrite``."""
    remedy = "give --tuned-name NAME (make tune: TUNED_NAME=candidate) to write beside it"
    check_overwrite(table_dir, overwrite, "a committed tuning table", remedy)
    check_overwrite(tuned_file, overwrite, "committed tuned defaults", remedy)
    if reads and tuned_file.is_file() and not overwrite:
        raise SteerbenchError(f"{tuned_file} exists and make bench reads it as its defaults; {remedy}, or add "
                              "--overwrite to replace it")


# --------------------------------------------------------------------- after the model loads
def check_method_layers(options: dict[str, Any], loaded: "LoadedModel") -> None:
    """Every method's ``layers`` and ``modules`` against the loaded model, before any fit. (InnerPiSSA's
    ``measure_layer`` is clamped to the model by the method itself, so any index is accepted.)"""
    from bench.model.layers import find_linear_targets, resolve_layers

    n = loaded.n_layers
    for method, opts in options.items():
        values = dataclasses.asdict(opts) if dataclasses.is_dataclass(opts) else {}
        layers = None
        if isinstance(values.get("layers"), str) and values["layers"] != "all":
            try:
                layers = resolve_layers(values["layers"], n)
            except SteerbenchError as exc:
                raise SteerbenchError(f"--{method}.layers: {exc}") from None
        modules = values.get("modules")
        if isinstance(modules, str) and modules != "all":
            names = names_list(f"--{method}.modules", modules)
            try:
                find_linear_targets(loaded.model, names, layers if layers is not None else list(range(n)))
            except SteerbenchError as exc:
                raise SteerbenchError(f"--{method}.modules: {exc}") from None


# ------------------------------------------------------------------------- finished run folders
RUN_FILES = ("rows.parquet", "dilemmas.parquet", "status.json")


def check_run_folder(run_dir: str | Path) -> Path:
    """A finished run folder whose files all load: else one line naming the folder or file."""
    import json

    import pandas as pd

    run = Path(run_dir)
    if not run.is_dir():
        raise SteerbenchError(f"run folder {str(run)!r} does not exist (or is not a folder)")
    for name in RUN_FILES:
        path = run / name
        if not path.is_file():
            raise SteerbenchError(f"{str(run)!r} is not a finished run folder (no {name}); rerun the run to write it")
        try:
            if name.endswith(".parquet"):
                pd.read_parquet(path)
            else:
                json.loads(path.read_text())
        except Exception as exc:  # truncated or foreign file: ArrowInvalid, OSError, JSONDecodeError ...
            first = str(exc).splitlines()[0][:120] if str(exc) else ""
            raise SteerbenchError(f"{str(path)!r} could not be read ({type(exc).__name__}: {first}); "
                                  "rerun the run to rewrite it") from None
    return run
