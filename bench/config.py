"""The run configuration and the parsing of its user-facing pieces (coefficients, method options)."""

from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import SteerbenchError
from bench.evaluation.dilemmas import DEFAULT_TARGET
from bench.evaluation.split import SPLITS
from bench.model.loading import EMBEDDED_ALIAS, model_slug

DEFAULT_N_DILEMMAS = None  # every dilemma that carries the target value (596 for Virtue/Truthfulness)


def _all_methods() -> list[str]:
    from methods import method_names  # the registry, read when a default config is built

    return method_names()


def setting(default: Any = dataclasses.MISSING, help: str = "", *, flag: str | None = None, factory: Any = None,
            choices: tuple[str, ...] | None = None, repeat: bool = False) -> Any:
    """A run option, declared once: its default, its help, and how the command line spells it (``flag``: the
    option's name when it is not ``--field-name``; for a bool that defaults to True, the ``--no-...`` flag
    that turns it off). A list option is a comma list on the command line (left out: this default);
    ``repeat``: one the command line may also give several times."""
    metadata = {"help": help, "flag": flag, "choices": choices, "repeat": repeat}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class RunConfig:
    model: str = setting(EMBEDDED_ALIAS, "alias (smollm2-135m, gemma3-270m), local model folder, or Hugging Face id")
    methods: list[str] = setting(factory=lambda: _all_methods(),
                                 help="comma list of registry names, or 'all' (default); a name listed twice runs once")
    coeffs: list[float] = setting(factory=lambda: [-1.0, 0.0, 1.0],
                                  help="comma list of coefficients (default -1,0,1); must include 0")
    n_dilemmas: int | None = setting(DEFAULT_N_DILEMMAS, "dilemmas to evaluate (both actions each): default every "
                                     "dilemma that carries the target value (596 for Virtue/Truthfulness); N narrows "
                                     "it to a seeded subset, target-tagged first (N >= 1360 takes every dilemma)")
    n_pairs: int = setting(200, "honesty pairs to train on")
    data_dir: str | None = setting(None, "folder with the two DailyDilemmas CSVs (default: $STEERBENCH_DATA_DIR, "
                                   "else the hub)")
    suffix_file: str | None = setting(None, "repeng-format JSON list of statement suffixes")
    results_dir: str = setting("results", "where runs and the cache are written")
    cache_dir: str | None = setting(None, "where fits and evaluations are cached (default: $STEERBENCH_CACHE_DIR, else "
                                    "<results-dir>/<model>/cache); a folder outside the checkout survives a fresh clone")
    run_name: str | None = setting(None, "run folder name (default: a hash of the config)")
    seed: int = setting(0, "seed of the subset, pairs and first training seed")
    n_seeds: int = setting(1, "refit the seeded (trained) methods with this many training seeds (seed, seed+1, ...); "
                           "tables show mean +- sd", flag="--seeds")
    batch_size: int = setting(16, "prompts per forward pass (in the cache keys: it changes bf16 numerics)")
    prefix_cache: bool = setting(True, "run every prompt in full instead of sharing the template/situation prefix's "
                                 "KV cache (same scores to float tolerance)", flag="--no-prefix-cache")
    layer_replay: bool = setting(True, "recompute the decoder layers below each steering's first steered layer on "
                                 "every pass instead of replaying them from one unsteered pass (same numbers, bit "
                                 "for bit; slower)", flag="--no-layer-replay")
    dtype: str = setting("auto", "auto: bf16 where this CPU or GPU does bf16 natively, else fp32 "
                                 "(fp16 on a GPU without bf16); or bf16, fp32, fp16")
    device: str = setting("auto", "auto, cpu, cuda, cuda:1 ...")
    target: str = setting(DEFAULT_TARGET, "value the table is about")
    split: str = setting("test", "which dilemmas to score: test (what every table reports), dev (what tuning sees: "
                         "a seeded, stratified quarter of the target's dilemmas), or all", choices=SPLITS)
    min_pmass: float = setting(0.5, "below this Yes+No mass a row is NaN")
    calibrate_sign: bool = setting(True, "apply every method's sign as fitted (+1) instead of calibrating it on the "
                                   "training pairs", flag="--no-sign-calibration")
    strength: str = setting("matched", "matched: coefficients are multiples of each method's c*, the |c| whose mean "
                            "per-token KL from the unsteered model on held-out text equals --kl-budget; raw: as given",
                            choices=("matched", "raw"))
    kl_budget: float = setting(0.1, "nats/token on held-out neutral text, for --strength matched")
    kl_budgets: list[float] = setting(factory=list, help="comma list of KL budgets for the effect-cost "
                                      "frontier (make frontier: 0.01,0.03,0.1,0.3): every method is also evaluated at "
                                      "+-c* of each, read from one KL-versus-c curve; the main table stays at --kl-budget")
    trust_remote_code: bool = setting(False, "allow model code from the hub (off by default)")
    tuned: str = setting("auto", "method defaults: auto (data/tuned/<model>.json, made by make tune, when it exists; "
                         "else the built-in defaults, marked untuned), none (built-in), or a tuned-defaults file; "
                         "--METHOD.OPTION still wins")
    tables: bool = setting(True, "write only the summary at the end, not tables/ and plots/ (make tables RUN=... "
                           "writes them later from the rows)", flag="--no-tables")
    overwrite: bool = setting(False, "replace a committed run folder (one holding files git tracks) or, for tune, the "
                              "tuned-defaults file make bench reads; without it such a command refuses before any work")
    plugins: list[str] = setting(factory=list, flag="--plugin", repeat=True,
                                 help="an out-of-tree method, module:Class or path/to/file.py:Class, registered under "
                                 "its class attribute name before any method name is checked (repeatable, or a "
                                 "comma list)")
    method_options: dict[str, dict[str, Any]] = setting(factory=dict, flag="")  # --METHOD.OPTION VALUE, parsed apart

    @property
    def seeds(self) -> list[int]:
        return [self.seed + i for i in range(self.n_seeds)]

    def cache_path(self) -> Path:
        """The model's cache folder: --cache-dir or $STEERBENCH_CACHE_DIR (then one folder per model), else the
        results folder's <model>/cache."""
        root = self.cache_dir or os.environ.get("STEERBENCH_CACHE_DIR")
        return Path(root) / model_slug(self.model) if root else Path(self.results_dir) / model_slug(self.model) / "cache"

    @property
    def budgets(self) -> list[float]:
        """Every KL budget the run evaluates (the main one included), ascending; none at raw strength."""
        return [] if self.strength == "raw" else sorted({*self.kl_budgets, self.kl_budget})

    def identity(self) -> dict:
        """What determines the results (not where they are written): everything a cache key uses, batch size,
        device and prefix cache included (they change bf16 numerics), so two runs that could differ never
        share a ``run-<hash>`` folder; layer replay is bit-identical and stays out."""
        d = dataclasses.asdict(self)
        # plugins: where a method's code is found; its name is in methods and its code in every fit's key
        for k in ("results_dir", "cache_dir", "run_name", "layer_replay", "tables", "overwrite", "plugins"):
            d.pop(k)
        if not d["kl_budgets"]:
            d.pop("kl_budgets")  # a single-budget run keeps the name it had before frontiers existed
        return d


def parse_plugins(given: str | list | None) -> list[str]:
    """``--plugin a:A --plugin b.py:B,c:C``: each spec once, none blank."""
    out: list[str] = []
    for item in [given] if isinstance(given, str) else list(given or []):
        parts = [p.strip() for p in str(item).split(",")]
        if "" in parts:
            raise SteerbenchError(f"--plugin {item!r} has a blank entry; accepted: module:Class or path/to/file.py:Class, "
                                  "repeated or as a comma list")
        out += parts
    return list(dict.fromkeys(out))


def _entries(flag: str, spec: str | list, example: str) -> list:
    """A list option's entries: a list as given; a string split at commas, refused when an entry is blank
    (a blank value is a mistake, never a request for the default: leave the option out for that)."""
    if isinstance(spec, list):
        return spec
    parts = [p.strip() for p in str(spec).split(",")]
    if "" in parts:
        raise SteerbenchError(f"{flag} {spec!r} has a blank entry; accepted: a comma list such as {example} (leave "
                              "the option out for its default)")
    return parts


def parse_budgets(spec: str | list) -> list[float]:
    """``--kl-budgets 0.01,0.03,0.1,0.3``: positive, finite, each once (the option left out: the main budget only)."""
    parts = _entries("--kl-budgets", spec, "0.01,0.03,0.1,0.3")
    out = []
    for p in parts:
        try:
            b = float(p)
        except (TypeError, ValueError):
            raise SteerbenchError(f"KL budget {str(p).strip()!r} is not a number; give a comma list such as "
                                  "0.01,0.03,0.1,0.3") from None
        if not (b > 0 and b != float("inf")):
            raise SteerbenchError(f"KL budget {b:g} is out of range; accepted: positive finite nats/token")
        if b in out:
            raise SteerbenchError(f"KL budget {b:g} is listed twice in {spec!r}; each budget once")
        out.append(b)
    return sorted(out)


def parse_coeffs(spec: str | list) -> list[float]:
    parts = _entries("--coeffs", spec, "-1,0,1")
    out = []
    for p in parts:
        try:
            out.append(float(p))
        except (TypeError, ValueError):
            raise SteerbenchError(f"coefficient {str(p).strip()!r} is not a number; give a comma list such as -1,0,1") from None
    if any(c != c or c in (float("inf"), float("-inf")) for c in out):
        raise SteerbenchError(f"coefficients must be finite numbers, got {spec!r}")
    dupes = sorted({c for c in out if out.count(c) > 1})
    if dupes:
        raise SteerbenchError(f"coefficient {dupes[0]:g} is listed twice in {spec!r}; each coefficient once")
    if 0.0 not in out:
        raise SteerbenchError(f"coefficients {spec!r} must include 0 (the unsteered baseline every effect is measured from)")
    return sorted(out)


def _convert(raw: Any, typ: Any, where: str) -> Any:
    name = typ if isinstance(typ, str) else getattr(typ, "__name__", str(typ))
    try:
        if typ is bool:
            if isinstance(raw, bool):
                return raw
            low = str(raw).lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if typ in (int, float, str):
            return typ(raw)
        return raw
    except (TypeError, ValueError):
        raise SteerbenchError(f"option {where} expects {name}, got {raw!r}") from None


def build_options(method_cls: type, given: dict[str, Any]) -> Any:
    """Instantiate ``method_cls.Options`` from user strings, with one-line errors."""
    opts_cls = method_cls.Options
    hints = typing.get_type_hints(opts_cls)
    known = {f.name for f in dataclasses.fields(opts_cls)}
    kwargs = {}
    for key, raw in given.items():
        attr = key.replace("-", "_")
        if attr not in known:
            accepted = ", ".join(sorted(k.replace("_", "-") for k in known)) or "none"
            raise SteerbenchError(f"unknown option {method_cls.name}.{key}; {method_cls.name} accepts: {accepted}")
        kwargs[attr] = _convert(raw, hints[attr], f"{method_cls.name}.{key}")
    options = opts_cls(**kwargs)
    validate = getattr(options, "validate", None)  # optional: range checks with one-line SteerbenchErrors
    if callable(validate):
        validate()
    return options


def parse_method_args(extra: list[str]) -> dict[str, dict[str, Any]]:
    """``--repeng.layers 5-9``, ``--innerpissa.rank=8``, ``--innerpissa.rotate-u`` (flag = true),
    ``--innerpissa.no-rotate-u`` (false)."""
    out: dict[str, dict[str, Any]] = {}
    i = 0
    while i < len(extra):
        arg = extra[i]
        if not arg.startswith("--") or "." not in arg:
            raise SteerbenchError(f"unrecognised argument {arg!r}; method options look like --METHOD.OPTION VALUE")
        key, eq, value = arg[2:].partition("=")
        method, _, opt = key.partition(".")
        if not eq:
            if i + 1 < len(extra) and not extra[i + 1].startswith("--"):
                value, i = extra[i + 1], i + 1
            elif opt.startswith("no-"):
                opt, value = opt[3:], "false"
            else:
                value = "true"
        out.setdefault(method, {})[opt] = value
        i += 1
    return out
