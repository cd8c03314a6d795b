"""Matplotlib figures (Agg backend) returned as base64 PNG, for inlining in one HTML file."""

from __future__ import annotations

import base64
import io
import math

import matplotlib

matplotlib.use("Agg")  # no display: figures go to PNG bytes only
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

COLOURS = {"original": "#8c8c8c", "model": "#1f77b4", "retain_model": "#2ca02c"}
LABELS = {"original": "before (original)", "model": "after (unlearned)", "retain_model": "retain-only"}


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)  # no tight bbox: it draws every figure twice
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def metric_bars(values: dict[str, dict[str, float | None]], columns: int = 4) -> str | None:
    """One small panel per metric (own y scale) with a bar per model: before/after/retain-only.

    `values` maps metric name -> {model role -> value}. Returns base64 PNG, None if empty.
    """
    names = [n for n, by in values.items() if any(_finite(v) for v in by.values())]
    if not names:
        return None
    cols = min(columns, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.1 * cols, 2.3 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        roles = [r for r in ("original", "model", "retain_model") if _finite(values[name].get(r))]
        heights = [values[name][r] for r in roles]
        ax.bar(range(len(roles)), heights, color=[COLOURS[r] for r in roles])
        ax.set_xticks(range(len(roles)), [LABELS[r].split(" ")[0] for r in roles], fontsize=8)
        ax.set_title(name, fontsize=9, parse_math=False)
        ax.tick_params(axis="y", labelsize=7)
        ax.yaxis.set_major_locator(MaxNLocator(3))
        low, high = min(0.0, *heights), max(0.0, *heights)
        span = (high - low) or 1.0
        ax.set_ylim(low - (0.15 * span if low < 0 else 0), high + 0.2 * span)  # room for the labels
        for i, h in enumerate(heights):
            ax.annotate(f"{h:.3g}", (i, h), ha="center", va="bottom", fontsize=7)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    # Fixed margins instead of tight_layout, which costs a full extra draw per figure.
    fig.subplots_adjust(
        left=0.06, right=0.98, bottom=0.12 / rows, top=1 - 0.12 / rows, hspace=0.6, wspace=0.35
    )
    return _png(fig)


def tradeoff_scatter(points: list[tuple[str, float, float]], xlabel: str, ylabel: str) -> str | None:
    """Forget-vs-utility scatter: one labelled point per run."""
    points = [(label, x, y) for label, x, y in points if _finite(x) and _finite(y)]
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(6, 4.5))
    # Labels are run names, i.e. user text: parse_math=False keeps a '$' from starting mathtext.
    for label, x, y in points:
        ax.scatter([x], [y], s=50)
        ax.annotate(label, (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8, parse_math=False)
    ax.set_xlabel(xlabel, parse_math=False)
    ax.set_ylabel(ylabel, parse_math=False)
    ax.set_title("Forgetting vs utility")
    ax.grid(alpha=0.3)
    return _png(fig)


def _finite(value) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)
