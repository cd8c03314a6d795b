"""PNG figures for recovery and logit-lens results (matplotlib, no display needed)."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

LABELS = {
    "mlp_coef": "(a) MLP coefficients patched",
    "attn_out": "(b) attention output patched",
    "mlp_coef+attn_out": "(a)+(b)",
    "mlp_value": "(c) MLP value vectors restored",
}


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def krs_figure(recovery: dict) -> bytes:
    """KRS by window (x: the layer a window is centred on, else its first), one line per intervention."""
    centred = recovery.get("centres") is not None
    starts = recovery["centres"] if centred else [w[0] for w in recovery["windows"]]
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for name, values in recovery["krs"].items():
        ax.plot(starts, values, marker="o", markersize=3, label=LABELS.get(name, name))
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.axhline(1.0, color="grey", linewidth=0.8, linestyle=":")
    where = "centre" if centred else "first layer"
    ax.set_xlabel(f"{where} of the {recovery['window']}-layer window")
    ax.set_ylabel("knowledge recovery score")
    ax.set_title("KRS by layer window (1 = original behaviour restored)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8)
    return _png(fig)


def lens_figure(lens: dict) -> bytes:
    """Per layer: share of answer tokens ranked first, and the first answer token's median rank."""
    fig, (top, rank) = plt.subplots(1, 2, figsize=(10, 3.6))
    for key, style in (("unlearned", "-o"), ("original", "--s")):
        if key in lens:
            top1 = lens[key]["answer_token_top1"]
            top.plot(range(len(top1)), top1, style, markersize=3, label=f"{key} model")
            ranks = [r + 1 for r in lens[key]["first_token_median_rank"]]  # +1: log scale, rank 0 = top
            rank.plot(range(len(ranks)), ranks, style, markersize=3, label=f"{key} model")
    top.set_ylabel("answer tokens ranked first")
    rank.set_ylabel("median rank of the first answer token + 1")
    rank.set_yscale("log")
    for ax in (top, rank):
        ax.set_xlabel("layer")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=8)
    fig.suptitle("Logit lens on the forget answers")
    return _png(fig)
