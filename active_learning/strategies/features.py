"""Per-task embeddings for diversity-aware selection, computed in the scoring pass and stored.

The vector is cheap and model-aware: the class proportions of the prediction (what the
model thinks is in the image), a coarse histogram of the normalised grey levels (what the
image holds, whatever the model thinks) and the mean normalised entropy.
"""

from __future__ import annotations

import numpy as np

from ml_backend.normalise import percentile_range
from ml_backend.uncertainty import entropy_map

GREY_BINS = 8


def feature_names(class_names: tuple[str, ...] | list[str]) -> list[str]:
    """Names of the entries of :func:`task_features`, in order."""
    return [f"fraction:{name}" for name in class_names] + [f"grey:{i}" for i in range(GREY_BINS)] + ["entropy"]


def task_features(image: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """float32 vector: C class fractions of the argmax, ``GREY_BINS`` grey-level fractions, mean entropy.

    Args:
        image: Raw 2-D grey image.
        probs: Its (C, H, W) class probabilities.

    Raises:
        ValueError: if the shapes do not fit.
    """
    if probs.ndim != 3 or probs.shape[1:] != image.shape:
        raise ValueError(f"probabilities of shape {probs.shape} do not fit an image of shape {image.shape}")
    n_classes = probs.shape[0]
    fractions = np.bincount(np.argmax(probs, axis=0).ravel(), minlength=n_classes) / image.size
    grey = percentile_range(image).apply(image)
    histogram = np.histogram(grey, bins=GREY_BINS, range=(0.0, 1.0))[0] / image.size
    return np.concatenate([fractions, histogram, [entropy_map(probs).mean()]]).astype(np.float32)
