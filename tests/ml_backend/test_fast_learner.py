"""The fast learner: pixel sampling, the stacked forest, and learning a correction from one image."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from label_config import load_catalogue
from label_config.catalogue import IGNORE_INDEX
from ml_backend.segmenters.base import Segmenter
from ml_backend.segmenters.fast_learner import (
    FastLearnerConfig,
    FastLearnerSegmenter,
    PixelClassifier,
    PixelSamples,
    combine,
    extend,
    folds,
    learner_features,
    sample_pixels,
    stack_weights,
)

CAT = load_catalogue()
C = len(CAT)
SMALL = FastLearnerConfig(per_class=300, n_estimators=12, max_depth=8, n_jobs=1)


class Blind(Segmenter):
    """A base model that calls everything Groundmass (p = 0.7), whatever the image shows."""

    catalogue = CAT
    version = "blind-1"

    def predict_proba(self, image, progress=False):
        probs = np.full((C, *image.shape), 0.3 / (C - 1), np.float32)
        probs[1] = 0.7
        return probs


class BrightAs(Segmenter):
    """Calls pixels brighter than 2000 class ``index`` (p = ``bright``, Groundmass ``groundmass``), the rest Groundmass."""

    catalogue, version = CAT, "bright-1"

    def __init__(self, index: int, bright: float, groundmass: float) -> None:
        self.index, self.bright, self.groundmass = index, bright, groundmass

    def predict_proba(self, image, progress=False):
        probs = np.full((C, *image.shape), 0.02, np.float32)
        bright = image > 2000
        probs[1] = np.where(bright, self.groundmass, 0.9)
        probs[self.index] = np.where(bright, self.bright, 0.02)
        return probs


def spots(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A grey field with bright discs (Fe-Ti oxide, class 5) on groundmass (class 1)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:96, :96]
    label = np.full((96, 96), 1, np.uint8)
    for _ in range(6):
        r, c = rng.uniform(10, 86, 2)
        label[(yy - r) ** 2 + (xx - c) ** 2 < 36] = 5
    image = np.where(label == 5, 3000.0, 1000.0) + rng.normal(0, 60, label.shape)
    return image.astype(np.uint16), label


def test_sample_pixels_draws_rare_classes_but_keeps_the_class_proportions_in_the_weights():
    label = np.zeros((40, 50), np.uint8)
    label[:4] = 5  # 200 px of a rare class, 1800 px of class 0
    label[:, -1] = IGNORE_INDEX
    features = np.random.default_rng(0).normal(size=(3, 40, 50)).astype(np.float32)
    samples = sample_pixels(features, label, np.ones(label.shape, np.float32), np.random.default_rng(1), 100)
    assert np.bincount(samples.labels, minlength=6)[[0, 5]].tolist() == [100, 100]
    weight = {c: samples.weights[samples.labels == c].sum() for c in (0, 5)}
    assert weight[0] / weight[5] == pytest.approx((1800 - 36) / (200 - 4))
    assert samples.features.shape == (200, 3)
    with pytest.raises(ValueError, match="differ in shape"):
        sample_pixels(features, label[:-1], np.ones((39, 50), np.float32), np.random.default_rng(1), 10)


def test_untaught_classes_keep_the_base_share():
    base = np.array([[0.1, 0.6], [0.5, 0.2], [0.4, 0.2]], np.float32)  # 3 classes, 2 pixels
    forest = np.array([[0.25, 1.0], [0.75, 0.0]], np.float32)  # taught classes 1 and 2
    out = extend(forest, base, np.array([1, 2]), np.array([0]), 3)
    np.testing.assert_allclose(out[0], base[0])
    np.testing.assert_allclose(out.sum(axis=0), 1.0, rtol=1e-6)
    np.testing.assert_allclose(out[1:, 0], [0.225, 0.675], rtol=1e-6)
    rejected = extend(forest, base, np.array([1, 2]), np.zeros(0, np.int64), 3)
    assert (rejected[0] == 0).all()
    np.testing.assert_allclose(rejected[1:], forest, rtol=1e-6)


def test_stacking_trusts_whichever_model_was_right_out_of_bag():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 600)
    right = np.full((3, 600), 0.05, np.float32)
    right[labels, np.arange(600)] = 0.9
    wrong = np.roll(right, 1, axis=0)
    weights = np.ones(600, np.float32)
    trust_base = stack_weights(wrong, right, labels, weights)
    trust_forest = stack_weights(right, wrong, labels, weights)
    assert trust_base[1] > 1.0 > trust_base[0]
    assert trust_forest[0] > 1.0 > trust_forest[1]


def test_fast_learner_learns_what_the_base_model_gets_wrong_from_one_image_and_is_deterministic():
    base = Blind()
    image, label = spots(1)
    _, features = learner_features(image, base, SMALL)
    samples = sample_pixels(
        features, label, np.ones(label.shape, np.float32), np.random.default_rng(0), SMALL.per_class
    )
    classifier = PixelClassifier.fit(samples, C, SMALL)
    learner = FastLearnerSegmenter(base, classifier, "blind-1+fast", SMALL)
    other, truth = spots(2)
    predicted = learner.segment(other)
    assert (base.segment(other) == 5).sum() == 0
    assert np.mean(predicted[truth == 5] == 5) > 0.9 and np.mean(predicted[truth == 1] == 1) > 0.95
    again = PixelClassifier.fit(samples, C, SMALL)
    np.testing.assert_array_equal(
        FastLearnerSegmenter(base, again, "x", SMALL).predict_proba(other), learner.predict_proba(other)
    )
    probs = learner.predict_proba(other)
    np.testing.assert_allclose(probs.sum(axis=0), 1.0, rtol=1e-5)
    assert probs[3].max() > 0  # untaught classes keep some probability


def test_pixel_samples_reject_mismatched_arrays_and_empty_fits():
    with pytest.raises(ValueError, match="pixel samples need"):
        PixelSamples(np.zeros((3, 2), np.float32), np.zeros(4, np.uint8), np.ones(4, np.float32), np.zeros(4, np.int32))
    with pytest.raises(ValueError, match="needs labelled pixels"):
        PixelClassifier.fit(
            PixelSamples(
                np.zeros((0, 2), np.float32), np.zeros(0, np.uint8), np.zeros(0, np.float32), np.zeros(0, np.int32)
            ),
            C,
        )
    with pytest.raises(ValueError, match="different feature counts"):
        PixelSamples.concat(
            [
                PixelSamples(
                    np.zeros((1, 2), np.float32), np.zeros(1, np.uint8), np.ones(1, np.float32), np.zeros(1, np.int32)
                ),
                PixelSamples(
                    np.zeros((1, 3), np.float32), np.zeros(1, np.uint8), np.ones(1, np.float32), np.zeros(1, np.int32)
                ),
            ]
        )


def test_forest_on_a_coarse_grid_agrees_with_the_full_resolution_forest():
    base = Blind()
    image, label = spots(1)
    _, features = learner_features(image, base, SMALL)
    samples = sample_pixels(
        features, label, np.ones(label.shape, np.float32), np.random.default_rng(0), SMALL.per_class
    )
    classifier = PixelClassifier.fit(samples, C, SMALL)
    _, other = learner_features(spots(3)[0], base, SMALL)
    full, coarse = classifier.predict_proba(other), classifier.predict_proba(other, stride=2)
    assert coarse.shape == full.shape
    assert np.mean(coarse.argmax(0) == full.argmax(0)) > 0.97


def test_subsampling_keeps_the_total_weight_and_the_features_of_the_drawn_pixels():
    rng = np.random.default_rng(0)
    samples = PixelSamples(rng.normal(size=(1000, 4)).astype(np.float32), rng.integers(0, 3, 1000).astype(np.uint8),
                           rng.uniform(0.1, 1, 1000).astype(np.float32), rng.integers(0, 4, 1000).astype(np.int32))  # fmt: skip
    small = samples.subsample(np.random.default_rng(1), 100)
    assert len(small.labels) == 100 and small.weights.sum() == pytest.approx(samples.weights.sum(), rel=1e-5)
    rows = {tuple(r) for r in samples.features.tolist()}
    assert all(tuple(r) in rows for r in small.features.tolist())
    assert samples.subsample(np.random.default_rng(1), 5000) is samples


def corrected(base: Segmenter, seeds: list[int], relabel: dict[int, int]) -> PixelSamples:
    """Training pixels of the ``spots`` images of ``seeds``, their classes renamed by ``relabel``."""
    parts = []
    for seed in seeds:
        image, label = spots(seed)
        for old, new in relabel.items():
            label[label == old] = new
        _, features = learner_features(image, base, SMALL)
        parts.append(sample_pixels(features, label, np.ones(label.shape, np.float32),
                                   np.random.default_rng(seed), SMALL.per_class))  # fmt: skip
    return PixelSamples.concat(parts)


def test_a_class_the_expert_always_paints_as_another_on_two_images_is_rejected_not_kept():
    base = BrightAs(2, 0.9, 0.02)  # the expert calls the bright discs Clinopyroxene (3)
    classifier = PixelClassifier.fit(corrected(base, [1, 3], {5: 3}), C, SMALL)
    assert 2 not in classifier.keep and {0, 4, 5} <= set(classifier.keep.tolist())
    other, truth = spots(2)
    predicted = FastLearnerSegmenter(base, classifier, "x", SMALL).segment(other)
    assert np.mean(predicted[truth == 5] == 3) > 0.9


def test_cross_fitting_folds_are_images_or_with_one_image_its_quarters():
    image, label = spots(1)
    _, features = learner_features(image, Blind(), SMALL)
    one = sample_pixels(features, label, np.ones(label.shape, np.float32), np.random.default_rng(0), SMALL.per_class)
    assert set(one.groups.tolist()) == {0, 1, 2, 3} and set(folds(one).tolist()) == {0, 1, 2, 3}
    several = PixelSamples.concat([one] * 6)
    assert several.images().tolist() == np.repeat(np.arange(6), len(one.labels)).tolist()
    assert folds(several).tolist() == np.repeat([0, 1, 2, 3, 0, 1], len(one.labels)).tolist()
    stored = {k: v for k, v in vars(one).items() if k != "groups"}
    assert not PixelSamples.from_arrays(stored).groups.any()  # samples stored before groups: one block


def test_stacking_keeps_the_share_of_classes_the_expert_never_painted():
    rng = np.random.default_rng(0)
    base = rng.dirichlet(np.ones(C), size=500).T.astype(np.float32)
    forest = extend(rng.dirichlet(np.ones(2), size=500).T.astype(np.float32), base, np.array([1, 2]),
                    np.array([0, 3, 4, 5]), C)  # fmt: skip
    labels = rng.integers(1, 3, 500)
    weights = stack_weights(forest, base, labels, np.ones(500, np.float32), np.array([0, 3, 4, 5]))
    out = combine(forest, base, weights, np.array([0, 3, 4, 5]))
    np.testing.assert_allclose(out[[0, 3, 4, 5]], base[[0, 3, 4, 5]], rtol=1e-6)
    np.testing.assert_allclose(out.sum(axis=0), 1.0, rtol=1e-5)


def test_a_forest_that_does_not_carry_over_to_another_image_does_not_take_over():
    """Within each image a noise feature names the class perfectly, but differently per image: only
    cross-fitting on held-out images sees that; the FCN (right 80 % of the time) must keep the lead."""
    rng = np.random.default_rng(3)
    parts, n = [], 600
    for image in range(4):
        labels = rng.integers(1, 3, n).astype(np.uint8)
        spurious = np.where(labels == 1, 1.0, -1.0) * (1 if image % 2 else -1) + rng.normal(0, 0.1, n)
        right = rng.random(n) < 0.8
        base = np.full((n, C), 0.02, np.float32)
        base[np.arange(n), np.where(right, labels, 3 - labels)] = 0.9
        grey = np.zeros((n, 2 + 2 * len(SMALL.scales)), np.float32)
        grey[:, 0] = spurious
        parts.append(PixelSamples(np.hstack([grey, base]), labels, np.ones(n, np.float32), np.zeros(n, np.int32)))
    classifier = PixelClassifier.fit(PixelSamples.concat(parts), C, SMALL)
    a, b = classifier.weights[:2]
    assert b > a
    fifth = parts[0].features.copy()
    fifth[:, 0] = rng.choice([-1.0, 1.0], n)  # a fifth image: the spurious feature says nothing there
    predicted = classifier.predict_proba(fifth.T.reshape(-1, n, 1)).argmax(0).ravel()
    assert np.mean(predicted == fifth[:, -C:].argmax(1)) > 0.9


def test_one_corrected_image_rejects_only_a_class_covering_much_of_it():
    """One image is weak evidence against a phase: the relabelling that rejects Plagioclase (on the discs,
    about 7 % of the image) on two images keeps it on one, unless the one-image share is lowered."""
    base = BrightAs(2, 0.9, 0.02)
    samples = corrected(base, [1], {5: 3})
    assert 2 in PixelClassifier.fit(samples, C, SMALL).keep.tolist()
    assert 2 not in PixelClassifier.fit(samples, C, replace(SMALL, reject_share_one_image=0.02)).keep.tolist()


@pytest.mark.parametrize("seeds", [[1], [1, 3]])
def test_labels_of_one_class_leave_the_base_model_as_it_is(seeds: list[int]):
    """Tiles the expert painted all groundmass say nothing about telling phases apart: the oxide the
    base sees on them is kept (one image) or rejected (two), but the other tasks' oxide must not
    vanish with it."""
    base = BrightAs(5, 0.82, 0.1)
    classifier = PixelClassifier.fit(corrected(base, seeds, {5: 1}), C, SMALL)
    assert (5 in classifier.keep.tolist()) == (len(seeds) == 1)
    other, truth = spots(2)
    _, features = learner_features(other, base, SMALL)
    np.testing.assert_allclose(classifier.predict_proba(features), features[classifier.base], atol=1e-5)
