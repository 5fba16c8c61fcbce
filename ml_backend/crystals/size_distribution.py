"""Crystal size distribution (CSD) in 2-D: counts and number per unit area in log-spaced size bins.

Size is the equivalent circular diameter (ECD) of each section. Bin edges are fixed powers
of ten (``bins_per_decade`` per decade, default 5: 10, 15.8, 25.1, 39.8, 63.1, 100 µm ...),
so distributions of different samples share bins.

Crystals cut by the field's edge are not counted; the others are weighted by the
Miles-Lantuejoul edge correction ``H * W / ((H - h) * (W - w))`` (field H x W, crystal
bounding box h x w), which undoes the under-counting of large crystals that the edge
causes. ``number_per_mm2`` is the corrected count over the labelled area of the field;
``population_density`` divides it by the bin width (mm^-3, the ordinate of a CSD plot).
Without a pixel size, sizes are in px and densities per million px (``unit`` column).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def size_distribution(
    table: pd.DataFrame, field_shape: tuple[int, int], labelled_px: int, bins_per_decade: int = 5
) -> pd.DataFrame:
    """CSD per mineral and for all crystals together.

    Args:
        table: Crystal table (``measure_crystals``); µm columns are used when present.
        field_shape: (H, W) of the field in px.
        labelled_px: Pixels of the field that carry a label (the area counted over).
        bins_per_decade: Log-spaced bins per factor of ten in size.

    Returns:
        Rows (class_name, bin): bin_low, bin_high, bin_centre (geometric), count,
        count_cut_by_edge, number_per_area, population_density, unit.
    """
    if bins_per_decade < 1:
        raise ValueError(f"bins_per_decade must be >= 1, got {bins_per_decade}")
    microns = "ecd_um" in table
    size = table["ecd_um" if microns else "ecd_px"].to_numpy(dtype=float)
    scale = table.attrs.get("pixel_size_um") or 1.0
    # area in mm^2 (or million px without pixel size) and sizes in mm (or px) for the density per length
    area = labelled_px * (scale / 1000.0) ** 2 if microns else labelled_px / 1e6
    length_unit = 1000.0 if microns else 1.0
    h, w = field_shape
    box_h = (table["bbox_max_row"] - table["bbox_min_row"]).to_numpy(dtype=float)
    box_w = (table["bbox_max_col"] - table["bbox_min_col"]).to_numpy(dtype=float)
    inner = ~table["touches_border"].to_numpy() & (box_h < h) & (box_w < w)
    weight = np.where(inner, h * w / np.maximum((h - box_h) * (w - box_w), 1.0), 0.0)
    if len(size) == 0:
        return pd.DataFrame(
            columns=[
                "class_name",
                "bin_low",
                "bin_high",
                "bin_centre",
                "count",
                "count_cut_by_edge",
                "number_per_area",
                "population_density",
                "unit",
            ]
        )
    lo = np.floor(np.log10(max(size.min(), 1e-3)) * bins_per_decade)
    hi = np.ceil(np.log10(size.max()) * bins_per_decade + 1e-9)
    edges = 10.0 ** (np.arange(lo, max(hi, lo + 1) + 1) / bins_per_decade)
    which = np.clip(np.searchsorted(edges, size, side="right") - 1, 0, len(edges) - 2)
    groups = [("all", np.ones(len(table), bool))] + [
        (name, (table["class_name"] == name).to_numpy()) for name in table["class_name"].unique()
    ]
    unit = "um" if microns else "px"
    frames = []
    for name, rows in groups:
        n_bins = len(edges) - 1
        count = np.bincount(which[rows & inner], minlength=n_bins)
        cut = np.bincount(which[rows & ~inner], minlength=n_bins)
        number = np.bincount(which[rows], weights=weight[rows], minlength=n_bins) / area
        width = np.diff(edges) / length_unit
        frames.append(pd.DataFrame({
            "class_name": name, "bin_low": edges[:-1], "bin_high": edges[1:], "bin_centre": np.sqrt(edges[:-1] * edges[1:]),
            "count": count, "count_cut_by_edge": cut, "number_per_area": number, "population_density": number / width, "unit": unit,
        }))  # fmt: skip
    return pd.concat(frames, ignore_index=True)


def plot_size_distribution(csd: pd.DataFrame, path: str | Path) -> Path:
    """Write a log-log plot of number per area against size, one line per mineral (PNG, Agg)."""
    path = Path(path)
    unit = csd["unit"].iloc[0] if len(csd) else "um"
    fig = Figure(figsize=(6.4, 4.8), dpi=100)  # Agg canvas of its own: no pyplot state, no display
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for name, group in csd.groupby("class_name", sort=False):
        shown = group[group["number_per_area"] > 0]
        if len(shown):
            ax.plot(
                shown["bin_centre"], shown["number_per_area"], marker="o", lw=2.5 if name == "all" else 1.2, label=name
            )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(
        "equivalent circular diameter (µm)" if unit == "um" else "equivalent circular diameter (px; pixel size unknown)"
    )
    ax.set_ylabel("crystals per mm² per bin" if unit == "um" else "crystals per Mpx per bin")
    ax.set_title("Crystal size distribution (edge-corrected)")
    ax.grid(True, which="both", alpha=0.3)
    if len(csd):
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
