"""Matplotlib figures (Agg backend) returned as base64 PNG, for inlining in one HTML file."""

from __future__ import annotations

import base64
import io
import math

import matplotlib

matplotlib.use("Agg")  # no display: figures go to PNG bytes only
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

COLOURS = {"original": "#8c8c8c", "model": "#1f77b4", "retain_model": "#2ca02c"}
LABELS = {"original": "before (original)", "model": "after (unlearned)", "retain_model": "retain-only"}


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)  # no tight bbox: it draws every figure twice
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def plain(text: str) -> str:
    """Text from data (run names, metric names) safe for matplotlib: a `$` is not mathtext."""
    return str(text).replace("$", r"\$")


def group_chart(values: dict[str, dict[str, float | None]]) -> str | None:
    """One compact chart for a metric group: a row per metric, a bar per model (before/after/
    retain-only). Metrics differ in scale, so each row's bars are scaled to that row's largest
    |value|; the printed numbers are the values. Returns base64 PNG, None if nothing to draw."""
    finite = {n: {r: v for r, v in by.items() if _finite(v)} for n, by in values.items()}
    finite = {n: by for n, by in finite.items() if by}
    if not finite:
        return None
    names = list(finite)
    roles = [r for r in COLOURS if any(r in by for by in finite.values())]
    height = 0.8 / len(roles)
    fig, ax = plt.subplots(figsize=(7.5, 0.3 * len(names) * len(roles) + 0.7))
    lowest = 0.0
    for i, name in enumerate(names):
        scale = max(abs(v) for v in finite[name].values()) or 1.0
        for j, role in enumerate(roles):
            if role not in finite[name]:
                continue
            value = finite[name][role]
            y = i + (j - (len(roles) - 1) / 2) * height
            ax.barh(y, value / scale, height=height * 0.9, color=COLOURS[role])
            ax.annotate(
                f"{value:.3g}",
                (max(value / scale, 0), y),
                xytext=(3, 0),
                textcoords="offset points",
                va="center",
                fontsize=7,
            )
            lowest = min(lowest, value / scale)
    handles = [Patch(color=COLOURS[r], label=LABELS[r]) for r in roles]
    ax.set_yticks(range(len(names)), [plain(n.split(".", 1)[-1]) for n in names], fontsize=8)
    ax.invert_yaxis()
    ax.set_xticks([])
    ax.set_xlim(lowest - 0.05, 1.3)
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    inches = fig.get_size_inches()[1]
    fig.legend(handles=handles, fontsize=7, loc="upper center", ncol=len(roles), frameon=False)
    fig.subplots_adjust(left=0.28, right=0.98, top=1 - 0.3 / inches, bottom=0.05 / inches)
    return _png(fig)


def training_curves(
    history: list[dict], panels: list[tuple[str, list[str]]], stop_step: int | None, kept_step: int | None
) -> str | None:
    """Metrics over steps, a panel per (title, keys) group, with the last step ("stop") and the
    kept step marked. Returns base64 PNG, None without a finite value to draw."""
    panels = [(t, keys) for t, keys in panels if any(_finite(r.get(k)) for r in history for k in keys)]
    if not panels:
        return None
    cols = min(2, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.4 * rows), squeeze=False)
    for n, (ax, (title, keys)) in enumerate(zip(axes.flat, panels)):
        for key in keys:
            points = [(r["step"], r[key]) for r in history if _finite(r.get(key)) and _finite(r.get("step"))]
            if not points:  # e.g. rmu logs no forget_nll: no empty legend entry
                continue
            marker = "." if len(points) < 30 else None
            ax.plot([p[0] for p in points], [p[1] for p in points], marker=marker, label=plain(key))
        if stop_step is not None:
            ax.axvline(stop_step, color="#a00", linestyle="--", linewidth=1, label="stop" if n == 0 else None)
        if kept_step is not None:
            ax.axvline(kept_step, color="#2ca02c", linewidth=1.5, label="kept step" if n == 0 else None)
        ax.set_title(plain(title), fontsize=9)
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(5, integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, frameon=False)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.subplots_adjust(
        left=0.08, right=0.98, bottom=0.1 / rows, top=1 - 0.1 / rows, hspace=0.45, wspace=0.25
    )
    return _png(fig)


def tradeoff_scatter(
    points: list[tuple[str, float, float]],
    xlabel: str,
    ylabel: str,
    target: tuple[float | None, float | None] = (None, None),
) -> str | None:
    """Forget-vs-utility scatter: one labelled point per run (or model). `target` (x at most,
    y at least) shades the region where both verdict thresholds are met."""
    points = [(label, x, y) for label, x, y in points if _finite(x) and _finite(y)]
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 4))
    x_max, y_min = target
    if x_max is not None and y_min is not None:
        ax.axvline(x_max, color="#2ca02c", linestyle=":", linewidth=1)
        ax.axhline(y_min, color="#2ca02c", linestyle=":", linewidth=1)
        ax.fill_between(
            [min(0.0, x_max) - 1, x_max],
            y_min,
            max(1.0, *(y for _, _, y in points)) + 1,
            color="#2ca02c",
            alpha=0.08,
            label="target met",
        )
    by_label = {LABELS[r]: c for r, c in COLOURS.items()}  # the report's own models keep their colours
    for label, x, y in points:
        ax.scatter([x], [y], s=50, color=by_label.get(label))
        ax.annotate(plain(label), (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8)
    xs = [x for _, x, _ in points] + ([x_max] if x_max is not None else [])
    ys = [y for _, _, y in points] + ([y_min] if y_min is not None else [])
    pad_x, pad_y = (max(xs) - min(xs)) * 0.15 or 0.1, (max(ys) - min(ys)) * 0.15 or 0.1
    ax.set_xlim(min(xs) - pad_x, max(xs) + pad_x * 2)
    ax.set_ylim(min(ys) - pad_y, max(ys) + pad_y)
    ax.set_xlabel(plain(xlabel))
    ax.set_ylabel(plain(ylabel))
    ax.set_title("Forgetting vs utility")
    ax.grid(alpha=0.3)
    fig.subplots_adjust(left=0.14, right=0.97, bottom=0.13, top=0.92)
    return _png(fig)


def _finite(value) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)
