"""Crystal outlines as simplified polygons, for Label Studio ``PolygonLabels`` pre-annotations.

Vertices are (x, y) in pixel coordinates of the image: x = column, y = row, pixel centres
at integers, so an outline runs half a pixel outside the centres of the crystal's edge
pixels. Label Studio wants percentages of the image size with pixel *edges* at integers:
``to_percent`` converts (adds the half pixel).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from skimage.measure import approximate_polygon, find_contours

from label_config.catalogue import Catalogue
from ml_backend.crystals.analysis import analyse_crystals
from ml_backend.crystals.config import CrystalConfig
from ml_backend.crystals.instances import CrystalInstances


@dataclass(frozen=True)
class CrystalPolygon:
    """One crystal's outline and labels.

    Attributes:
        id: Crystal id (row ``id`` of the crystal table, value in the label map).
        class_index, class_name: Catalogue class.
        points: (k, 2) float array of (x, y) vertices in pixel coordinates, not closed
            (the last vertex is not a repeat of the first), k >= 3.
        population: ``microlite`` / ``microphenocryst`` / ``phenocryst`` / ``unknown``.
        zoning: ``normal`` / ``reverse`` / ``oscillatory`` / ``unzoned`` / ``unresolved``.
        cluster: Cluster label, e.g. ``Olivine-1``.
        touches_border: The crystal is cut by the field's edge.
        ecd_um: Equivalent circular diameter in µm (NaN when the pixel size is unknown).
    """

    id: int
    class_index: int
    class_name: str
    points: np.ndarray
    population: str
    zoning: str
    cluster: str
    touches_border: bool
    ecd_um: float


def _drop_collinear(closed: np.ndarray) -> np.ndarray:
    """A closed contour (first == last vertex) without the vertices in the middle of straight runs.

    Douglas-Peucker gives the same polygon (a point on a straight run is never farther from
    a chord than the run's ends), but on 2-5x fewer points: 4 s of 8 s per 1 800 crystals
    went into ``approximate_polygon`` here.
    """
    ring = closed[:-1]
    if len(ring) < 4:
        return closed
    before, after = ring - np.roll(ring, 1, axis=0), np.roll(ring, -1, axis=0) - ring
    turn = np.abs(before[:, 0] * after[:, 1] - before[:, 1] * after[:, 0]) > 1e-9
    kept = ring[turn]
    return np.vstack((kept, kept[:1])) if len(kept) >= 3 else closed


def outline(labels: np.ndarray, crystal_id: int, bbox: tuple[int, int, int, int], tolerance_px: float) -> np.ndarray:
    """Simplified outer outline of one crystal as (x, y) vertices (holes are ignored).

    Args:
        labels: Label map.
        crystal_id: The crystal.
        bbox: (min_row, min_col, max_row, max_col), max exclusive (regionprops convention).
        tolerance_px: Largest distance of the simplified polygon from the traced outline.
    """
    r0, c0, r1, c1 = bbox
    crop = np.pad(labels[r0:r1, c0:c1] == crystal_id, 1).astype(np.float32)
    contours = find_contours(crop, 0.5)
    longest = _drop_collinear(max(contours, key=len))
    simple = approximate_polygon(longest, tolerance=tolerance_px) if tolerance_px > 0 else longest
    if len(simple) > 1 and np.allclose(simple[0], simple[-1]):
        simple = simple[:-1]
    if len(simple) < 3:  # a tiny crystal simplified to a segment: keep the traced outline
        simple = longest[:-1]
    return np.column_stack((simple[:, 1] + c0 - 1, simple[:, 0] + r0 - 1))


def polygons_from_table(
    table: pd.DataFrame, instances: CrystalInstances, tolerance_px: float = 1.0
) -> list[CrystalPolygon]:
    """Polygons of every crystal of an analysed field (``CrystalAnalysis.table`` and ``.instances``)."""
    columns = [
        "id",
        "class_index",
        "class_name",
        "population",
        "zoning",
        "cluster",
        "touches_border",
        "bbox_min_row",
        "bbox_min_col",
        "bbox_max_row",
        "bbox_max_col",
    ]
    ecd = table["ecd_um"].to_numpy() if "ecd_um" in table else np.full(len(table), np.nan)
    out = []
    for row, size in zip(table[columns].itertuples(index=False), ecd):
        bbox = (row.bbox_min_row, row.bbox_min_col, row.bbox_max_row, row.bbox_max_col)
        points = outline(instances.labels, int(row.id), bbox, tolerance_px)
        out.append(
            CrystalPolygon(
                int(row.id),
                int(row.class_index),
                row.class_name,
                points,
                row.population,
                row.zoning,
                row.cluster,
                bool(row.touches_border),
                float(size),
            )
        )
    return out


def crystal_polygons(
    image: np.ndarray,
    mask: np.ndarray,
    pixel_size_um: float | None,
    catalogue: Catalogue | None = None,
    config: CrystalConfig | None = None,
) -> list[CrystalPolygon]:
    """Crystal polygons with class, population and zoning, straight from an image and its phase mask.

    Args:
        image: (H, W) BSE image as read.
        mask: (H, W) uint8 catalogue class indices (255 = no label).
        pixel_size_um: Pixel size in µm, or None (populations are then ``unknown``).
        catalogue: Classes of the mask (built-in by default).
        config: Thresholds; ``polygon_tolerance_px`` sets the simplification.

    Returns:
        One ``CrystalPolygon`` per crystal, in id order.
    """
    config = config or CrystalConfig()
    analysis = analyse_crystals(image, mask, pixel_size_um, catalogue, config)
    return polygons_from_table(analysis.table, analysis.instances, config.polygon_tolerance_px)


def to_percent(points: np.ndarray, width: int, height: int) -> list[list[float]]:
    """Vertices in Label Studio's polygon units: percent of the image width and height.

    Pixel (col, row) covers [col, col + 1) x [row, row + 1) in Label Studio, so a vertex at
    pixel-centre coordinate x maps to (x + 0.5) / width * 100.
    """
    pts = np.asarray(points, dtype=float)
    return np.column_stack(((pts[:, 0] + 0.5) / width * 100.0, (pts[:, 1] + 0.5) / height * 100.0)).tolist()
