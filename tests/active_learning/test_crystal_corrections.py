"""Crystal-review corrections: polygons rasterised, crystals matched by region id, choice changes counted."""

from __future__ import annotations

import numpy as np
import pytest

from active_learning.crystal_corrections import crystal_changes, crystal_labels
from label_config import load_catalogue
from label_config.generate import CONFIG_DIR
from ml_backend.crystal_results import crystal_target
from ml_backend.regions import polygon_mask, regions_to_class_map

CATALOGUE = load_catalogue()
CRYSTALS = crystal_target((CONFIG_DIR / "crystals.xml").read_text(), CATALOGUE)


def _crystal(region_id, points, mineral, population=None, zoning=None):
    common = {"id": region_id, "to_name": "image", "original_width": 10, "original_height": 10}
    out = [{**common, "from_name": "crystals", "type": "polygonlabels",
            "value": {"points": points, "polygonlabels": [mineral], "closed": True}}]  # fmt: skip
    for name, choice in (("population", population), ("zoning", zoning)):
        if choice:
            out.append(
                {**common, "from_name": name, "type": "choices", "value": {"points": points, "choices": [choice]}}
            )
    return out


SQUARE = [[20, 20], [60, 20], [60, 60], [20, 60]]  # percent of a 10 x 10 image: pixels 2..5


def test_polygon_covers_the_pixels_whose_centres_are_inside():
    mask = polygon_mask(SQUARE, (10, 10))
    expected = np.zeros((10, 10), bool)
    expected[2:6, 2:6] = True
    np.testing.assert_array_equal(mask, expected)
    with pytest.raises(ValueError, match="3"):
        polygon_mask([[0, 0], [10, 10]], (10, 10))


def test_polygons_become_a_class_map():
    results = _crystal("a", SQUARE, "Olivine") + _crystal("b", [[70, 70], [90, 70], [90, 90]], "Fe-Ti oxide")
    class_map, unknown = regions_to_class_map(results, (10, 10), CATALOGUE, CRYSTALS.polygons.from_name)
    assert unknown == ()
    assert (class_map[2:6, 2:6] == 4).all()
    assert class_map[8, 8] == 5
    assert (class_map == 255).sum() == 100 - 16 - (class_map == 5).sum()


def test_review_statistics():
    predicted = (
        _crystal("c1", SQUARE, "Olivine", "Phenocryst", "Normal")
        + _crystal("c2", [[70, 10], [90, 10], [90, 30]], "Plagioclase", "Microlite", "Unzoned")
        + _crystal("c3", [[10, 70], [30, 70], [30, 90]], "Olivine", "Microphenocryst", "Reverse")
    )
    final = (
        _crystal("c1", SQUARE, "Olivine", "Phenocryst", "Reverse")  # zoning corrected
        + _crystal(
            "c2", [[70, 10], [95, 10], [95, 35]], "Clinopyroxene", "Microlite", "Unzoned"
        )  # reshaped + relabelled
        + _crystal("new", [[40, 70], [60, 70], [60, 90]], "Olivine", "Microlite")  # drawn by the expert; c3 deleted
    )
    changes = crystal_changes(predicted, final, CRYSTALS)
    assert changes == {
        "kept": 2, "reshaped": 1, "relabelled": 1, "deleted": 1, "added": 1,
        "choices": {
            "population": {"Microlite -> Microlite": 1, "Phenocryst -> Phenocryst": 1},
            "zoning": {"Normal -> Reverse": 1, "Unzoned -> Unzoned": 1},
        },
    }  # fmt: skip
    labels = {c["id"]: c for c in crystal_labels(final, CRYSTALS)}
    assert labels["new"] == {"id": "new", "mineral": "Olivine", "population": "Microlite", "zoning": "none"}
    assert labels["c2"]["mineral"] == "Clinopyroxene"
