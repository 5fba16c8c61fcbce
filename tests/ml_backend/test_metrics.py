"""Metrics: per-tile mIoU, reliability bins and ECE (equal-width and adaptive), cluster bootstrap."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ml_backend.metrics import (
    bootstrap_interval,
    ece_interval,
    expected_calibration_error,
    reliability_bins,
    tile_miou,
)


def test_tile_miou_counts_only_classes_present_in_the_tile():
    truth = np.array([[0, 0], [1, 1]], np.uint8)
    assert tile_miou(truth, truth, 6) == 1.0
    predicted = np.array([[0, 0], [1, 0]], np.uint8)
    assert tile_miou(truth, predicted, 6) == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert math.isnan(tile_miou(np.full((2, 2), 255, np.uint8), predicted, 6))


def test_reliability_equal_width_exact():
    confidence = np.array([0.05, 0.15, 0.95, 0.95, 1.0])
    correct = np.array([0, 1, 1, 0, 1])
    rows = reliability_bins(confidence, correct, bins=10, adaptive=False)
    assert [r["pixels"] for r in rows] == [1, 1, 0, 0, 0, 0, 0, 0, 0, 3]
    assert rows[9]["accuracy"] == pytest.approx(2 / 3)
    assert rows[9]["confidence"] == pytest.approx((0.95 + 0.95 + 1.0) / 3)
    expected = (abs(0 - 0.05) + abs(1 - 0.15) + 3 * abs(2 / 3 - (2.9 / 3))) / 5
    assert expected_calibration_error(confidence, correct, bins=10, adaptive=False) == pytest.approx(expected)


def test_adaptive_bins_hold_equal_mass_and_span_their_members():
    confidence = np.linspace(0.0, 1.0, 100)
    rows = reliability_bins(confidence, confidence > 0.5, bins=4)
    assert [r["pixels"] for r in rows] == [25, 25, 25, 25]
    assert rows[0]["low"] == 0.0 and rows[0]["high"] == pytest.approx(confidence[24])
    assert rows[3]["high"] == 1.0


def test_ece_is_zero_for_honest_confidence_and_large_for_overconfidence():
    rng = np.random.default_rng(0)
    confidence = rng.random(200_000)
    honest = rng.random(confidence.size) < confidence
    assert expected_calibration_error(confidence, honest) < 0.01
    assert expected_calibration_error(np.full(1000, 0.9), np.zeros(1000)) == pytest.approx(0.9)


def test_reliability_rejects_bad_inputs():
    with pytest.raises(ValueError, match="outcomes"):
        reliability_bins(np.array([0.5]), np.array([1, 0]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        reliability_bins(np.array([1.5]), np.array([1]))


def test_cluster_bootstrap_is_seeded_and_brackets_the_mean():
    values = np.arange(20, dtype=float)
    low, high = bootstrap_interval(20, lambda i: float(values[i].mean()), n_boot=500, seed=3)
    assert (low, high) == bootstrap_interval(20, lambda i: float(values[i].mean()), n_boot=500, seed=3)
    assert low < values.mean() < high
    assert high - low < 8
    with pytest.raises(ValueError):
        bootstrap_interval(0, lambda i: 0.0)


def test_ece_interval_matches_a_bootstrap_that_resorts_every_resample():
    """Fixed full-sample bins give the interval of the textbook cluster bootstrap (bins recomputed per resample)."""
    rng = np.random.default_rng(4)
    clusters = np.repeat(np.arange(60), 150)
    offset = rng.normal(0, 0.15, 60)[clusters]  # clusters differ in how over-confident they are
    confidence = rng.uniform(0.5, 1.0, clusters.size)
    correct = rng.random(clusters.size) < np.clip(confidence - 0.1 + offset, 0, 1)
    members = [np.flatnonzero(clusters == c) for c in range(60)]

    def resorted(drawn):
        index = np.concatenate([members[c] for c in drawn])
        return expected_calibration_error(confidence[index], correct[index])

    slow = bootstrap_interval(60, resorted, n_boot=300, seed=5)
    fast = ece_interval(confidence, correct, clusters, n_boot=300, seed=5)
    assert fast[0] < expected_calibration_error(confidence, correct) < fast[1]
    assert fast == pytest.approx(slow, abs=0.01)
    pixels = ece_interval(confidence, correct, np.arange(clusters.size), n_boot=300, seed=5)
    assert pixels[1] - pixels[0] < 0.5 * (fast[1] - fast[0])  # pixels as units understate the uncertainty
    with pytest.raises(ValueError, match="cluster ids"):
        ece_interval(confidence, correct, clusters[:-1])
