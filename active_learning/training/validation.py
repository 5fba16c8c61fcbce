"""The fixed validation set and per-class IoU.

The set is synthetic sections drawn from fixed seeds with the realistic (default)
synthetic config, plus optional held-out expert labels. Its fingerprint (SHA-256 over
sample ids and content hashes) goes to MLflow and into the model's config, so mIoUs are
compared only on the same set.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from active_learning.fingerprints import fingerprint
from label_config.catalogue import IGNORE_INDEX, Catalogue
from ml_backend.synthetic import generate_section


@dataclass(frozen=True)
class ValidationSample:
    """A raw image and its uint8 class labels (255 = no label), with a stable id."""

    id: str
    image: np.ndarray
    label: np.ndarray

    def content_hash(self) -> str:
        """SHA-256 of shape, image bytes and label bytes."""
        digest = hashlib.sha256(repr((self.image.shape, str(self.image.dtype))).encode())
        digest.update(np.ascontiguousarray(self.image).tobytes())
        digest.update(np.ascontiguousarray(self.label).tobytes())
        return digest.hexdigest()


def synthetic_validation_set(catalogue: Catalogue, seed: int, n: int, size: int) -> list[ValidationSample]:
    """Sections ``seed .. seed + n - 1`` of side ``size`` from the default synthetic config."""
    samples = []
    for k in range(n):
        section = generate_section(size, seed + k, catalogue=catalogue)
        samples.append(ValidationSample(f"synth-{seed + k}-{size}", section.image, section.classes))
    return samples


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    """(C, C) int64 counts, rows = truth, columns = prediction; ``IGNORE_INDEX`` pixels skipped."""
    keep = truth != IGNORE_INDEX
    index = truth[keep].astype(np.int64) * n_classes + predicted[keep].astype(np.int64)
    return np.bincount(index, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def class_iou(confusion: np.ndarray, names: Iterable[str]) -> dict[str, float]:
    """IoU per class name; NaN for a class absent from both truth and prediction."""
    tp = np.diag(confusion).astype(np.float64)
    union = confusion.sum(axis=0) + confusion.sum(axis=1) - tp
    return {name: (float(tp[i] / union[i]) if union[i] else math.nan) for i, name in enumerate(names)}


def mean_iou(iou: Mapping[str, float]) -> float:
    """Mean over the classes with a finite IoU."""
    finite = [value for value in iou.values() if not math.isnan(value)]
    return float(np.mean(finite)) if finite else math.nan


def class_frequencies(samples: Iterable[ValidationSample], n_classes: int) -> np.ndarray:
    """Fraction of labelled pixels of each class."""
    counts = np.zeros(n_classes, np.float64)
    for sample in samples:
        labels = sample.label[sample.label != IGNORE_INDEX]
        counts += np.bincount(labels.ravel(), minlength=n_classes)[:n_classes]
    return counts / max(counts.sum(), 1.0)


def validation_set(
    catalogue: Catalogue, seed: int, n: int, size: int, extra: Iterable[ValidationSample] = ()
) -> tuple[list[ValidationSample], dict[str, str], str]:
    """The fixed synthetic sections plus ``extra`` (held-out expert labels): samples, id -> hash, fingerprint.

    Two evaluations are comparable (for the champion rule) only on the same fingerprint.
    """
    samples = synthetic_validation_set(catalogue, seed, n, size) + list(extra)
    hashes = {sample.id: sample.content_hash() for sample in samples}
    return samples, hashes, fingerprint(hashes)
