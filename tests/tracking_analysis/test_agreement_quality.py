"""Agreement between annotators and implicit-label quality on tiny maps (exact counts)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from active_learning.corrections import NOTHING
from tracking_analysis.agreement import agreement, agreement_by_class, latest_maps, mean_agreement, pair_agreement
from tracking_analysis.quality import empty_counts, quality_counts, quality_summary

NAMES = ["Epoxy", "Groundmass", "Olivine"]


def test_pair_agreement_per_class():
    a = np.array([[0, 0, 1, 1], [1, 1, 1, 1]], np.uint8)
    b = np.array([[0, 1, 1, 1], [1, 1, 1, NOTHING]], np.uint8)
    rows = pair_agreement(a, b, NAMES)
    # Epoxy: a 2 px, b 1 px, shared 1 -> 1/2; Groundmass: a 6, b 6, shared 5, union 7; Olivine: nobody -> left out
    assert rows == [
        {"class": "Epoxy", "intersection": 1, "union": 2, "iou": 0.5},
        {"class": "Groundmass", "intersection": 5, "union": 7, "iou": 5 / 7},
    ]
    with pytest.raises(ValueError, match="cannot be compared"):
        pair_agreement(a, b[:, :2], NAMES)


def test_agreement_pools_over_tasks_and_pairs():
    ones, twos = np.ones((2, 2), np.uint8), np.full((2, 2), 2, np.uint8)
    mixed = np.array([[1, 1], [2, 2]], np.uint8)
    maps = {
        10: {"b": ones, "a": mixed},  # Groundmass 2/4, Olivine 0/2
        11: {"a": twos, "b": twos, "c": mixed},  # a-b: Olivine 4/4; a-c, b-c: Olivine 2/4, Groundmass 0/2
        12: {"a": ones},  # one annotator: nothing
    }
    pairs = agreement(maps, NAMES)
    assert pairs[["task_id", "annotator_a", "annotator_b", "class"]].values.tolist() == [
        [10, "a", "b", "Groundmass"], [10, "a", "b", "Olivine"],
        [11, "a", "b", "Olivine"],
        [11, "a", "c", "Groundmass"], [11, "a", "c", "Olivine"],
        [11, "b", "c", "Groundmass"], [11, "b", "c", "Olivine"],
    ]  # fmt: skip
    by_class = agreement_by_class(pairs).set_index("class")
    assert by_class.loc["Groundmass", ["intersection", "union", "pairs"]].tolist() == [2, 8, 3]
    assert by_class.loc["Olivine", ["intersection", "union", "pairs"]].tolist() == [8, 14, 4]
    assert mean_agreement(pairs) == (2 / 8 + 8 / 14) / 2
    assert math.isnan(mean_agreement(agreement({12: {"a": ones}}, NAMES)))


def test_latest_maps_keeps_the_newest_annotation_per_annotator():
    old, new = np.zeros((1, 1), np.uint8), np.ones((1, 1), np.uint8)
    maps = latest_maps([(1, "a", 5, new), (1, "a", 3, old), (1, "b", 4, old), (2, "a", 6, old)])
    assert maps[1]["a"] is new and maps[1]["b"] is old and list(maps[2]) == ["a"]


def test_quality_counts_accuracy_iou_reliability_and_ece():
    truth = np.array([[0, 0, 1, 1, 2, NOTHING]], np.uint8)
    label = np.array([[0, 1, 1, NOTHING, 2, 2]], np.uint8)
    confidence = np.array([[1.0, 0.55, 0.55, 0.0, 0.95, 0.9]], np.float32)
    predicted = np.array([[0, 0, 0, 0, 0, 0]], np.uint8)
    counts = quality_counts(label, confidence, truth, 3, bins=2, predicted=predicted)
    # compared: pixels 0, 1, 2, 4 (3 unlabelled, 5 no truth); right: 0, 2, 4
    assert counts.compared == 4 and counts.pixel_accuracy == 0.75 and counts.coverage == 4 / 5
    assert counts.prediction_accuracy == 0.5  # the prediction (all epoxy) is right on pixels 0 and 1
    # Epoxy 1/2 (pixel 1 labelled groundmass), Groundmass 1/2, Olivine 1/1
    assert counts.class_iou().tolist() == [0.5, 0.5, 1.0]
    # bins [0, .5) and [.5, 1]: all four compared pixels in the upper bin, mean confidence (1 + .55 + .55 + .95) / 4
    assert counts.bin_count.tolist() == [0, 4] and counts.bin_correct.tolist() == [0, 3]
    assert counts.ece == pytest.approx(abs(3 - (1.0 + 0.55 + 0.55 + 0.95)) / 4, abs=1e-7)
    summary = quality_summary(counts + empty_counts(3, bins=2), NAMES)
    assert summary["compared_pixels"] == 4 and summary["mean_iou"] == pytest.approx(2 / 3)
    assert summary["reliability"][0]["pixels"] == 0 and math.isnan(summary["reliability"][0]["accuracy"])
    assert summary["reliability"][1]["accuracy"] == 0.75


def test_quality_counts_pool_by_addition():
    truth = np.array([[1, 1]], np.uint8)
    right = quality_counts(np.array([[1, 1]], np.uint8), np.full((1, 2), 0.6, np.float32), truth, 3)
    wrong = quality_counts(np.array([[2, 2]], np.uint8), np.full((1, 2), 0.6, np.float32), truth, 3)
    pooled = right + wrong
    assert pooled.pixel_accuracy == 0.5 and pooled.bin_count[6] == 4
    assert pooled.ece == pytest.approx(0.1, abs=1e-7)  # accuracy 0.5 at confidence 0.6
    with pytest.raises(ValueError, match="different classes"):
        right + empty_counts(4)
    with pytest.raises(ValueError, match="outside 0..2"):
        quality_counts(np.array([[7, 1]], np.uint8), np.ones((1, 2)), truth, 3)
    with pytest.raises(ValueError, match="differ in shape"):
        quality_counts(np.array([[1]], np.uint8), np.ones((1, 2)), truth, 3)
