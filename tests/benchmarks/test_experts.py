"""Simulated experts: perception (jitter, naming errors by contrast), corrections (detection, automation bias, time), labels from scratch."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from benchmarks.experts import EXPERTS, ExpertModel, contrast_matrix, correct, label_from_scratch, perceive

CONFUSABLE = [1, 3, 4]
PERFECT = ExpertModel("P", jitter_px=0.0, detect_area_px=1e-6, confusion_low=0.0, confusion_high=0.0,
                      accept_confident=0.0, budget_seconds=1e6, time_noise=0.0)  # fmt: skip


def _truth() -> np.ndarray:
    truth = np.full((64, 64), 1, np.uint8)  # groundmass
    truth[8:24, 8:24] = 4  # an olivine
    truth[40:56, 30:60] = 2  # a plagioclase
    truth[2:4, 50:52] = 5  # a 4 px oxide
    return truth


def test_a_perfect_expert_sees_the_truth_and_fixes_every_error():
    truth = _truth()
    contrast = np.full((6, 6), 10.0)
    assert (perceive(truth, contrast, PERFECT, np.random.default_rng(0), CONFUSABLE) == truth).all()
    start = np.full(truth.shape, 1, np.uint8)
    result = correct(start, np.full(truth.shape, 0.5), truth, PERFECT, np.random.default_rng(0))
    assert (result.final == truth).all() and result.regions == 3 and result.left == 0
    expected = 8 + 0.4 * 4.096 + 3 * 3 + (256 + 480 + 4) / 1000
    assert result.seconds == pytest.approx(expected, abs=1e-3)


def test_jitter_moves_boundaries_by_about_its_amplitude():
    truth = _truth()
    expert = replace(PERFECT, jitter_px=2.0)
    seen = perceive(truth, np.full((6, 6), 10.0), expert, np.random.default_rng(1), CONFUSABLE)
    changed = seen != truth
    assert 0.02 < changed.mean() < 0.3
    from scipy import ndimage

    edges = ndimage.morphological_gradient(truth, size=3) > 0
    distance = ndimage.distance_transform_edt(~edges)
    assert distance[changed].max() <= 8  # errors stay near true boundaries


def test_naming_errors_follow_contrast():
    truth = np.zeros((64, 64), np.uint8)
    for k in range(64):  # 64 olivine grains of 4x4 in groundmass
        r, c = divmod(k, 8)
        truth[r * 8 : r * 8 + 4, c * 8 : c * 8 + 4] = 4
    truth[truth == 0] = 1
    expert = replace(PERFECT, confusion_low=0.0, confusion_high=1.0, contrast_scale=1.0)
    low, high = np.full((6, 6), 0.0), np.full((6, 6), 20.0)
    renamed_low = sum((perceive(truth, low, expert, np.random.default_rng(s), CONFUSABLE)[truth == 4] != 4).mean()
                      for s in range(5))  # fmt: skip
    renamed_high = sum((perceive(truth, high, expert, np.random.default_rng(s), CONFUSABLE)[truth == 4] != 4).mean()
                       for s in range(5))  # fmt: skip
    assert renamed_low > 2.5 and renamed_high < 0.1


def test_small_errors_are_missed_and_confident_errors_accepted():
    truth = _truth()
    start = np.full(truth.shape, 1, np.uint8)
    blind = replace(PERFECT, detect_area_px=1000.0, detect_slope=20.0)
    missed = correct(start, np.full(truth.shape, 0.5), truth, blind, np.random.default_rng(0))
    assert (missed.final == start).all() and missed.left == 3
    trusting = replace(PERFECT, accept_confident=1.0)
    kept = correct(start, np.full(truth.shape, 0.95), truth, trusting, np.random.default_rng(0))
    assert (kept.final == start).all()


def test_the_time_budget_runs_out_biggest_regions_first():
    truth = _truth()
    start = np.full(truth.shape, 1, np.uint8)
    hurried = replace(PERFECT, budget_seconds=8 + 1.64 + 3.5)  # room for one region only
    result = correct(start, np.full(truth.shape, 0.5), truth, hurried, np.random.default_rng(0))
    assert result.regions == 1 and result.out_of_time == 2
    assert (result.final[40:56, 30:60] == 2).all() and (result.final[8:24, 8:24] == 1).all()


def test_labels_from_scratch_paint_missed_grains_as_their_surroundings():
    truth = _truth()
    blind = replace(PERFECT, detect_area_px=50.0, detect_slope=20.0)
    result = label_from_scratch(truth, blind, np.random.default_rng(0))
    assert (result.final[2:4, 50:52] == 1).all()  # the 4 px oxide became groundmass
    assert (result.final[8:24, 8:24] == 4).all()


def test_contrast_matrix_and_the_named_experts():
    image = np.where(_truth() == 4, 100.0, 50.0) + np.random.default_rng(0).normal(0, 5, (64, 64))
    contrast = contrast_matrix(image, _truth(), 6)
    assert contrast[1, 4] == contrast[4, 1] and contrast[1, 4] > 5
    assert np.isinf(contrast[0, 1])  # no epoxy in the sample
    assert set(EXPERTS) == {"A", "B", "C"} and len({e.jitter_px for e in EXPERTS.values()}) == 3
    with pytest.raises(ValueError):
        ExpertModel("X", 1.0, 10.0, 0.1, 1.5, 0.1, 60.0)
