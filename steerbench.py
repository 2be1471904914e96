"""steerbench's Python API: fit a steering method, steer a model with it, run the benchmark, read a run.

>>> import steerbench as sb
>>> loaded = sb.load_model("smollm2-135m")                         # doctest: +SKIP
>>> steering = sb.fit("repeng", loaded, pairs=sb.make_pairs(loaded, n=64))  # doctest: +SKIP
>>> sb.generate(loaded, steering, "Should I lie?", 1.0)           # doctest: +SKIP
>>> run = sb.load_run("results/smollm2-135m/default")            # doctest: +SKIP
>>> run.tables["main"].head()                                    # doctest: +SKIP

Fitting needs no DailyDilemmas. Fits are cached and guarded exactly as a run's are (the same keys: a fit made
here is the one ``steerbench run`` reuses for the same pairs, seed and batch size). docs/api.md has more.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from bench.api.pairs import HonestyPair
from bench.api.pairs import make_pairs as _make_pairs
from bench.api.steering import Steering, SteeringMethod
from bench.config import RunConfig, build_options
from bench.errors import SteerbenchError
from bench.model.chat import DEFAULT_SYSTEM, render
from bench.model.loading import EMBEDDED_ALIAS, LoadedModel
from bench.model.loading import load_model as _load_model
from bench.model.padding import encode, left_padded_batches
from bench.running.session import FitSession
from bench.running.validate import check_run_folder
from methods import get_method_class, register_method

__all__ = ["LoadedModel", "RunConfig", "RunResults", "Steering", "fit", "generate", "load_model", "load_run",
           "make_pairs", "run"]


def load_model(model: str = EMBEDDED_ALIAS, dtype: str = "auto", device: str = "auto") -> LoadedModel:
    """Load a model as every run does: an alias (``smollm2-135m``, the embedded one, offline; ``gemma3-270m``),
    a local ``from_pretrained`` folder or a Hugging Face id; ``dtype`` auto is bf16 where the hardware does it
    natively, else fp32.

    >>> loaded = load_model("smollm2-135m")  # doctest: +SKIP
    >>> loaded.n_layers                      # doctest: +SKIP
    30
    """
    return _load_model(model, dtype, device)


def make_pairs(loaded: LoadedModel, n: int = 200, seed: int = 0) -> list[HonestyPair]:
    """The honesty contrastive pairs every method learns from, rendered with the model's chat template.

    >>> pairs = make_pairs(loaded, n=64)  # doctest: +SKIP
    >>> pairs[0].positive                 # doctest: +SKIP
    '<|im_start|>system ... an honest person ...'
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise SteerbenchError(f"make_pairs: n {n!r} is out of range; accepted: an integer >= 1")
    return _make_pairs(loaded.tokenizer, n, seed)


def _method_name(method: str | type[SteeringMethod]) -> str:
    if isinstance(method, str):
        get_method_class(method)  # an unknown name: one line with the known ones
        return method
    if isinstance(method, type) and issubclass(method, SteeringMethod) and isinstance(getattr(method, "name", None), str):
        return register_method(method.name)(method).name  # a class defined here and now (a notebook cell)
    raise SteerbenchError(f"fit: method {method!r} is not accepted; accepted: a registered name, or a "
                          "SteeringMethod subclass with a name")


def fit(method: str | type[SteeringMethod], loaded: LoadedModel, pairs: list[HonestyPair] | None = None,
        seed: int = 0, cache_dir: str | Path | None = None, **options: Any) -> Steering:
    """Fit ``method`` (a registered name, or a ``SteeringMethod`` subclass) on ``pairs`` (default: 200 pairs)
    and return its ``Steering``. ``options`` are the method's (``bench list``), as Python values or strings.
    The fit is cached under ``cache_dir`` (default: what ``steerbench run`` uses, ``$STEERBENCH_CACHE_DIR/<model>``
    or ``results/<model>/cache``) and the model is checked to be left as it was.

    >>> steering = fit("repeng", loaded, pairs=make_pairs(loaded, n=64), layers="0.4:0.8")  # doctest: +SKIP
    >>> with steering.apply(loaded.model, 1.0) as model:                                  # doctest: +SKIP
    ...     logits = model(**inputs).logits
    """
    name = _method_name(method)
    pairs = make_pairs(loaded) if pairs is None else pairs
    if not pairs:
        raise SteerbenchError("fit: pairs is empty; accepted: a list of honesty pairs (make_pairs)")
    # a run's defaults (its cache folder, its batch size: both in the fit's key), so a run reuses this fit
    cfg = RunConfig(model=loaded.name, methods=[name], cache_dir=None if cache_dir is None else str(cache_dir))
    session = FitSession(loaded, pairs, cfg.cache_path(), seed, cfg.batch_size,
                         {name: build_options(get_method_class(name), options)})
    return session.fit(name).steering


def generate(loaded: LoadedModel, steering: Steering, prompt: str, coeff: float, max_new_tokens: int = 40) -> str:
    """Greedy reply of the model steered at ``coeff`` to one user ``prompt`` (the chat template and the
    benchmark's system message, which a prompting method changes).

    >>> for c in (-1.0, 0.0, 1.0):                                  # doctest: +SKIP
    ...     print(c, generate(loaded, steering, "Should I tell the truth?", c))
    """
    if not steering.supports(coeff):
        raise SteerbenchError(f"generate: coefficient {coeff:g} is not supported by this steering; accepted: "
                              f"{steering.supported_coeffs}")
    tok = loaded.tokenizer
    text = render(tok, prompt, "", steering.system_prompt(coeff, DEFAULT_SYSTEM))
    _, batch = next(left_padded_batches(encode(tok, [text]), 1, tok.pad_token_id, loaded.device))
    with steering.apply(loaded.model, coeff) as model, torch.inference_mode():
        out = model.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                             max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
    return tok.decode(out[0, batch["input_ids"].shape[1]:], skip_special_tokens=True)


def run(config: RunConfig) -> Path:
    """Run the benchmark as ``steerbench run`` does (it needs DailyDilemmas); returns the run folder.

    >>> folder = run(RunConfig(methods=["prompting", "repeng"], n_dilemmas=16, run_name="smoke"))  # doctest: +SKIP
    """
    from bench.running.runner import Runner

    return Runner(config).run()


@dataclass
class RunResults:
    """A finished run, read back: its rows, dilemmas and off-target control items as DataFrames, its status
    (per-method facts) and every table of its ``tables/`` folder by file stem (``main``, ``frameworks``, ...)."""

    path: Path
    rows: pd.DataFrame
    dilemmas: pd.DataFrame
    control: pd.DataFrame
    status: dict
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)


def load_run(path: str | Path) -> RunResults:
    """Read a finished run folder (no model is loaded).

    >>> results = load_run("results/smollm2-135m/default")  # doctest: +SKIP
    >>> results.tables["main"][["method", "effect"]]          # doctest: +SKIP
    """
    folder = check_run_folder(path)  # one line when the folder is not a finished run
    control = folder / "control.parquet"
    tables = {p.stem: pd.read_csv(p) for p in sorted((folder / "tables").glob("*.csv"))}
    return RunResults(folder, pd.read_parquet(folder / "rows.parquet"), pd.read_parquet(folder / "dilemmas.parquet"),
                      pd.read_parquet(control) if control.is_file() else pd.DataFrame(),
                      json.loads((folder / "status.json").read_text()), tables)
