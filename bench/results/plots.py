"""Paper plots from stored rows (PNG and PDF, deterministic bytes): score vs coefficient with 95% CI
bands, the Effect-vs-dNLL trade-off, and per-framework bars."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench.evaluation.dilemmas import FRAMEWORKS  # noqa: E402
from bench.results.report import framework_table  # noqa: E402

# Fixed metadata so a second call writes byte-identical files.
METADATA = {"png": {"Software": None}, "pdf": {"CreationDate": None, "ModDate": None, "Producer": None,
                                               "Creator": None}}
plt.rcParams.update({"font.size": 9, "axes.titlesize": 10, "figure.dpi": 100, "svg.hashsalt": "steerbench"})


def _legend(ax, ncol: int = 1) -> None:
    if ax.get_legend_handles_labels()[0]:  # an empty run has nothing to label
        ax.legend(fontsize=7, ncol=ncol, frameon=False)


def save(fig, folder: Path, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    for ext in ("png", "pdf"):
        fig.savefig(folder / f"{name}.{ext}", metadata=METADATA[ext], dpi=150)
    plt.close(fig)


def score_vs_coeff(scores: pd.DataFrame, value: str, methods: list[str]):
    fig, ax = plt.subplots(figsize=(5.0, 3.4))
    sub = scores[scores["value"] == value]  # common dilemmas of each method; seeds averaged per dilemma
    sub = sub.groupby(["method", "coeff", "dilemma_idx"], as_index=False)["score"].mean()
    for m in methods:
        g = sub[sub["method"] == m].groupby("coeff")["score"]
        mean, se = g.mean(), g.std(ddof=1) / np.sqrt(g.count())
        if mean.empty:
            continue
        ax.plot(mean.index, mean.values, marker="o", label=m)
        ax.fill_between(mean.index, mean - 1.96 * se, mean + 1.96 * se, alpha=0.15)
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_xlabel("steering coefficient c")
    ax.set_ylabel(f"{value} score (log-odds)")
    ax.set_title(f"{value} vs coefficient (common dilemmas, 95% CI)")
    _legend(ax, ncol=2)
    return fig


COST_AXES = {
    "dnll": "dNLL on held-out text (nats/token, worse end of the sweep)",
    "kl": "KL from the unsteered model on held-out text (nats/token, at c*)",
}


def effect_vs_cost(raw: pd.DataFrame, value: str, cost: str = "dnll"):
    """Effect against a coherence cost: dNLL (every run) or the KL reached (matched-strength runs)."""
    fig, ax = plt.subplots(figsize=(5.0, 3.4))
    ok = raw.dropna(subset=["effect", cost]) if "effect" in raw and cost in raw else raw.iloc[0:0]
    for _, r in ok.iterrows():  # out-of-range methods are drawn hollow: their Effect is not comparable
        # clipped at 0: a percentile CI need not contain the point estimate when it is skewed
        err = [[max(r["effect"] - r["ci_low"], 0.0)], [max(r["ci_high"] - r["effect"], 0.0)]] \
            if np.isfinite(r["ci_low"]) else None
        hollow = not bool(r.get("in_range", True))
        ax.errorbar(r[cost], r["effect"], yerr=err, fmt="o", capsize=3, mfc="none" if hollow else None,
                    label=r["method"] + (" (out of range)" if hollow else ""))
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_xlabel(COST_AXES[cost])
    ax.set_ylabel(f"Effect on {value} (log-odds)")
    ax.set_title("Steering vs coherence cost (up-left is better)")
    _legend(ax)
    return fig


def framework_bars(effects: pd.DataFrame, methods: list[str]):
    table = framework_table(effects, methods).set_index("method")
    fig, ax = plt.subplots(figsize=(6.0, 3.4))
    width = 0.8 / max(len(table), 1)
    x = np.arange(len(FRAMEWORKS))
    for i, (m, row) in enumerate(table.iterrows()):
        ax.bar(x + i * width - 0.4 + width / 2, row.reindex(FRAMEWORKS).fillna(0).values, width, label=m)
    ax.axhline(0, color="grey", lw=0.6)
    ax.set_xticks(x, FRAMEWORKS)
    ax.set_xlabel("value framework")
    ax.set_ylabel("mean Effect (log-odds)")
    ax.set_title("Mean Effect per framework family")
    _legend(ax, ncol=2)
    return fig


def frontier_plot(table: pd.DataFrame, value: str):
    """Effect against the KL reached (log x), one line per method, 95% CI bars, hollow markers out of range;
    the random vector drawn as the noise floor: a dashed line inside its shaded CI band. Methods are dodged
    sideways by a few percent of KL (said on the axis) so that bars at one budget do not hide each other."""
    fig, ax = plt.subplots(figsize=(8.0, 4.0))
    ok = table.dropna(subset=["effect", "kl"]) if "effect" in table else table.iloc[0:0]
    ok = ok[ok["kl"] > 0]
    colors = [c for i, c in enumerate(plt.get_cmap("tab10").colors) if i != 7]  # grey is the noise floor's
    methods = [m for m in dict.fromkeys(ok["method"]) if m != "random"]
    for i, (method, g) in enumerate(ok.groupby("method", sort=False)):
        g = g.sort_values("kl")
        if method == "random":
            ax.fill_between(g["kl"], g["ci_low"], g["ci_high"], color="grey", alpha=0.2, lw=0)
            ax.plot(g["kl"], g["effect"], ls="--", color="grey", lw=1, label="random (noise floor, 95% CI band)")
            continue
        k = methods.index(method)
        color, dodge = colors[k % len(colors)], 1.05 ** (k - (len(methods) - 1) / 2)
        x = g["kl"] * dodge
        ax.plot(x, g["effect"], color=color, lw=1, label=method)
        for xi, (_, r) in zip(x, g.iterrows()):
            err = [[max(r["effect"] - r["ci_low"], 0.0)], [max(r["ci_high"] - r["effect"], 0.0)]]
            ax.errorbar(xi, r["effect"], yerr=err, fmt="o", ms=4, capsize=2, color=color,
                        mfc=color if bool(r["in_range"]) else "white")
    ax.set_xscale("log")
    ax.axhline(0, color="black", lw=0.5)
    ax.set_xlabel("KL from the unsteered model on held-out text at +-c* (nats/token, log scale)")
    ax.set_ylabel(f"Effect on {value} (log-odds)")
    ax.set_title("Effect-cost frontier, test dilemmas (hollow: out of range; methods dodged sideways)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def build_plots(folder: Path, scores: pd.DataFrame, effects: pd.DataFrame, raw: pd.DataFrame, value: str,
                methods: list[str]) -> None:
    save(score_vs_coeff(scores, value, methods), folder, "score_vs_coeff")
    save(effect_vs_cost(raw, value, "dnll"), folder, "effect_vs_dnll")
    if "kl" in raw and raw["kl"].notna().any():  # matched strength: the budget's own axis
        save(effect_vs_cost(raw, value, "kl"), folder, "effect_vs_kl")
    save(framework_bars(effects, methods), folder, "frameworks")
