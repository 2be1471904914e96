"""Tables to files: markdown (bold cells marked), booktabs LaTeX and CSV, written atomically. A leaf: every
table writer (run tables, the frontier, cross-run tables) imports it, and it imports none of them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from tabulate import tabulate

from bench.results.display import cell
from bench.store import atomic_write_frame, atomic_write_text

LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                 "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    return "".join(LATEX_ESCAPES.get(ch, ch) for ch in str(text))


def to_markdown(frame: pd.DataFrame, bold: set[tuple[int, str]] = frozenset()) -> str:
    cols = list(frame.columns)
    rows = [[f"**{v}**" if (i, c) in bold and v != "" else str(v) for c, v in zip(cols, row)]
            for i, row in enumerate(frame.itertuples(index=False))]
    return tabulate(rows, headers=cols, tablefmt="github", disable_numparse=True) + "\n"


def to_latex(frame: pd.DataFrame, bold: set[tuple[int, str]] = frozenset(), caption: str = "") -> str:
    """booktabs LaTeX. Written here rather than by tabulate: its booktabs format escapes every cell, so a
    bold cell cannot be marked, and its raw format has no booktabs rules."""
    cols = list(frame.columns)
    spec = "l" + "r" * (len(cols) - 1)
    out = [f"% {latex_escape(caption)}" if caption else "%", rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
           " & ".join(latex_escape(c) for c in cols) + r" \\", r"\midrule"]
    for i, row in enumerate(frame.itertuples(index=False)):
        cells = [latex_escape(v) for v in row]
        cells = [rf"\textbf{{{v}}}" if (i, c) in bold and v != "" else v for c, v in zip(cols, cells)]
        out.append(" & ".join(cells) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(out) + "\n"


def write_table(folder: Path, name: str, frame: pd.DataFrame, bold: set[tuple[int, str]] = frozenset(),
                caption: str = "", p_columns: tuple[str, ...] = ()) -> None:
    """``frame`` as CSV (unrounded), Markdown and LaTeX (3 decimals; the ``p_columns`` as p-values: below 0.001
    in scientific notation, not rounded to 0.000)."""
    atomic_write_frame(folder / f"{name}.csv", frame)
    shown = frame.copy()
    for col in shown.columns:
        is_p = col in p_columns
        shown[col] = [cell(x, is_p) if isinstance(x, float) else x for x in shown[col]]
    atomic_write_text(folder / f"{name}.md", (f"{caption}\n\n" if caption else "") + to_markdown(shown, bold))
    atomic_write_text(folder / f"{name}.tex", to_latex(shown, bold, caption))
