"""Per-pixel uncertainty of class probabilities, and the task score derived from it."""

from __future__ import annotations

import numpy as np


def entropy_map(probs: np.ndarray) -> np.ndarray:
    """Normalised Shannon entropy per pixel, in [0, 1] (1 = all classes equally likely).

    Args:
        probs: (C, H, W) class probabilities summing to 1 over C.
    """
    if probs.ndim != 3 or probs.shape[0] < 2:
        raise ValueError(f"expected (C, H, W) probabilities with C >= 2, got shape {probs.shape}")
    p = np.clip(probs, 1e-12, 1.0)
    return (-(p * np.log(p)).sum(axis=0) / np.log(probs.shape[0])).astype(np.float32)


def margin_map(probs: np.ndarray) -> np.ndarray:
    """One minus the margin between the two most likely classes, per pixel, in [0, 1]."""
    if probs.ndim != 3 or probs.shape[0] < 2:
        raise ValueError(f"expected (C, H, W) probabilities with C >= 2, got shape {probs.shape}")
    top2 = np.partition(probs, -2, axis=0)[-2:]
    return (1.0 - (top2[1] - top2[0])).astype(np.float32)


def task_score(probs: np.ndarray) -> float:
    """The prediction score Label Studio shows: mean normalised entropy of the image.

    0 means the model is certain everywhere, 1 that it cannot tell the minerals apart.
    Higher scores are more informative to correct: sort the Data Manager by
    "Prediction score", descending.
    """
    return float(entropy_map(probs).mean())
