"""A trained method's Effect against its training volume (optimiser steps), over training seeds.

Reads finished runs of one method that differ only in how long it trained (``--METHOD.epochs``), each with
several training seeds (dev dilemmas: choosing a default is tuning), and writes ``training_volume.{csv,md,
tex}`` and ``training_volume.{png,pdf}``: per run, the optimiser steps each seed ran (early stopping may end
a fit before its planned steps), each seed's Effect, the mean with its two-level CI, the seed SD, sign
stability, and the default the curve picks: the fewest steps whose mean Effect is within one seed SD of the
best mean (the SD of that best run).

Use: ``python -m bench.results.training_volume RUN [RUN ...] --out FOLDER [--method antipasto]``
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from bench.results.plots import plt, save
from bench.results.render import write_table
from bench.results.report import load_run, run_min_pmass
from bench.results.stats import analyse

TARGET = "Virtue/Truthfulness"


def volume_records(runs: list[Path], method: str, value: str = TARGET) -> pd.DataFrame:
    records = []
    for run in runs:
        rows, dilemmas, status = load_run(run)
        config = json.loads((run / "config.json").read_text())
        seeds = status[method].get("seeds", {})
        steps = [seeds[s]["meta"]["describe"].get("steps_run") for s in sorted(seeds, key=int)]
        planned = [seeds[s]["meta"]["describe"].get("steps_planned") for s in sorted(seeds, key=int)]
        st = analyse(rows[rows["method"] == method], dilemmas, value, run_min_pmass(run))
        records.append({"run": run.name, "epochs": config["method_options"].get(method, {}).get("epochs"),
                        "steps planned": planned[0] if planned else math.nan,
                        "steps run (per seed)": " / ".join(str(s) for s in steps),
                        "mean steps": float(np.mean(steps)) if steps else math.nan,
                        "Effect per seed": " / ".join(f"{e:+.3f}" for e in st.effect_by_seed),
                        "effect": st.effect, "ci_low": st.ci_low, "ci_high": st.ci_high, "seed_sd": st.effect_sd,
                        "sign_stable": st.sign_stable, "n_common": st.n_common, "in_range": st.in_range,
                        "n_seeds": st.n_seeds})
    table = pd.DataFrame(records).sort_values("steps planned").reset_index(drop=True)
    table["chosen"] = choose(table)
    return table


def choose(table: pd.DataFrame) -> list[bool]:
    """The fewest planned steps whose mean Effect is within one seed SD of the best mean Effect."""
    if table.empty or table["effect"].isna().all():
        return [False] * len(table)
    best = table["effect"].idxmax()
    sd = table.loc[best, "seed_sd"]
    bar = table.loc[best, "effect"] - (sd if sd == sd else 0.0)
    ok = table.index[table["effect"] >= bar]
    pick = table.loc[ok, "steps planned"].idxmin()
    return [i == pick for i in table.index]


def volume_plot(table: pd.DataFrame, method: str, value: str):
    fig, ax = plt.subplots(figsize=(5.4, 3.8))
    for i, r in table.iterrows():
        effects = [float(x) for x in r["Effect per seed"].split(" / ")] if r["Effect per seed"] else []
        steps = [float(s) for s in str(r["steps run (per seed)"]).split(" / ")] if effects else []
        ax.scatter(steps, effects, s=14, color="0.55", zorder=2, label="one seed" if i == 0 else None)
    ax.errorbar(table["steps planned"], table["effect"],
                yerr=[table["effect"] - table["ci_low"], table["ci_high"] - table["effect"]],
                fmt="o-", color="C0", capsize=3, zorder=3, label="mean over seeds, 95% CI (seeds x dilemmas)")
    for _, r in table[table["chosen"]].iterrows():  # the default the rule picks
        ax.annotate("chosen", (r["steps planned"], r["effect"]), textcoords="offset points", xytext=(6, 6), fontsize=7)
    ax.axhline(0, color="0.3", lw=0.7)
    ax.set_xscale("log")
    ax.set_xticks(table["steps planned"], [f"{s:g}" for s in table["steps planned"]])  # the steps run, not 10^k
    ax.minorticks_off()
    ax.set_xlabel("optimiser steps (planned; grey: steps each seed ran)")
    ax.set_ylabel(f"Effect on {value.split('/')[-1]} (dev)")
    ax.set_title(f"{method}: Effect against training volume")
    ax.legend(fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)  # below: no overlap
    return fig


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--method", default="antipasto")
    p.add_argument("--value", default=TARGET)
    args = p.parse_args(argv)
    table = volume_records(args.runs, args.method, args.value)
    write_table(args.out, "training_volume", table,
                caption=f"{args.method}: Effect on {args.value} (dev dilemmas, KL-matched) against optimiser steps, "
                        f"over training seeds; chosen: the fewest steps within one seed SD of the best mean Effect")
    save(volume_plot(table, args.method, args.value), args.out, "training_volume")
    print(table.to_string())


if __name__ == "__main__":
    main()
