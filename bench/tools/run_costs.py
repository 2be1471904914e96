"""What a finished run cost, read from its ``status.json`` (``make perf`` sections 5-7): training cost per
method, the wall time by stage, each training seed's share, and the frontier's stages.

Read from the records the runner writes, so these figures describe the committed runs themselves; a run whose
fits came from the cache is labelled with how many it computed, never passed off as a cold start.
"""

from __future__ import annotations

import json
from pathlib import Path

from tabulate import tabulate

from bench.tools.timing import Measure, at_most


def first_process(status: dict) -> dict:
    """The work record of the first process that wrote the run (a folder several runs wrote holds each one's;
    a status from before per-process records is one record)."""
    run = status.get("_run", {})
    return next(iter(run.get("processes", {}).values()), run)


def run_cost_measures(run_dir: Path | None, frontier: Path | None) -> list[Measure]:
    """Print the run's cost tables; return its wall-time measure (target: 15 min for the default run)."""
    report: list[Measure] = []
    if run_dir and (run_dir / "status.json").is_file():
        status = json.loads((run_dir / "status.json").read_text())
        first = first_process(status)
        wall = first.get("wall_seconds")
        if wall:  # a run whose fits came from the cache is no cold-start measurement: the label says so
            fits = first.get("computed", {}).get("fits")
            report.append(at_most(f"6. default make bench wall time, minutes ({run_dir}; {fits} fits computed in it)",
                                  wall / 60, 15))
        table = [(m, i["meta"].get("fit_seconds"), round(i["meta"]["fit_seconds"] / max(i["meta"].get("n_pairs", 1), 1), 3),
                  i["meta"].get("peak_rss_mb")) for m, i in status.items() if not m.startswith("_") and "meta" in i]
        print("\n5. training cost per method (from the run's status.json)")
        print(tabulate(table, headers=["method", "fit s", "s / pair", "peak RSS MB (process, so far)"], tablefmt="github"))
        print_stages(status, f"6. the run's wall time by stage ({run_dir})")
        print_seed_costs(status)
    else:
        print("\n5./6. training cost and wall time: pass PERF_RUN=<a finished default make bench run>")
    if frontier and (frontier / "status.json").is_file():  # what the frontier's extra budgets cost, stage by stage
        print_stages(json.loads((frontier / "status.json").read_text()), f"7. the frontier run's wall time by stage ({frontier})")
    return report


def print_seed_costs(status: dict) -> None:
    """What each training seed of each method cost in the run (fit or load; c* search, sign, probe, scoring)."""
    rows = [(m, seed, *[v.get("seed_seconds", {}).get(k, "") for k in ("fit or load", "c*, sign, probe, scoring")])
            for m, info in status.items() if not m.startswith("_")
            for seed, v in (info.get("seeds") or {}).items() if v.get("seed_seconds")]
    if rows:
        print("\n6b. wall seconds per training seed (seeded methods repeat these per seed; 0-ish where cached)")
        print(tabulate(rows, headers=["method", "seed", "fit or load", "c*, sign, probe, scoring"], tablefmt="github"))


def print_stages(status: dict, title: str) -> None:
    """A run's wall time by stage, as shares of its first process's wall time."""
    first = first_process(status)
    wall, stage_seconds = first.get("wall_seconds"), first.get("stage_seconds")
    if not (wall and stage_seconds):
        return
    print(f"\n{title}: {wall / 60:.1f} min in all; peak RSS {first.get('peak_rss_mb', '?')} MB")
    rows = [(k, v, f"{v / wall:.1%}") for k, v in stage_seconds.items()]
    rows.append(("outside any stage (tables, bookkeeping)", round(wall - sum(stage_seconds.values()), 1),
                 f"{1 - sum(stage_seconds.values()) / wall:.1%}"))
    print(tabulate(rows, headers=["stage", "seconds", "share"], tablefmt="github"))
