"""Class maps <-> Label Studio regions: the one policy (controls, synonyms, unknown labels, overlaps, sizes)."""

from __future__ import annotations

import numpy as np
import pytest

from label_config import load_catalogue
from label_config.catalogue import IGNORE_INDEX
from ml_backend.brush import mask_to_rle, rle_to_mask
from ml_backend.regions import class_map_to_regions, regions_to_class_map, result_shape

CATALOGUE = load_catalogue()
N = IGNORE_INDEX


def _region(mask, label, from_name="minerals", **extra):
    height, width = mask.shape
    return {
        "from_name": from_name,
        "to_name": "image",
        "type": "brushlabels",
        "original_height": height,
        "original_width": width,
        "value": {"format": "rle", "rle": mask_to_rle(mask), "brushlabels": [label]},
        **extra,
    }


def test_regions_decode_in_order_later_regions_win():
    olivine = np.zeros((6, 8), bool)
    olivine[1:4, 1:5] = True
    plagioclase = np.zeros((6, 8), bool)
    plagioclase[2:5, 3:7] = True
    results = [
        _region(olivine, "Olivine"),
        _region(plagioclase, "plag"),  # a synonym, case ignored
        _region(np.ones((6, 8), bool), "Epoxy", from_name="hint", type="keypointlabels"),  # not a brush region
        _region(np.ones((6, 8), bool), "Epoxy", from_name="other"),  # another control
        _region(np.ones((6, 8), bool), "Unobtainium"),  # not in the catalogue: skipped, reported
        _region(np.ones((6, 8), bool), "Unobtainium"),
        _region(np.ones((6, 8), bool), "Kryptonite"),
    ]
    class_map, unknown = regions_to_class_map(results, (6, 8), CATALOGUE, "minerals")
    expected = np.full((6, 8), N, np.uint8)
    expected[olivine] = 4
    expected[plagioclase] = 2
    np.testing.assert_array_equal(class_map, expected)
    assert unknown == ("Kryptonite", "Unobtainium")
    every_control, _ = regions_to_class_map(results, (6, 8), CATALOGUE)
    assert (every_control == 0).all()  # the other control's Epoxy covers everything, painted after
    assert result_shape(results, "minerals") == (6, 8)
    assert result_shape([], "minerals") is None
    assert regions_to_class_map(None, (2, 2), CATALOGUE)[0].tolist() == [[N, N], [N, N]]


def test_regions_of_another_size_are_refused():
    small = _region(np.ones((3, 3), bool), "Olivine")
    with pytest.raises(ValueError, match="disagree about the image size"):
        result_shape([small, _region(np.ones((6, 8), bool), "Olivine")], "minerals")
    with pytest.raises(ValueError, match=r"is \(3, 3\), the image is \(6, 8\)"):
        regions_to_class_map([small], (6, 8), CATALOGUE, "minerals")


def test_class_map_round_trip_with_scores():
    classes = np.full((5, 7), N, np.uint8)
    classes[:2] = 1
    classes[3:, 2:] = 4
    classes[4, 6] = 3  # a class the control lacks: no region
    labels = {1: "Groundmass", 4: "Ol"}
    regions = class_map_to_regions(classes, labels, "minerals", "image")
    assert [(r["id"], r["value"]["brushlabels"], r["origin"]) for r in regions] == [
        ("minerals-1", ["Groundmass"], "manual"),
        ("minerals-4", ["Ol"], "manual"),
    ]
    assert all("score" not in r for r in regions)
    decoded, unknown = regions_to_class_map(regions, (5, 7), CATALOGUE, "minerals")
    expected = classes.copy()
    expected[4, 6] = N
    np.testing.assert_array_equal(decoded, expected)
    assert unknown == ()
    probs = np.zeros((6, 5, 7), np.float32)
    probs[1, :2] = 0.5
    probs[4, 3:, 2:] = 0.25
    scored = class_map_to_regions(classes, labels, "minerals", "image", "prediction", "p", probs)
    assert [(r["id"], r["origin"], r["score"]) for r in scored] == [
        ("p-1", "prediction", 0.5),
        ("p-4", "prediction", 0.25),
    ]
    np.testing.assert_array_equal(rle_to_mask(scored[1]["value"]["rle"], 5, 7), classes == 4)
