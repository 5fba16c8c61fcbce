"""Report figures as PNG bytes (matplotlib's Agg canvas; no global backend is set)."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

DPI = 100


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for an ``<img src>``."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _short(label: str, width: int = 18) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"


def acceptance_and_time(
    groups: Sequence[str], acceptance: Sequence[float], lead_time: Sequence[float], xlabel: str
) -> bytes:
    """Bars: acceptance rate per group (left axis); line: mean seconds per task (right axis)."""
    figure = Figure(figsize=(7.0, 3.4))
    axis = figure.add_subplot()
    x = np.arange(len(groups))
    axis.bar(x, np.nan_to_num(np.asarray(acceptance, float)), color="#0072B2", width=0.6, label="acceptance rate")
    axis.set_ylim(0, 1)
    axis.set_ylabel("acceptance rate")
    axis.set_xticks(x, [_short(g, 24) for g in groups], rotation=20, ha="right")
    axis.set_xlabel(xlabel)
    twin = axis.twinx()
    twin.plot(x, lead_time, "o-", color="#D55E00", label="seconds per task")
    twin.set_ylabel("mean seconds per task")
    twin.set_ylim(0, max(1.0, float(np.nanmax(np.asarray(lead_time, float), initial=0)) * 1.2))
    handles = axis.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    axis.legend(
        handles,
        ["acceptance rate", "seconds per task"],
        loc="lower left",
        bbox_to_anchor=(0, 1.01),
        ncol=2,
        fontsize=8,
        frameon=False,
    )
    return _png(figure)


def confusion_heatmap(labels: Sequence[str], matrix: np.ndarray) -> bytes:
    """Pixels proposed (rows) -> kept (columns), log colour scale, counts written in the cells."""
    n = len(labels)
    figure = Figure(figsize=(1.0 + 0.8 * n, 0.8 + 0.7 * n))
    axis = figure.add_subplot()
    shown = np.where(matrix > 0, matrix, np.nan).astype(float)
    vmax = max(1.0, float(np.nanmax(shown, initial=1.0)))
    image = axis.imshow(shown, cmap="viridis", norm=LogNorm(vmin=1, vmax=vmax))
    for i in range(n):
        for j in range(n):
            if matrix[i, j]:
                axis.text(
                    j,
                    i,
                    f"{int(matrix[i, j])}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if matrix[i, j] < vmax / 10 else "black",
                )
    axis.set_xticks(range(n), [_short(label, 14) for label in labels], rotation=35, ha="right")
    axis.set_yticks(range(n), [_short(label, 14) for label in labels])
    axis.set_xlabel("kept by the expert")
    axis.set_ylabel("proposed by the model")
    figure.colorbar(image, ax=axis, label="pixels", shrink=0.8)
    return _png(figure)


def class_bars(names: Sequence[str], series: dict[str, Sequence[float]], ylabel: str) -> bytes:
    """Grouped bars per class, one colour per series (e.g. edit IoU, agreement IoU), values in [0, 1]."""
    figure = Figure(figsize=(7.0, 3.2))
    axis = figure.add_subplot()
    x = np.arange(len(names))
    width = 0.8 / max(1, len(series))
    colours = ("#0072B2", "#E69F00", "#009E73", "#CC79A7")
    for k, (label, values) in enumerate(series.items()):
        axis.bar(
            x + (k - (len(series) - 1) / 2) * width,
            np.nan_to_num(np.asarray(values, float)),
            width,
            label=label,
            color=colours[k % 4],
        )
    axis.set_xticks(x, [_short(n, 14) for n in names], rotation=20, ha="right")
    axis.set_ylim(0, 1)
    axis.set_ylabel(ylabel)
    axis.legend(loc="lower left", bbox_to_anchor=(0, 1.01), ncol=len(series), fontsize=8, frameon=False)
    return _png(figure)


def reliability(bins: Sequence[dict]) -> bytes:
    """Reliability curve: accuracy per confidence bin against the diagonal, pixel counts below."""
    figure = Figure(figsize=(4.6, 5.0))
    top, bottom = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    filled = [b["pixels"] > 0 and b["low"] == b["low"] for b in bins]  # empty adaptive bins have NaN edges
    centres = [(b["low"] + b["high"]) / 2 if f else 0.0 for b, f in zip(bins, filled)]
    width = [max(b["high"] - b["low"], 0.02) if f else 0.0 for b, f in zip(bins, filled)]  # adaptive bins differ
    top.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    top.bar(
        [c for c, f in zip(centres, filled) if f],
        [b["accuracy"] for b, f in zip(bins, filled) if f],
        [w * 0.9 for w, f in zip(width, filled) if f],
        color="#0072B2",
        alpha=0.7,
        label="accuracy",
    )
    top.plot(
        [b["confidence"] for b, f in zip(bins, filled) if f],
        [b["accuracy"] for b, f in zip(bins, filled) if f],
        "o-",
        color="#D55E00",
        label="mean confidence vs accuracy",
    )
    top.set_xlim(0, 1)
    top.set_ylim(0, 1)
    top.set_ylabel("accuracy")
    top.legend(fontsize=7, loc="upper left")
    bottom.bar(centres, [b["pixels"] for b in bins], [w * 0.9 for w in width], color="grey")
    bottom.set_xlabel("confidence of the implicit label")
    bottom.set_ylabel("pixels")
    return _png(figure)


def learning_curves(rows: Sequence[dict]) -> bytes:
    """mIoU against labelled tiles: one line per strategy, solid = implicit, dashed = explicit."""
    figure = Figure(figsize=(6.4, 3.6))
    axis = figure.add_subplot()
    strategies = sorted({r["strategy"] for r in rows})
    colours = (
        "#0072B2",
        "#E69F00",
        "#009E73",
        "#CC79A7",
        "#D55E00",
        "#56B4E9",
        "#000000",
        "#F0E442",
        "#999999",
        "#882255",
    )
    for k, strategy in enumerate(strategies):
        for kind, style in (("implicit", "-o"), ("explicit", "--s")):
            points = sorted(
                (r["n_labelled_tiles"], r["mIoU"])
                for r in rows
                if r["strategy"] == strategy and r["label_kind"] == kind
            )
            if points:
                axis.plot(
                    *zip(*points), style, color=colours[k % len(colours)], label=f"{strategy}, {kind}", markersize=4
                )
    budgets = [r["n_labelled_tiles"] for r in rows if r["n_labelled_tiles"] > 0]
    if budgets and max(budgets) / min(budgets) > 16:  # log-spaced budgets (scraiber bench active-learning)
        axis.set_xscale("symlog", base=2, linthresh=1)
    else:
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_xlabel("labelled tiles (budget)")
    axis.set_ylabel("validation mIoU")
    axis.set_ylim(0, 1)
    axis.legend(fontsize=7)
    return _png(figure)
