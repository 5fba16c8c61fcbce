"""Implicit-label quality against ground truth: accuracy, per-class IoU and calibration.

Compared on the pixels where both the implicit label and the truth have a class
(``label != 255`` and ``truth != 255``); how much of the truth got a label at all is
``coverage``. The confidence of each labelled pixel (:mod:`active_learning.corrections`)
is binned into ``bins`` equal-width bins on [0, 1] (1.0 falls into the last bin); per bin
the accuracy is the share of its pixels whose label is right, and the **expected
calibration error** is ``ECE = sum_b (n_b / N) * |accuracy_b - mean confidence_b|``.
A well calibrated confidence has accuracy close to confidence in every bin.

Counts are additive (:class:`QualityCounts` supports ``+``), so a project's figures pool
all its pixels instead of averaging per-task ratios. The prediction the expert started from
is scored on the same pixels as a baseline (``prediction_accuracy``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from active_learning.corrections import NOTHING
from ml_backend.metrics import iou_per_class


@dataclass(frozen=True)
class QualityCounts:
    """Additive pixel counts of implicit labels against truth.

    Attributes:
        confusion: (K, K) int64, truth rows -> implicit label columns, on compared pixels.
        bin_count: (B,) compared pixels per confidence bin.
        bin_correct: (B,) correct pixels per bin.
        bin_confidence: (B,) sum of the confidences per bin.
        truth_pixels: Pixels with a true class.
        prediction_correct: Compared pixels on which the starting prediction was right.
    """

    confusion: np.ndarray
    bin_count: np.ndarray
    bin_correct: np.ndarray
    bin_confidence: np.ndarray
    truth_pixels: int
    prediction_correct: int

    def __add__(self, other: QualityCounts) -> QualityCounts:
        if self.confusion.shape != other.confusion.shape or self.bin_count.shape != other.bin_count.shape:
            raise ValueError("cannot add quality counts of different classes or bins")
        return QualityCounts(
            self.confusion + other.confusion,
            self.bin_count + other.bin_count,
            self.bin_correct + other.bin_correct,
            self.bin_confidence + other.bin_confidence,
            self.truth_pixels + other.truth_pixels,
            self.prediction_correct + other.prediction_correct,
        )

    @property
    def compared(self) -> int:
        """Pixels with both an implicit label and a true class."""
        return int(self.confusion.sum())

    @property
    def pixel_accuracy(self) -> float:
        """Correct / compared pixels (NaN if none)."""
        return float(np.trace(self.confusion) / self.compared) if self.compared else float("nan")

    @property
    def coverage(self) -> float:
        """Compared / true pixels (NaN if no truth)."""
        return self.compared / self.truth_pixels if self.truth_pixels else float("nan")

    @property
    def prediction_accuracy(self) -> float:
        """Accuracy of the starting prediction on the compared pixels (NaN if none)."""
        return self.prediction_correct / self.compared if self.compared else float("nan")

    def class_iou(self) -> np.ndarray:
        """(K,) IoU per class on compared pixels; NaN for classes absent from both."""
        return iou_per_class(self.confusion)

    def reliability(self) -> list[dict]:
        """Per bin ``{"low", "high", "pixels", "confidence", "accuracy"}`` (mean confidence and
        accuracy are NaN for empty bins)."""
        edges = np.linspace(0.0, 1.0, len(self.bin_count) + 1)
        rows = []
        for b, n in enumerate(self.bin_count):
            rows.append(
                {
                    "low": float(edges[b]),
                    "high": float(edges[b + 1]),
                    "pixels": int(n),
                    "confidence": float(self.bin_confidence[b] / n) if n else float("nan"),
                    "accuracy": float(self.bin_correct[b] / n) if n else float("nan"),
                }
            )
        return rows

    @property
    def ece(self) -> float:
        """Expected calibration error (NaN if nothing compared)."""
        total = self.bin_count.sum()
        if not total:
            return float("nan")
        filled = self.bin_count > 0
        gaps = np.abs(self.bin_correct[filled] - self.bin_confidence[filled]) / total
        return float(gaps.sum())


def empty_counts(n_classes: int, bins: int = 10) -> QualityCounts:
    """Zero counts (the neutral element of ``+``)."""
    return QualityCounts(
        np.zeros((n_classes, n_classes), np.int64), np.zeros(bins, np.int64), np.zeros(bins, np.int64),
        np.zeros(bins, np.float64), 0, 0,
    )  # fmt: skip


def quality_counts(
    label: np.ndarray,
    confidence: np.ndarray,
    truth: np.ndarray,
    n_classes: int,
    bins: int = 10,
    predicted: np.ndarray | None = None,
) -> QualityCounts:
    """Counts of one implicit label against its truth (see the module docstring).

    Args:
        label: uint8 implicit label (255 = unlabelled).
        confidence: Its per-pixel confidence in [0, 1].
        truth: uint8 true classes (255 = unknown).
        n_classes: K.
        bins: Number of confidence bins.
        predicted: The starting prediction's class map (None: counted as never right).

    Raises:
        ValueError: for arrays of different shapes or classes outside 0..K-1 / 255.
    """
    shapes = {label.shape, confidence.shape, truth.shape} | ({predicted.shape} if predicted is not None else set())
    if len(shapes) != 1:
        raise ValueError(f"label, confidence, truth and prediction differ in shape: {sorted(shapes)}")
    for name, array in (("label", label), ("truth", truth)):
        bad = (array >= n_classes) & (array != NOTHING)
        if bad.any():
            raise ValueError(f"{name} holds class {int(array[bad][0])}, outside 0..{n_classes - 1} and not 255")
    compared = (label != NOTHING) & (truth != NOTHING)
    t, labelled, c = (
        truth[compared].astype(np.int64),
        label[compared].astype(np.int64),
        confidence[compared].astype(np.float64),
    )
    matrix = np.bincount(t * n_classes + labelled, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    which = np.minimum((np.clip(c, 0.0, 1.0) * bins).astype(np.int64), bins - 1)
    correct = t == labelled
    return QualityCounts(
        confusion=matrix,
        bin_count=np.bincount(which, minlength=bins),
        bin_correct=np.bincount(which, weights=correct, minlength=bins).astype(np.int64),
        bin_confidence=np.bincount(which, weights=c, minlength=bins),
        truth_pixels=int((truth != NOTHING).sum()),
        prediction_correct=int((predicted[compared] == truth[compared]).sum()) if predicted is not None else 0,
    )


def quality_summary(counts: QualityCounts, names: list[str]) -> dict:
    """JSON-ready figures: compared pixels, accuracy, coverage, baseline, per-class IoU, reliability, ECE."""
    ious = counts.class_iou()
    valid = ious[~np.isnan(ious)]
    return {
        "compared_pixels": counts.compared,
        "pixel_accuracy": counts.pixel_accuracy,
        "prediction_accuracy": counts.prediction_accuracy,
        "coverage": counts.coverage,
        "class_iou": {name: float(v) for name, v in zip(names, ious)},
        "mean_iou": float(valid.mean()) if len(valid) else float("nan"),
        "reliability": counts.reliability(),
        "ece": counts.ece,
    }
