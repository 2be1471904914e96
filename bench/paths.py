"""Where the shipped data lives: ``data/`` at the top of a source checkout (where researchers edit the
honesty statements, held-out texts, probes and grids), ``bench/data/`` inside an installed wheel (setuptools
maps the folder there; see pyproject.toml)."""

from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent
DATA_DIR = next((d for d in (_HERE.parent / "data", _HERE / "data") if d.is_dir()), _HERE.parent / "data")


def data_file(name: str) -> Path:
    """A shipped data file by name (``heldout_nll.json``)."""
    return DATA_DIR / name
