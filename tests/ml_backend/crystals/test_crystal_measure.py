"""Crystal measurements: exact shape values on hand-made crystals, px and µm units, polygons."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.draw import disk, polygon
from skimage.measure import perimeter, regionprops_table

from label_config.catalogue import load_catalogue
from ml_backend.crystals.analysis import analyse_crystals
from ml_backend.crystals.instances import label_crystals
from ml_backend.crystals.measure import convex_pixel_counts, perimeters, shape_table
from ml_backend.crystals.polygons import crystal_polygons, outline, to_percent

CAT = load_catalogue()
GROUNDMASS, CPX, OLIVINE = (CAT.index_of(n) for n in ("Groundmass", "Clinopyroxene", "Olivine"))


def _canvas(shape=(80, 120)) -> np.ndarray:
    return np.full(shape, GROUNDMASS, np.uint8)


def _table(mask: np.ndarray):
    return shape_table(label_crystals(mask, CAT))


def test_rectangle_exact_values():
    mask = _canvas()
    mask[30:40, 20:60] = CPX  # 10 rows x 40 cols
    row = _table(mask).iloc[0]
    assert row.area_px == 400 and row.ecd_px == pytest.approx(np.sqrt(1600 / np.pi))
    assert (row.centroid_x_px, row.centroid_y_px) == (39.5, 34.5)
    assert row.orientation_deg == pytest.approx(0.0, abs=1e-9)
    # regionprops' ellipse of the same second moments: 4 sqrt(var); var of 40 integers = (40^2 - 1) / 12
    assert row.major_axis_px == pytest.approx(4 * np.sqrt((40**2 - 1) / 12)) and row.minor_axis_px == pytest.approx(
        4 * np.sqrt((10**2 - 1) / 12)
    )
    assert row.aspect_ratio == pytest.approx(row.major_axis_px / row.minor_axis_px)
    assert row.solidity == 1.0
    assert (row.bbox_min_row, row.bbox_min_col, row.bbox_max_row, row.bbox_max_col) == (30, 20, 40, 60)
    assert row.perimeter_px == pytest.approx(perimeter(mask == CPX))
    assert not row.touches_border


_VERTICAL = (np.array([20, 20, 59, 59]), np.array([30, 39, 39, 30]))
_DOWN_RIGHT = (np.array([10, 16, 90, 84]), np.array([16, 10, 84, 90]))  # rows grow with columns
_UP_RIGHT = (np.array([90, 84, 10, 16]), np.array([16, 10, 84, 90]))


@pytest.mark.parametrize("corners, expected", [(_VERTICAL, 90.0), (_DOWN_RIGHT, 135.0), (_UP_RIGHT, 45.0)])
def test_orientation_counter_clockwise_from_x(corners, expected):
    mask = _canvas((100, 100))
    mask[polygon(*corners, mask.shape)] = CPX
    assert _table(mask).iloc[0].orientation_deg == pytest.approx(expected, abs=1.0)


def test_perimeters_and_moments_match_regionprops():
    rng = np.random.default_rng(5)
    labels = np.zeros((90, 90), np.int32)
    for k in range(1, 9):
        rr, cc = disk(tuple(rng.integers(10, 80, 2)), rng.uniform(3, 9), shape=labels.shape)
        labels[rr, cc] = k
    ids = np.unique(labels)[1:]
    labels = np.searchsorted(ids, labels) * (labels > 0)  # ids 1..n, some discs overlap others
    n = labels.max()
    ref = regionprops_table(labels, properties=("label", "perimeter", "axis_major_length", "axis_minor_length"))
    np.testing.assert_allclose(perimeters(labels, n)[1:], ref["perimeter"], rtol=1e-12)


def test_solidity_one_for_convex_and_exact_for_an_l_shape():
    labels = np.zeros((30, 30), np.int32)
    labels[2:12, 2:12] = 1  # 10 x 10 square: convex
    labels[15:25, 15:25] = 2
    labels[15:20, 20:25] = (
        0  # L of 75 px; hull of its centres: the 10 x 10 square minus the triangle off the cut corner
    )
    counts = convex_pixel_counts(labels, 2)
    assert counts[1] == 100
    # hull vertices (15,15) (24,15) (24,24) (20,24) (15,19): lattice points inside or on it
    rr, cc = np.mgrid[15:25, 15:25]
    inside = (rr - 15) >= (cc - 19)  # on or below the hull edge from (15, 19) to (20, 24)
    assert counts[2] == int(inside.sum())


def test_px_and_um_units_and_unknown_pixel_size():
    mask = _canvas()
    mask[disk((40, 60), 15, shape=mask.shape)] = OLIVINE
    image = np.where(mask == OLIVINE, 3000, 2000).astype(np.uint16)
    with_size = analyse_crystals(image, mask, pixel_size_um=2.0, catalogue=CAT)
    row = with_size.table.iloc[0]
    assert row.ecd_um == pytest.approx(2.0 * row.ecd_px)
    assert row.area_um2 == pytest.approx(4.0 * row.area_px)
    assert row.centroid_x_um == pytest.approx(2.0 * row.centroid_x_px) and row.centroid_y_um == pytest.approx(80.0)
    assert row.population == "microphenocryst"  # ECD 2 x 30 px = 60 µm, between 30 and 300
    assert with_size.notes == []
    unknown = analyse_crystals(image, mask, pixel_size_um=None, catalogue=CAT)
    assert not [c for c in unknown.table.columns if c.endswith("_um") or c.endswith("_um2")]
    assert unknown.table.iloc[0].population == "unknown"
    assert "pixel size unknown" in unknown.notes[0]
    assert unknown.size_distribution["unit"].unique().tolist() == ["px"]
    with pytest.raises(ValueError, match="positive number"):
        analyse_crystals(image, mask, pixel_size_um=-1.0, catalogue=CAT)
    with pytest.raises(ValueError, match="differ in shape"):
        analyse_crystals(image[:-1], mask, catalogue=CAT)


def test_polygons_follow_the_outline_in_pixel_coordinates():
    mask = _canvas()
    mask[disk((40, 30), 12, shape=mask.shape)] = OLIVINE
    mask[20:50, 70:100] = CPX
    image = np.where(mask == GROUNDMASS, 2000, 3000).astype(np.uint16)
    polys = crystal_polygons(image, mask, 1.0, catalogue=CAT)
    assert [p.class_name for p in polys] == ["Clinopyroxene", "Olivine"]
    square, circle = polys
    assert square.population == "microphenocryst" and square.zoning in ("unzoned", "unresolved")
    # a square's simplified outline: its 4 corners half a pixel outside the corner pixel centres (+ cut corners)
    xs, ys = square.points[:, 0], square.points[:, 1]
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (69.5, 99.5, 19.5, 49.5)
    assert 4 <= len(square.points) <= 8
    radius = np.hypot(circle.points[:, 0] - 30, circle.points[:, 1] - 40)
    assert np.all(np.abs(radius - 12) <= 1.5)
    assert not np.allclose(circle.points[0], circle.points[-1])  # not closed


def test_outline_of_a_tiny_crystal_keeps_three_vertices():
    labels = np.zeros((10, 10), np.int32)
    labels[4:6, 4:6] = 1
    points = outline(labels, 1, (4, 4, 6, 6), tolerance_px=5.0)
    assert len(points) >= 3


def test_to_percent_uses_pixel_edges():
    assert to_percent(np.array([[-0.5, -0.5], [99.5, 49.5], [0.0, 0.0]]), 100, 50) == [
        [0.0, 0.0],
        [100.0, 100.0],
        [0.5, 1.0],
    ]


def test_a_field_without_crystals_gives_empty_tables():
    mask = _canvas()
    image = np.random.default_rng(0).integers(1000, 2000, mask.shape).astype(np.uint16)
    analysis = analyse_crystals(image, mask, 1.0, catalogue=CAT)
    assert len(analysis.table) == 0 and len(analysis.clusters) == 0 and len(analysis.size_distribution) == 0
    assert analysis.modal.set_index("class_name").loc["Groundmass", "percent"] == 100.0
    assert crystal_polygons(image, mask, 1.0, catalogue=CAT) == []
