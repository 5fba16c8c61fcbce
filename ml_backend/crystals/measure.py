"""The crystal table: size, shape, position, grey levels and zoning of every crystal.

Shape measures are grouped sums over all crystal pixels at once (``np.bincount``), with
the definitions of ``skimage.measure.regionprops`` (axes, perimeter): regionprops_table
took 7.7 s for 1 700 crystals here (perimeter, solidity and moments one region at a
time), this 0.6 s. Solidity is the crystal's pixel count over the count of pixels whose
centres lie in the convex hull of its pixel centres (1 for any digitally convex crystal,
unlike regionprops, whose hull of pixel corners makes small convex crystals look
non-convex). Grey levels come from ``grey_levels``. Lengths are reported in
pixels (``*_px``) and, when the pixel size is known, in micrometres (``*_um``); without a
pixel size the ``*_um`` columns are absent and ``table.attrs["pixel_size_um"]`` is None.

Conventions: x is the column and y the row of the image (origin top-left, pixel centres
at integer coordinates). ``orientation_deg`` is the angle of the major axis from the
+x axis, counter-clockwise as seen on screen, in [0, 180). ``aspect_ratio`` is
major / minor axis (>= 1) of the ellipse with the same second moments.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from scipy.spatial import ConvexHull, QhullError

from label_config.catalogue import Catalogue
from ml_backend.crystals.config import CrystalConfig
from ml_backend.crystals.grey_levels import GreyLevels
from ml_backend.crystals.instances import CrystalInstances
from ml_backend.crystals.zoning import classify_zoning

_LENGTHS = ("ecd", "major_axis", "minor_axis", "perimeter", "centroid_x", "centroid_y", "max_depth")
# skimage.measure.perimeter's weights: code = 1 (border pixel) + 2 per 4-neighbour and
# 10 per diagonal neighbour that is a border pixel of the same crystal
_PERIMETER_WEIGHTS = np.zeros(50)
_PERIMETER_WEIGHTS[[5, 7, 15, 17, 25, 27]] = 1.0
_PERIMETER_WEIGHTS[[21, 33]] = np.sqrt(2.0)
_PERIMETER_WEIGHTS[[13, 23]] = (1.0 + np.sqrt(2.0)) / 2.0
_FOUR = ((-1, 0), (1, 0), (0, -1), (0, 1))
_DIAGONAL = ((-1, -1), (-1, 1), (1, -1), (1, 1))


def _border_pixels(padded: np.ndarray) -> np.ndarray:
    """Flat indices (into ``padded``) of crystal pixels with a 4-neighbour outside their crystal."""
    width = padded.shape[1]
    inside = np.flatnonzero(padded)
    own = padded.ravel()[inside]
    border = np.zeros(inside.size, bool)
    for dr, dc in _FOUR:
        border |= padded.ravel()[inside + dr * width + dc] != own
    return inside[border]


def perimeters(labels: np.ndarray, count: int) -> np.ndarray:
    """Perimeter of every crystal, the same as ``skimage.measure.perimeter`` (4-neighbourhood) per region.

    Vectorised over the border pixels of all crystals at once (regionprops computes it one
    region at a time: 1.4 s for 1 700 crystals here, against about 0.1 s).
    """
    padded = np.pad(labels, 1)
    width = padded.shape[1]
    border = _border_pixels(padded)
    is_border = np.zeros(padded.size, bool)
    is_border[border] = True
    own = padded.ravel()[border]
    code = np.ones(border.size, np.int64)
    for step, offsets in ((2, _FOUR), (10, _DIAGONAL)):
        for dr, dc in offsets:
            other = border + dr * width + dc
            code += step * (is_border[other] & (padded.ravel()[other] == own))
    return np.bincount(own, weights=_PERIMETER_WEIGHTS[code], minlength=count + 1)


def convex_pixel_counts(labels: np.ndarray, count: int) -> np.ndarray:
    """Number of pixels whose centres lie in the convex hull of each crystal's pixel centres.

    The hull of integer points is a lattice polygon, so Pick's theorem counts the lattice
    points inside or on it exactly: area + boundary points / 2 + 1 (boundary points: the sum
    over edges of gcd(|dx|, |dy|)). One small ``scipy.spatial.ConvexHull`` per crystal on its
    border pixels; a crystal whose pixels are collinear is its own hull.
    """
    padded = np.pad(labels, 1)
    border = _border_pixels(padded)
    own = padded.ravel()[border]
    order = np.argsort(own, kind="stable")
    own, border = own[order], border[order]
    points = np.column_stack(np.divmod(border, padded.shape[1]))
    starts = np.searchsorted(own, np.arange(count + 2))
    area = np.bincount(labels.ravel(), minlength=count + 1).astype(np.float64)
    out = area.copy()
    for k in range(1, count + 1):
        mine = points[starts[k] : starts[k + 1]]
        if len(mine) < 3:
            continue
        try:
            hull = ConvexHull(mine)
        except QhullError:  # collinear pixels: a straight one-pixel line is convex
            continue
        vertices = mine[hull.vertices]
        edges = np.abs(np.diff(np.vstack((vertices, vertices[:1])), axis=0))
        out[k] = hull.volume + np.gcd(edges[:, 0], edges[:, 1]).sum() / 2.0 + 1.0  # volume = area in 2-D
    return out


def shape_table(instances: CrystalInstances) -> pd.DataFrame:
    """Size, shape, position and border flag of every crystal, in pixels, one row per id.

    Grouped sums over the crystal pixels (``np.bincount``) give areas, centroids, second
    moments and bounding boxes; axes follow ``skimage.measure.regionprops`` (4 x the square
    root of the eigenvalues of the pixel coordinates' covariance).
    """
    labels = instances.labels
    n = instances.count + 1
    flat = np.flatnonzero(labels)
    ids = labels.ravel()[flat]
    rows, cols = np.divmod(flat, labels.shape[1])
    area = np.bincount(ids, minlength=n).astype(np.float64)
    safe = np.maximum(area, 1.0)

    def mean(values: np.ndarray) -> np.ndarray:
        return np.bincount(ids, weights=values, minlength=n) / safe

    y, x = mean(rows.astype(np.float64)), mean(cols.astype(np.float64))
    dy, dx = rows - y[ids], cols - x[ids]
    cyy, cxx, cxy = mean(dy * dy), mean(dx * dx), mean(dx * dy)
    half_trace, root = (cxx + cyy) / 2.0, np.sqrt(((cxx - cyy) / 2.0) ** 2 + cxy**2)
    major = 4.0 * np.sqrt(np.maximum(half_trace + root, 0.0))
    minor = 4.0 * np.sqrt(np.maximum(half_trace - root, 0.0))
    # major-axis angle from +x towards +y (down), then counter-clockwise as seen on screen
    orientation = (-0.5 * np.degrees(np.arctan2(2.0 * cxy, cxx - cyy))) % 180.0
    boxes = ndi.find_objects(labels, max_label=n - 1)
    bbox = np.array(
        [(b[0].start, b[1].start, b[0].stop, b[1].stop) if b is not None else (0, 0, 0, 0) for b in boxes], np.int64
    ).reshape(-1, 4)
    keep = np.flatnonzero(area[1:] > 0) + 1
    with np.errstate(divide="ignore", invalid="ignore"):
        aspect = np.where(minor > 0, major / minor, np.inf)
        solidity = area / convex_pixel_counts(labels, n - 1)
    return pd.DataFrame(
        {
            "id": keep.astype(np.int32),
            "class_index": instances.class_index[keep],
            "area_px": area[keep].astype(np.int64),
            "ecd_px": np.sqrt(4.0 * area[keep] / np.pi),
            "major_axis_px": major[keep],
            "minor_axis_px": minor[keep],
            "aspect_ratio": aspect[keep],
            "orientation_deg": orientation[keep],
            "perimeter_px": perimeters(labels, n - 1)[keep],
            "solidity": solidity[keep],
            "centroid_x_px": x[keep],
            "centroid_y_px": y[keep],
            "bbox_min_row": bbox[keep - 1, 0],
            "bbox_min_col": bbox[keep - 1, 1],
            "bbox_max_row": bbox[keep - 1, 2],
            "bbox_max_col": bbox[keep - 1, 3],
            "max_depth_px": instances.max_depth[keep],
            "touches_border": instances.touches_border[keep],
        }
    )


def measure_crystals(
    instances: CrystalInstances,
    levels: GreyLevels,
    catalogue: Catalogue,
    pixel_size_um: float | None,
    config: CrystalConfig | None = None,
) -> pd.DataFrame:
    """The crystal table: shape (px and µm), core/rim levels, core-to-rim profile and zoning.

    Args:
        instances: The crystals.
        levels: Their grey levels (``grey_levels``).
        catalogue: Class names and brightness trends.
        pixel_size_um: Pixel size, or None (then no ``*_um`` columns).
        config: Zoning thresholds.

    Returns:
        One row per crystal, ordered by id. ``attrs``: ``pixel_size_um`` and ``noise_sigma``
        (per-pixel noise of the normalised image).
    """
    config = config or CrystalConfig()
    table = shape_table(instances)
    ids = table["id"].to_numpy()
    table.insert(2, "class_name", [catalogue.classes[c].name for c in table["class_index"]])
    if pixel_size_um is not None:
        for name in _LENGTHS:
            table[f"{name}_um"] = table[f"{name}_px"] * pixel_size_um
        table["area_um2"] = table["area_px"] * pixel_size_um**2
    zoning, snr = classify_zoning(levels, instances.max_depth, instances.class_index, catalogue, config)
    table["core_level"] = levels.core.mean[ids]
    table["rim_level"] = levels.rim.mean[ids]
    table["core_pixels"] = levels.core.n[ids]
    table["rim_pixels"] = levels.rim.n[ids]
    table["rim_minus_core"] = table["rim_level"] - table["core_level"]
    table["zoning_snr"] = snr[ids]
    table["zoning"] = zoning[ids].astype(str)
    for k in range(levels.profile.mean.shape[1]):
        table[f"profile_{k}"] = levels.profile.mean[ids, k]
    table.attrs["pixel_size_um"] = pixel_size_um
    table.attrs["noise_sigma"] = levels.noise_sigma
    return table.reset_index(drop=True)
