"""Which options a run starts each method from: the tuned choice committed for its model, or its built-in
defaults (untuned; "no grid" when the tuning grid has no entry for it, as for a new plugin).

Read by every run (``Runner``); written by ``make tune`` (``bench.running.tuning``), which imports this module
and never the other way round.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from bench.errors import SteerbenchError
from bench.model.loading import model_slug
from bench.paths import data_file

if TYPE_CHECKING:
    from bench.config import RunConfig

GRID_FILE = data_file("tuning_grid.json")
TUNED_DIR = data_file("tuned")  # data/tuned/<model>.json: what make tune chose, what make bench starts from


def read_tuned(model: str, path: Path | None = None) -> dict | None:
    """The committed tuned options for a model (None: none committed, the run is untuned)."""
    path = path or TUNED_DIR / f"{model_slug(model)}.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        if not isinstance(data["methods"], dict):
            raise ValueError("methods is not a mapping")
    except (ValueError, KeyError) as exc:
        raise SteerbenchError(f"tuned-defaults file {path} cannot be read ({type(exc).__name__}); rerun make tune") from None
    return {**data, "path": str(path)}


def grid_methods(path: Path = GRID_FILE) -> set[str]:
    """The methods the grid has an entry for (read, not checked: ``load_grid`` checks a grid before a tune)."""
    try:
        return set(json.loads(Path(path).read_text())["methods"])
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def starting_points(cfg: "RunConfig") -> dict[str, dict]:
    """Each method's starting options for a run: the committed tuned choice for this model, or untuned."""
    tuned = None if cfg.tuned == "none" else read_tuned(cfg.model, None if cfg.tuned == "auto" else Path(cfg.tuned))
    if tuned is None and cfg.tuned not in ("auto", "none"):
        raise SteerbenchError(f"--tuned {cfg.tuned!r} is not a file; accepted: auto, none, or a tuned-defaults file")
    out, in_grid = {}, None
    for name in cfg.methods:
        entry = (tuned or {}).get("methods", {}).get(name)
        if not entry:
            in_grid = grid_methods() if in_grid is None else in_grid
            out[name] = {"untuned": True} if name in in_grid else {"untuned": True, "no_grid": True}
            continue
        source = {"file": tuned["path"], "grid_sha": tuned.get("grid_sha")}
        if entry.get("candidate"):
            out[name] = {**source, "candidate": entry["candidate"], "options": entry.get("options", {})}
        else:  # tuned, but the rule found no candidate in range on dev: the built-in defaults
            out[name] = {**source, "candidate": None, "options": {}, "none_in_range": True}
    return out
