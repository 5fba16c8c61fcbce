"""Instance-matching quality against ground truth (synthetic sections, hand-labelled fields)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class InstanceMatch:
    """Matched-instance counts and scores at one IoU threshold.

    Attributes:
        pairs: (k, 2) matched (predicted id, true id).
        iou: (k,) IoU of each matched pair.
        true_positives, false_positives, false_negatives: Instance counts.
    """

    pairs: np.ndarray
    iou: np.ndarray
    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        """Matched share of the predicted instances."""
        return self.true_positives / max(self.true_positives + self.false_positives, 1)

    @property
    def recall(self) -> float:
        """Matched share of the true instances."""
        return self.true_positives / max(self.true_positives + self.false_negatives, 1)

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        return 2 * self.true_positives / max(2 * self.true_positives + self.false_positives + self.false_negatives, 1)


def match_instances(
    predicted: np.ndarray, truth: np.ndarray, iou_threshold: float = 0.5, min_area: int = 1
) -> InstanceMatch:
    """Match predicted to true instances one-to-one at IoU >= ``iou_threshold`` (>= 0.5 makes matches unique).

    Args:
        predicted, truth: (H, W) integer instance maps, 0 = background.
        iou_threshold: Smallest IoU of a match; at least 0.5.
        min_area: Instances (of either map) smaller than this are ignored, as if unlabelled.

    Raises:
        ValueError: for maps of different shapes or a threshold below 0.5.
    """
    if predicted.shape != truth.shape:
        raise ValueError(f"instance maps differ in shape: {predicted.shape} vs {truth.shape}")
    if not 0.5 <= iou_threshold <= 1:
        raise ValueError(f"IoU threshold must lie in [0.5, 1] for one-to-one matches, got {iou_threshold}")
    p = predicted.ravel().astype(np.int64)
    t = truth.ravel().astype(np.int64)
    area_p = np.bincount(p)
    area_t = np.bincount(t)
    both = (p > 0) & (t > 0)
    key = p[both] * len(area_t) + t[both]
    keys, inter = np.unique(key, return_counts=True)
    pid, tid = keys // len(area_t), keys % len(area_t)
    iou = inter / (area_p[pid] + area_t[tid] - inter)
    ok = (iou >= iou_threshold) & (area_p[pid] >= min_area) & (area_t[tid] >= min_area)
    n_pred = int(np.count_nonzero(area_p[1:] >= min_area))
    n_true = int(np.count_nonzero(area_t[1:] >= min_area))
    tp = int(ok.sum())
    return InstanceMatch(np.column_stack((pid[ok], tid[ok])), iou[ok], tp, n_pred - tp, n_true - tp)
