"""DailyDilemmas: loading (hub or local folder), value labels, deterministic subsets.

Each dilemma has two rows (actions ``to_do`` / ``not_to_do``), each tagged with raw values. A raw
value ``v`` becomes the label ``Value/v`` plus ``<Framework>/<name>`` for each framework column of
``values.csv`` that maps it (e.g. honesty -> ``Virtue/Truthfulness``).
"""

from __future__ import annotations

import ast
import logging
import random
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.errors import SteerbenchError

log = logging.getLogger(__name__)

HUB_ID = "kellycyy/daily_dilemmas"
DILEMMA_FILE = "dilemma_to_action_to_values_aggregated.csv"
VALUES_FILE = "values.csv"
REQUIRED_COLUMNS = ("idx", "dilemma_idx", "dilemma_situation", "action_type", "action", "values_aggregated")
FRAMEWORKS = ("WVS", "MFT", "Virtue", "Emotion", "Maslow")
DEFAULT_TARGET = "Virtue/Truthfulness"


@dataclass
class Dilemmas:
    rows: pd.DataFrame  # one row per action; column `labels`: list of value labels of this action
    label_names: list[str]

    def dilemma_ids(self) -> list[int]:
        return sorted(self.rows["dilemma_idx"].unique().tolist())


def _parse_values(cell: object, row_idx: object) -> list[str]:
    if isinstance(cell, list):
        return [str(v) for v in cell]
    try:
        parsed = ast.literal_eval(str(cell))
    except (ValueError, SyntaxError):
        parsed = None
    if not isinstance(parsed, list):
        raise SteerbenchError(
            f"row idx={row_idx}: values_aggregated must be a list such as \"['honesty', 'trust']\", got {str(cell)[:60]!r}"
        )
    return [str(v) for v in parsed]


def _read_local(data_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    if not data_dir.is_dir():
        raise SteerbenchError(f"data directory {str(data_dir)!r} does not exist; it must hold {DILEMMA_FILE} and {VALUES_FILE}")
    for name in (DILEMMA_FILE, VALUES_FILE):
        if not (data_dir / name).is_file():
            raise SteerbenchError(f"data directory {str(data_dir)!r} is missing {name} (it needs {DILEMMA_FILE} and {VALUES_FILE})")
    return _read_csv(data_dir / DILEMMA_FILE), _read_csv(data_dir / VALUES_FILE)


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise SteerbenchError(f"{str(path)!r} is empty (no header, no rows); restore the DailyDilemmas file") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        first = str(exc).splitlines()[0][:120] if str(exc) else ""
        raise SteerbenchError(f"{str(path)!r} is not a readable CSV ({type(exc).__name__}: {first})") from None


def _clean_rows(raw: pd.DataFrame) -> pd.DataFrame:
    """Duplicated rows and one-sided dilemmas, decided at load time.

    - A row repeated exactly (every column equal) is dropped with a warning: it carries no new information,
      and kept it would count its dilemma twice.
    - Two different rows with the same ``idx``, or for the same dilemma and action type, are ambiguous:
      rejected with a one-line error.
    - A dilemma with only one action cannot be scored (its two rows are compared): dropped, with a warning
      giving how many.
    """
    exact = raw.astype(str).duplicated()  # str: list-valued cells from the hub are not hashable
    if exact.any():
        log.warning("%s: %d exactly duplicated row(s) dropped (first: idx=%s)", DILEMMA_FILE, int(exact.sum()),
                    raw.loc[exact, "idx"].iloc[0])
        raw = raw[~exact]
    for cols, what in ((["idx"], "idx"), (["dilemma_idx", "action_type"], "(dilemma_idx, action_type)")):
        dup = raw.duplicated(cols, keep=False)
        if dup.any():
            first = raw.loc[dup, cols].iloc[0].tolist()
            raise SteerbenchError(f"{DILEMMA_FILE}: {int(dup.sum())} rows share an {what} with different content "
                                  f"(first: {what}={first if len(first) > 1 else first[0]}); each must be unique")
    sizes = raw.groupby("dilemma_idx")["action_type"].transform("size")
    one_sided = sizes < 2
    if one_sided.any():
        log.warning("%s: %d dilemma(s) with only one action dropped (a dilemma is scored on both its actions)",
                    DILEMMA_FILE, int(raw.loc[one_sided, "dilemma_idx"].nunique()))
        raw = raw[~one_sided]
    if raw.empty:
        raise SteerbenchError(f"{DILEMMA_FILE} has no dilemma with both actions (to_do and not_to_do)")
    return raw


def _read_hub() -> tuple[pd.DataFrame, pd.DataFrame]:
    try:
        from datasets import load_dataset

        dilemmas = load_dataset(HUB_ID, split="test").to_pandas()
        values = load_dataset(HUB_ID, name="Values", split="test").to_pandas()
    except Exception as exc:  # network, auth, or a changed hub layout: all mean "use a local copy"
        raise SteerbenchError(
            f"could not load {HUB_ID} from the Hugging Face hub ({type(exc).__name__}: "
            f"{(str(exc).splitlines() or [''])[0][:200]}); pass --data-dir "
            f"(or STEERBENCH_DATA_DIR) pointing at a folder with {DILEMMA_FILE} and {VALUES_FILE}"
        ) from None
    return dilemmas, values


def value_label_map(values: pd.DataFrame) -> dict[str, list[str]]:
    """raw value -> its labels: Value/<raw> plus Framework/<name> for each mapped framework."""
    if "value" not in values.columns:
        raise SteerbenchError(f"{VALUES_FILE} has no 'value' column (columns: {list(values.columns)})")
    out: dict[str, list[str]] = {}
    for _, r in values.iterrows():
        raw = str(r["value"]).strip().lower()
        labels = [f"Value/{raw}"]
        for fw in FRAMEWORKS:
            name = r.get(fw)
            if isinstance(name, str) and name.strip():
                labels.append(f"{fw}/{name.strip()}")
        out[raw] = labels
    return out


def load_dilemmas(data_dir: str | Path | None = None) -> Dilemmas:
    raw, values = _read_local(Path(data_dir)) if data_dir else _read_hub()
    missing = [c for c in REQUIRED_COLUMNS if c not in raw.columns]
    if missing:
        raise SteerbenchError(f"{DILEMMA_FILE} is missing column(s) {missing}; required: {list(REQUIRED_COLUMNS)}")
    bad_types = sorted(set(raw["action_type"]) - {"to_do", "not_to_do"})
    if bad_types:
        raise SteerbenchError(f"{DILEMMA_FILE}: action_type must be to_do or not_to_do, got {bad_types[:3]}")
    label_map = value_label_map(values)
    rows = _clean_rows(raw).copy()
    rows["raw_values"] = [_parse_values(c, i) for c, i in zip(rows["values_aggregated"], rows["idx"])]
    rows["labels"] = [
        sorted({lab for v in vals for lab in label_map.get(v.strip().lower(), [f"Value/{v.strip().lower()}"])})
        for vals in rows["raw_values"]
    ]
    rows = rows.sort_values(["dilemma_idx", "action_type"], ascending=[True, False]).reset_index(drop=True)
    names = sorted({lab for labs in rows["labels"] for lab in labs})
    return Dilemmas(rows=rows, label_names=names)


def check_target(dilemmas: Dilemmas, target: str) -> None:
    if target in dilemmas.label_names:
        return
    import difflib

    close = difflib.get_close_matches(target, dilemmas.label_names, n=5, cutoff=0.4)
    raise SteerbenchError(f"no dilemma carries the value {target!r}; close matches: {close or 'none'}")


def select_subset(dilemmas: Dilemmas, n_dilemmas: int | None, target: str, seed: int) -> Dilemmas:
    """Seeded subset of whole dilemmas (both actions kept), those tagged with ``target`` first; ``None``:
    every dilemma tagged with ``target``."""
    ids = dilemmas.dilemma_ids()
    tagged = set(dilemmas.rows.loc[dilemmas.rows["labels"].apply(lambda labs: target in labs), "dilemma_idx"])
    if n_dilemmas is None:  # the default: every dilemma that carries the target value
        n_dilemmas = len(tagged)
    if n_dilemmas <= 0:
        raise SteerbenchError(f"n_dilemmas must be a positive integer, got {n_dilemmas}")
    if n_dilemmas > len(ids):
        log.warning("n_dilemmas=%d is more than the %d available: using all of them", n_dilemmas, len(ids))
        n_dilemmas = len(ids)
    rng = random.Random(seed)
    first = sorted(tagged)
    rest = sorted(set(ids) - tagged)
    rng.shuffle(first)
    rng.shuffle(rest)
    chosen = set((first + rest)[:n_dilemmas])
    rows = dilemmas.rows[dilemmas.rows["dilemma_idx"].isin(chosen)].reset_index(drop=True)
    names = sorted({lab for labs in rows["labels"] for lab in labs})
    return Dilemmas(rows=rows, label_names=names)
