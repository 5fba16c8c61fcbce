"""Audit-based confidence calibration: features on tiny maps, the fitted model, its JSON, the harvest hook."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from active_learning.calibration import (
    EDIT_CAP_PX,
    HARVEST_FEATURES,
    MIN_ANNOTATOR_GROUPS,
    CalibrationModel,
    calibrated_confidence,
    class_feature,
    pixel_features,
)
from active_learning.corrections import NOTHING
from ml_backend.metrics import expected_calibration_error


def test_pixel_features_exact_on_a_tiny_map():
    predicted = np.zeros((4, 4), np.uint8)
    final = predicted.copy()
    final[0, 0] = 1  # one edited pixel
    final[3, 3] = NOTHING  # one unlabelled pixel
    features, index = pixel_features(predicted, final, lead_time=9.0, n_classes=3)
    assert index.size == 15 and 15 not in index
    assert features["edited"][0] == 1 and features["edited"][1:].sum() == 0
    assert features["log_distance_to_edit"][0] == 0.0
    assert features["log_distance_to_edit"][1] == pytest.approx(math.log1p(1.0))  # (0, 1) is 1 px from the edit
    assert features["log_region_area"][0] == pytest.approx(math.log1p(1))  # the lone class-1 pixel
    assert features["log_region_area"][1] == pytest.approx(math.log1p(14))
    # two edits: the relabelled pixel and the erased one
    assert features["log_seconds_per_edited_kpx"][0] == pytest.approx(math.log1p(9.0 / 1.002))
    assert features[class_feature(1)].sum() == 1 and features[class_feature(0)].sum() == 14
    assert np.isnan(features["top_probability"]).all()
    no_edit, _ = pixel_features(predicted, predicted, None, 3)
    assert (no_edit["log_distance_to_edit"] == math.log1p(EDIT_CAP_PX)).all() and (no_edit["any_edit"] == 0).all()


def _synthetic_audit(n_tiles: int, seed: int, bias: float = 0.0, slope: float = 1.0):
    """Pixels whose chance of being right rises with the distance to the boundary (annotator: offset and slope)."""
    rng = np.random.default_rng(seed)
    parts = []
    for tile in range(n_tiles):
        n = 400
        features = {name: rng.random(n) for name in HARVEST_FEATURES}
        features["edited"] = (rng.random(n) < 0.2).astype(float)
        logit = slope * (-1.0 + 3.0 * features["log_distance_to_boundary"] + 1.5 * features["edited"]) + bias
        correct = rng.random(n) < 1 / (1 + np.exp(-logit))
        parts.append(features | {"correct": correct, "tile": np.full(n, tile)})
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def test_fitted_model_is_calibrated_where_a_constant_is_not():
    train, test = _synthetic_audit(30, 0), _synthetic_audit(30, 1)
    model = CalibrationModel.fit(train, train["correct"], train["tile"], names=list(HARVEST_FEATURES))
    predicted = model.predict(test)
    assert expected_calibration_error(predicted, test["correct"]) < 0.03
    assert expected_calibration_error(np.full(predicted.size, 0.6), test["correct"]) > 0.05
    assert np.corrcoef(predicted, test["log_distance_to_boundary"])[0, 1] > 0.5


def test_annotator_offsets_and_unknown_annotators():
    a, b = _synthetic_audit(20, 2, bias=1.0), _synthetic_audit(20, 3, bias=-1.0)
    both = {k: np.concatenate([a[k], b[k]]) for k in a}
    people = np.array(["a"] * a["correct"].size + ["b"] * b["correct"].size)
    model = CalibrationModel.fit(both, both["correct"], both["tile"] + 100 * (people == "b"), annotators=people,
                                 names=list(HARVEST_FEATURES))  # fmt: skip
    assert model.annotators["a"] > model.annotators["b"]
    assert model.predict(a, "a").mean() > model.predict(a, "new").mean() > model.predict(a, "b").mean()


def _two_annotators(tiles_a: int, tiles_b: int, seed: int):
    """Annotator "b" is not a shifted "a": their labels depend on the features far less (slope 0.3)."""
    a, b = _synthetic_audit(tiles_a, seed), _synthetic_audit(tiles_b, seed + 1, bias=0.8, slope=0.3)
    both = {k: np.concatenate([a[k], b[k]]) for k in a}
    people = np.array(["a"] * a["correct"].size + ["b"] * b["correct"].size)
    return both, both["tile"] + 1000 * (people == "b"), people


def test_an_annotator_with_enough_audits_gets_an_own_map():
    both, tiles, people = _two_annotators(60, MIN_ANNOTATOR_GROUPS, 10)
    model = CalibrationModel.fit(both, both["correct"], tiles, annotators=people, names=list(HARVEST_FEATURES))
    assert set(model.annotator_maps) == {"a", "b"}
    held_out = _synthetic_audit(40, 20, bias=0.8, slope=0.3)
    own = expected_calibration_error(model.predict(held_out, "b"), held_out["correct"])
    shared = expected_calibration_error(model.predict(held_out), held_out["correct"])
    assert own < 0.03 < shared
    few, tiles, people = _two_annotators(60, MIN_ANNOTATOR_GROUPS - 1, 10)
    assert set(CalibrationModel.fit(few, few["correct"], tiles, annotators=people,
                                    names=list(HARVEST_FEATURES)).annotator_maps) == {"a"}  # fmt: skip


def test_json_round_trip_gives_the_same_predictions():
    train = _synthetic_audit(10, 4)
    model = CalibrationModel.fit(train, train["correct"], train["tile"], names=list(HARVEST_FEATURES))
    again = CalibrationModel.from_dict(json.loads(model.to_json()))
    np.testing.assert_array_equal(model.predict(train), again.predict(train))
    both, tiles, people = _two_annotators(MIN_ANNOTATOR_GROUPS, MIN_ANNOTATOR_GROUPS, 12)
    model = CalibrationModel.fit(both, both["correct"], tiles, annotators=people, names=list(HARVEST_FEATURES))
    again = CalibrationModel.from_dict(json.loads(model.to_json()))
    np.testing.assert_array_equal(model.predict(both, "b"), again.predict(both, "b"))
    assert not np.array_equal(model.predict(both, "b"), model.predict(both, "a"))
    with pytest.raises(ValueError, match="not a confidence calibration model"):
        CalibrationModel.from_dict({"format": "pickle"})


def test_fit_and_features_refuse_bad_inputs():
    train = _synthetic_audit(2, 5)
    with pytest.raises(ValueError, match="two tiles"):
        CalibrationModel.fit(train, train["correct"], np.zeros(train["correct"].size), names=list(HARVEST_FEATURES))
    with pytest.raises(ValueError, match="unknown"):
        CalibrationModel.fit(train | {"top_probability": np.full(train["correct"].size, np.nan)}, train["correct"],
                             train["tile"], names=["top_probability"])  # fmt: skip
    with pytest.raises(ValueError, match="shape"):
        pixel_features(np.zeros((2, 2), np.uint8), np.zeros((3, 3), np.uint8), None, 3)


def test_calibrated_confidence_is_zero_where_unlabelled():
    rng = np.random.default_rng(6)
    predicted = rng.integers(0, 3, (16, 16)).astype(np.uint8)
    final = predicted.copy()
    final[:4] = 2
    final[-2:] = NOTHING
    features, _ = pixel_features(predicted, final, 20.0, 3)
    names = list(HARVEST_FEATURES) + [class_feature(k) for k in range(3)]
    correct = features["edited"] > 0
    correct[::7] = ~correct[::7]
    groups = np.arange(correct.size) % 4
    model = CalibrationModel.fit(features, correct, groups, names=names)
    confidence = calibrated_confidence(model, predicted, final, 20.0)
    assert confidence.shape == final.shape and confidence.dtype == np.float32
    assert (confidence[-2:] == 0).all() and (confidence[:-2] > 0).all()
