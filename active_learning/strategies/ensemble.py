"""Ensemble scoring: disagreement (mutual information, BALD) within a committee of models.

For a project with a fast learner (:mod:`ml_backend.segmenters.fast_learner`) the committee is
the forest itself, split into ``members`` sub-forests, each stacked with the FCN exactly as the
whole forest is: tiles where the sub-forests disagree are those the few corrections so far do
not pin down. For the FCN alone the committee is ``samples`` Monte-Carlo dropout passes
(:mod:`active_learning.strategies.mc_dropout`); for any other segmenter, entropy.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from active_learning.strategies.base import Scorer
from active_learning.strategies.mc_dropout import StochasticSegmenter, mutual_information_map
from ml_backend.segmenters.base import Segmenter
from ml_backend.segmenters.fast_learner import (
    FastLearnerSegmenter,
    PixelClassifier,
    combine,
    extend,
    learner_features,
    smooth_votes,
)
from ml_backend.uncertainty import entropy_map


def committee_probabilities(
    classifier: PixelClassifier, features: np.ndarray, members: int = 8, threads: int = 2
) -> np.ndarray:
    """(members, C, N) stacked probabilities of sub-forests of ``classifier`` on (F, N) pixel features.

    Trees are dealt to ``members`` groups in order; each group's votes are smoothed, extended to
    all classes and stacked with the base probabilities with the classifier's own weights.

    Raises:
        ValueError: for fewer than 2 members or more members than trees.
    """
    trees = classifier.model.estimators_
    if not 2 <= members <= len(trees):
        raise ValueError(f"a committee needs 2 to {len(trees)} members, got {members}")
    x = np.ascontiguousarray(features.T, dtype=np.float32)
    base = features[classifier.base]
    groups = [trees[g::members] for g in range(members)]

    def member(group: list) -> np.ndarray:
        votes = sum(tree.predict_proba(x) for tree in group) / len(group)
        forest = extend(
            smooth_votes(votes.T, len(group)), base, classifier.taught, classifier.keep, classifier.n_classes
        )
        return combine(forest, base, classifier.weights, classifier.keep)

    with ThreadPoolExecutor(max(1, threads)) as pool:
        return np.stack(list(pool.map(member, groups)))


class EnsembleScorer(Scorer):
    """Mean mutual information of a committee (sub-forests of the fast learner, or MC dropout of the FCN).

    Args:
        members: Sub-forests of a fast learner.
        samples: Dropout passes of an FCN.
    """

    name = "ensemble"

    def __init__(self, members: int = 8, samples: int = 8) -> None:
        if members < 2 or samples < 2:
            raise ValueError("an ensemble needs at least 2 members and 2 dropout samples")
        self.members, self.samples = int(members), int(samples)

    def score(self, image: np.ndarray, segmenter: Segmenter, probs: np.ndarray | None = None) -> float:
        """Mean of :func:`~active_learning.strategies.mc_dropout.mutual_information_map` over the committee."""
        if isinstance(segmenter, FastLearnerSegmenter):
            _, features = learner_features(image, segmenter.base, segmenter.config)
            committee = committee_probabilities(
                segmenter.classifier, features.reshape(features.shape[0], -1), self.members
            )
            return float(mutual_information_map(committee[..., None]).mean())
        if isinstance(segmenter, StochasticSegmenter):
            return float(mutual_information_map(segmenter.predict_proba_samples(image, self.samples)).mean())
        return float(entropy_map(self.probabilities(image, segmenter, probs)).mean())
