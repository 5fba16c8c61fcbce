"""The query strategies added for issue 15: top-k % and class-weighted entropy, ensemble, cost-aware, core-set, BADGE."""

from __future__ import annotations

import math

import numpy as np
import pytest

from active_learning.strategies import ScoredTask, create_scorer, create_selector
from active_learning.strategies.class_weighted import class_weighted_entropy, rarity_weights
from active_learning.strategies.cost_aware import CostModel, cost_features
from active_learning.strategies.embeddings import gradient_embedding, pooled_embedding
from active_learning.strategies.ensemble import committee_probabilities
from active_learning.strategies.top_k_entropy import top_fraction_mean
from label_config import load_catalogue
from ml_backend.segmenters.base import Segmenter
from ml_backend.segmenters.fast_learner import FastLearnerConfig, PixelClassifier, PixelSamples

CATALOGUE = load_catalogue()


class Fixed(Segmenter):
    def __init__(self, probs: np.ndarray) -> None:
        self.catalogue, self.version, self.probs = CATALOGUE, "fixed", probs

    def predict_proba(self, image, progress=False):
        return self.probs.copy()


def _probs(certain: int, uniform: int) -> np.ndarray:
    """(6, 1, certain + uniform): one-hot pixels, then uniform pixels."""
    p = np.zeros((6, 1, certain + uniform), np.float32)
    p[0, 0, :certain] = 1.0
    p[:, 0, certain:] = 1 / 6
    return p


def test_top_fraction_mean_exact():
    assert top_fraction_mean(np.arange(10.0), 0.2) == 8.5
    assert top_fraction_mean(np.arange(10.0), 0.01) == 9.0  # at least one value
    with pytest.raises(ValueError):
        top_fraction_mean(np.arange(3.0), 0.0)


def test_top_k_entropy_separates_tiles_mean_entropy_does_not():
    small_uncertain = _probs(90, 10)  # 10 % of the pixels uniform
    image = np.zeros((1, 100))
    assert create_scorer("entropy").score(image, Fixed(small_uncertain)) == pytest.approx(0.1, abs=1e-6)
    assert create_scorer("top-k-entropy", fraction=0.1).score(image, Fixed(small_uncertain)) == pytest.approx(
        1.0, abs=1e-6
    )


def test_class_weighted_entropy_weights_rare_predicted_classes():
    probs = np.zeros((3, 1, 4))
    probs[:, 0, 0] = [0.5, 0.5, 0.0]  # uncertain, predicted class 0 (rare)
    probs[:, 0, 1:] = np.array([[0.0], [1.0], [0.0]])  # certain class 1 (common)
    weights = rarity_weights(np.array([0.01, 0.99, 0.0]))
    assert weights[0] > weights[1]
    entropy0 = math.log(2) / math.log(3)
    expected = weights[0] * entropy0 / (weights[0] + 3 * weights[1])
    assert class_weighted_entropy(probs, weights) == pytest.approx(expected, rel=1e-5)
    assert class_weighted_entropy(probs, np.ones(3)) == pytest.approx(entropy0 / 4, rel=1e-5)
    with pytest.raises(ValueError, match="class weights"):
        class_weighted_entropy(probs, np.ones(2))


def test_cost_features_and_fitted_cost_model():
    classes = np.zeros((10, 10), np.uint8)
    classes[:, 5:] = 1
    np.testing.assert_allclose(cost_features(classes), [1.0, 0.1, 2.0, 0.01])
    np.testing.assert_allclose(cost_features(classes, pixel_scale=2), [1.0, 0.4, 2.0, 0.02])
    rng = np.random.default_rng(0)
    x = np.column_stack([np.ones(200), rng.random(200) * 16, rng.integers(1, 20, 200), rng.random(200) * 3])
    seconds = x @ np.array([5.0, 0.5, 4.0, 1.0])
    fitted = CostModel.fit(x, seconds, prior_weight=0.01)
    np.testing.assert_allclose(fitted.coef, [5.0, 0.5, 4.0, 1.0], atol=0.05)
    assert create_scorer("cost-aware").score(np.zeros((1, 100)), Fixed(_probs(90, 10))) > 0


def test_gradient_embedding_exact_and_zero_for_one_hot():
    probs = np.array([[0.75, 1.0], [0.25, 0.0]])
    features = np.array([[2.0, 5.0]])
    # pixel 0: residual (-0.25, 0.25) x h (2, 1); pixel 1: residual 0
    np.testing.assert_allclose(gradient_embedding(probs, features), np.array([-0.5, -0.25, 0.5, 0.25]) / 2)
    assert not gradient_embedding(np.eye(2), np.ones((3, 2))).any()


def test_pooled_embedding_averages_the_cells_under_the_box():
    fmap = np.arange(16, dtype=np.float32).reshape(1, 4, 4)
    assert pooled_embedding(fmap, (0, 0, 64, 64), (128, 128))[0] == pytest.approx(np.mean([0, 1, 4, 5]))
    assert pooled_embedding(fmap, (96, 96, 10, 10), (128, 128))[0] == 15.0


def test_badge_starts_with_the_longest_embedding_and_spreads():
    tasks = [ScoredTask(0, 0.1, np.array([0.1, 0.0])), ScoredTask(1, 0.2, np.array([5.0, 0.0])),
             ScoredTask(2, 0.3, np.array([4.9, 0.1])), ScoredTask(3, 0.4, np.array([0.0, -4.0]))]  # fmt: skip
    picked = [t.task_id for t in create_selector("badge", seed=0).select(tasks, 2)]
    assert picked[0] == 1
    assert picked == [t.task_id for t in create_selector("badge", seed=0).select(tasks, 2)]
    counts = {i: 0 for i in range(4)}
    for seed in range(200):
        counts[create_selector("badge", seed=seed).select(tasks, 2)[1].task_id] += 1
    assert counts[3] > counts[2]  # far away is drawn far more often than the near-duplicate


def test_core_set_counts_distance_to_what_is_already_labelled():
    tasks = [ScoredTask(i, 1.0, np.array([float(i), 0.0])) for i in range(5)]
    free = create_selector("diverse", diversity=1.0).select(tasks, 2)
    assert [t.task_id for t in free] == [0, 4]
    covered = create_selector("diverse", diversity=1.0, labelled=np.array([[0.0, 0.0], [4.0, 0.0]])).select(tasks, 1)
    assert [t.task_id for t in covered] == [2]
    with pytest.raises(ValueError, match="labelled embeddings"):
        create_selector("diverse", labelled=np.zeros((1, 3))).select(tasks, 1)


def test_committee_members_disagree_on_unseen_pixels_and_stack_like_the_forest():
    rng = np.random.default_rng(0)
    config = FastLearnerConfig(n_estimators=16, n_jobs=1, scales=(2.5,))
    n_features = 2 + 2 + 6 + 2  # grey filters (1 scale), 6 base probabilities, 2 deep
    x = rng.random((600, n_features)).astype(np.float32)
    labels = (x[:, 0] > 0.5).astype(np.uint8) + 1
    x[:, 4:10] = 1 / 6
    classifier = PixelClassifier.fit(
        PixelSamples(x, labels, np.ones(600, np.float32), np.zeros(600, np.int32)), 6, config
    )
    committee = committee_probabilities(classifier, x[:50].T, members=4, threads=1)
    assert committee.shape == (4, 6, 50)
    np.testing.assert_allclose(committee.sum(axis=1), 1.0, rtol=1e-5)
    with pytest.raises(ValueError, match="committee"):
        committee_probabilities(classifier, x[:5].T, members=32)
