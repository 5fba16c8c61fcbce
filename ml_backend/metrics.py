"""Segmentation metrics, one home: confusion matrix, per-class IoU, mIoU, and mIoU after optimal matching.

Every figure scrAiber reports about masks is computed here, so README tables from different
benchmarks use one formula. Pixels labelled ``IGNORE_INDEX`` (255) in the truth are skipped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
from scipy.optimize import linear_sum_assignment

from label_config.catalogue import IGNORE_INDEX


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """(C, C) int64 counts, rows = truth, columns = prediction; ``IGNORE_INDEX`` pixels skipped.

    Raises:
        ValueError: if the shapes differ or a predicted label is outside ``[0, n_classes)``.
    """
    if truth.shape != predicted.shape:
        raise ValueError(f"truth {truth.shape} and prediction {predicted.shape} differ in shape")
    keep = truth != IGNORE_INDEX
    t, p = truth[keep].astype(np.int64), predicted[keep].astype(np.int64)
    if t.size and (max(t.max(), p.max()) >= n_classes or min(t.min(), p.min()) < 0):
        raise ValueError(f"labels must lie in [0, {n_classes}) (or be {IGNORE_INDEX} in the truth)")
    return np.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def iou_per_class(confusion: np.ndarray) -> np.ndarray:
    """IoU of each class from a square confusion matrix; NaN for a class absent from truth and prediction."""
    tp = np.diag(confusion).astype(np.float64)
    union = confusion.sum(axis=0) + confusion.sum(axis=1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / np.maximum(union, 1), np.nan)


def class_iou(confusion: np.ndarray, names: Iterable[str]) -> dict[str, float]:
    """IoU per class name; NaN for a class absent from both truth and prediction."""
    return {name: float(v) for name, v in zip(names, iou_per_class(confusion))}


def mean_iou(iou: Mapping[str, float]) -> float:
    """Mean over the classes with a finite IoU."""
    finite = [value for value in iou.values() if not math.isnan(value)]
    return float(np.mean(finite)) if finite else math.nan


def matched_confusion(confusion: np.ndarray) -> np.ndarray:
    """The confusion matrix after renaming predicted labels by the one-to-one matching that maximises IoU.

    For unsupervised methods whose label *names* may be wrong while the partition is right
    ("Hungarian mIoU"): predicted class ``j`` is renamed to the true class it is matched
    with (Hungarian algorithm on the IoU matrix); the matrix is square, so every label is matched.
    """
    tp = confusion.astype(np.float64)
    union = confusion.sum(axis=1, keepdims=True) + confusion.sum(axis=0, keepdims=True) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        pair_iou = np.where(union > 0, tp / np.maximum(union, 1), 0.0)
    rows, cols = linear_sum_assignment(-pair_iou)
    matched = np.zeros_like(confusion)
    for true_class, predicted in zip(rows, cols):
        matched[:, true_class] += confusion[:, predicted]
    return matched

