"""The fast learner: a pixel classifier on the FCN's own features, refitted in seconds from a project's corrections.

Fine-tuning the FCN on a few corrected tiles takes minutes on a CPU. The fast learner keeps
the FCN frozen and learns on top of it, as ilastik does on hand-made filters: per pixel it
reads the FCN's class probabilities, the decoder's last feature maps (what the network
"sees" there: texture, shape, context) and multiscale grey-level filters, and an ExtraTrees
classifier maps them to the classes the expert painted. A new microscope that makes the FCN
call smooth glass clinopyroxene is corrected on a tile or two, and the correction applies to
every open task at once.

Classes the expert has not painted yet in the project stay with the FCN: where the FCN puts
probability on an untaught class, that share is kept, and the classifier splits the rest
among the taught classes.

    samples = sample_pixels(features, label, confidence, rng)     # per corrected image
    learner = FastLearnerSegmenter(base, PixelClassifier.fit(samples), version)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import ExtraTreesClassifier

from label_config.catalogue import IGNORE_INDEX
from ml_backend.pixel_features import grey_features
from ml_backend.segmenters.base import Segmenter


@dataclass(frozen=True)
class FastLearnerConfig:
    """Sampling and classifier settings (working defaults; see ``scraiber bench domain-shift``).

    Attributes:
        per_class: Pixels sampled per class from each corrected image.
        scales: Scales (px) of the grey-level mean and texture filters.
        n_estimators, max_depth, min_samples_leaf: The ExtraTrees classifier.
        n_jobs: Threads for fitting and prediction.
        seed: Seed of the pixel sample and the classifier.
    """

    per_class: int = 2000
    scales: tuple[float, ...] = (2.5, 6.0, 12.0)
    n_estimators: int = 48
    max_depth: int = 18
    min_samples_leaf: int = 2
    n_jobs: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.per_class, self.n_estimators, self.max_depth, self.min_samples_leaf, self.n_jobs) < 1:
            raise ValueError("per_class, n_estimators, max_depth, min_samples_leaf and n_jobs must be >= 1")


@dataclass(frozen=True)
class PixelSamples:
    """Training pixels: ``features`` (N, F) float32, ``labels`` (N,) uint8, ``weights`` (N,) float32."""

    features: np.ndarray
    labels: np.ndarray
    weights: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.labels)
        if self.features.ndim != 2 or len(self.features) != n or self.weights.shape != (n,):
            raise ValueError(
                f"pixel samples need features (N, F), labels (N,) and weights (N,); got "
                f"{self.features.shape}, {self.labels.shape}, {self.weights.shape}"
            )

    @classmethod
    def concat(cls, parts: list[PixelSamples]) -> PixelSamples:
        """All ``parts`` as one set.

        Raises:
            ValueError: for no parts, or parts with different feature counts.
        """
        if not parts:
            raise ValueError("no pixel samples to join")
        if len({p.features.shape[1] for p in parts}) > 1:
            raise ValueError("pixel samples with different feature counts cannot be joined")
        return cls(
            np.concatenate([p.features for p in parts]),
            np.concatenate([p.labels for p in parts]),
            np.concatenate([p.weights for p in parts]),
        )


def learner_features(image: np.ndarray, base: Segmenter, config: FastLearnerConfig) -> tuple[np.ndarray, np.ndarray]:
    """(base probabilities ``(C, H, W)``, features ``(F, H, W)``) of a raw image for the classifier.

    Features: grey-level filters, the base's probabilities and, for an FCN, its decoder's
    feature maps (``predict_with_features``).
    """
    if hasattr(base, "predict_with_features"):
        probs, deep = base.predict_with_features(image)
    else:
        probs, deep = base.predict_proba(image), np.zeros((0, *image.shape), np.float32)
    return probs, np.concatenate([grey_features(image, scales=config.scales), probs, deep]).astype(np.float32)


def sample_pixels(
    features: np.ndarray,
    label: np.ndarray,
    confidence: np.ndarray,
    rng: np.random.Generator,
    per_class: int,
) -> PixelSamples:
    """Up to ``per_class`` labelled pixels of each class, drawn at random, weighted to stand for all of them.

    Rare classes are drawn as fully as common ones (so a 1 % oxide is learnt), but each pixel's
    weight is its confidence times the number of labelled pixels of its class it stands for:
    the weighted sample keeps the image's class proportions, so a classifier fitted on it
    does not learn to over-predict rare classes.

    Args:
        features: (F, H, W) features of the image.
        label: (H, W) uint8 classes, ``IGNORE_INDEX`` = unlabelled.
        confidence: (H, W) per-pixel confidence in [0, 1]; pixels at 0 are never drawn.
        rng: Random generator of the draw.
        per_class: Pixels per class at most.

    Raises:
        ValueError: if the shapes do not match.
    """
    if label.shape != features.shape[1:] or confidence.shape != label.shape:
        raise ValueError(
            f"features {features.shape[1:]}, label {label.shape} and confidence {confidence.shape} differ in shape"
        )
    flat_label = label.ravel()
    usable = (flat_label != IGNORE_INDEX) & (confidence.ravel() > 0)
    chosen, stands_for = [], []
    for cls in np.unique(flat_label[usable]):
        where = np.flatnonzero(usable & (flat_label == cls))
        drawn = rng.choice(where, size=min(per_class, where.size), replace=False)
        chosen.append(drawn)
        stands_for.append(np.full(drawn.size, where.size / drawn.size, np.float32))
    index = np.concatenate(chosen) if chosen else np.zeros(0, np.int64)
    order = np.argsort(index)
    index = index[order]
    flat = features.reshape(features.shape[0], -1)
    weights = confidence.ravel()[index].astype(np.float32)
    if chosen:
        weights *= np.concatenate(stands_for)[order] / np.float32(per_class)
    return PixelSamples(np.ascontiguousarray(flat[:, index].T), flat_label[index].astype(np.uint8), weights)


class PixelClassifier:
    """An ExtraTrees classifier over pixel features, for the classes present in its training pixels.

    Use :meth:`fit`; the result is deterministic for the same samples and config, so any
    process can refit it from stored samples (no pickled model is ever stored or loaded).
    """

    def __init__(self, model: ExtraTreesClassifier, n_classes: int) -> None:
        self.model = model
        self.n_classes = n_classes
        self.taught = np.asarray(model.classes_, dtype=np.int64)

    @classmethod
    def fit(cls, samples: PixelSamples, n_classes: int, config: FastLearnerConfig | None = None) -> PixelClassifier:
        """Fit on ``samples`` (classes are catalogue indices below ``n_classes``).

        Raises:
            ValueError: with no samples, or a label outside ``[0, n_classes)``.
        """
        config = config or FastLearnerConfig()
        if not len(samples.labels):
            raise ValueError("the fast learner needs labelled pixels to learn from")
        if int(samples.labels.max()) >= n_classes:
            raise ValueError(f"pixel labels must lie in [0, {n_classes}), got {int(samples.labels.max())}")
        model = ExtraTreesClassifier(
            n_estimators=config.n_estimators, max_depth=config.max_depth, min_samples_leaf=config.min_samples_leaf,
            max_features="sqrt", n_jobs=config.n_jobs, random_state=config.seed,
        )  # fmt: skip
        model.fit(samples.features, samples.labels, sample_weight=samples.weights)
        return cls(model, n_classes)

    def predict_proba(self, features: np.ndarray, base: np.ndarray) -> np.ndarray:
        """(C, H, W) probabilities from (F, H, W) features, with the base model's ``(C, H, W)`` for untaught classes.

        The base keeps its probability of every class this classifier was not taught; the
        classifier shares the rest among the taught ones.
        """
        f, h, w = features.shape
        learnt = self.model.predict_proba(features.reshape(f, -1).T).T.reshape(len(self.taught), h, w)
        untaught = np.setdiff1d(np.arange(self.n_classes), self.taught)
        out = np.zeros((self.n_classes, h, w), np.float32)
        out[untaught] = base[untaught]
        kept = 1.0 - out.sum(axis=0) if len(untaught) else 1.0
        out[self.taught] = learnt * kept
        return out


class FastLearnerSegmenter(Segmenter):
    """A base segmenter (the served FCN) with a project's pixel classifier on top.

    Args:
        base: The served segmenter whose features the classifier reads.
        classifier: Fitted on this base's features.
        version: ``model_version`` of the pair (names the base and the learner's state).
        config: Feature settings the classifier was fitted with.
    """

    def __init__(
        self, base: Segmenter, classifier: PixelClassifier, version: str, config: FastLearnerConfig | None = None
    ) -> None:
        self.base = base
        self.catalogue = base.catalogue
        self.classifier = classifier
        self.version = version
        self.config = config or FastLearnerConfig()

    def predict_proba(self, image: np.ndarray, progress: bool = False) -> np.ndarray:
        """float32 (C, H, W) probabilities: the classifier's on the base's features."""
        self._validate_inputs(image)
        probs, features = learner_features(image, self.base, self.config)
        return self.classifier.predict_proba(features, probs)
