"""The fixed validation set and per-class IoU.

The set is synthetic sections drawn from fixed seeds with the realistic (default)
synthetic config, plus optional held-out expert labels. Its fingerprint (SHA-256 over
sample ids and content hashes) goes to MLflow and into the model's config, so mIoUs are
compared only on the same set.

**The score** that picks the best checkpoint and that the champion rule compares is the
mIoU on the held-out expert labels when the set holds any (the user's own sample decides),
else the synthetic sections' mIoU. The synthetic sections then only guard against
forgetting (:data:`active_learning.registry.FORGETTING_TOLERANCE`). Why: adapting to a
new sample costs some synthetic mIoU (up to 0.08 on the benchmark's one synthetic section),
and pooled pixels let eight 512 px synthetic sections outweigh a few 256 px held-out tiles
about 8:1. In three early runs of the former FCN-retraining benchmark (seed 0) that judged on
pooled pixels or on the mean of both domains' mIoU, 26 of 36 correction-trained candidates
were refused, 23 of them better than the served model on the new sample's test tiles.

**Champion tiles.** Expert samples marked ``champion_only`` never choose a checkpoint (choosing
the best checkpoint on the tiles that then judge it biases the winner upward): they only give
per-tile mIoUs (:attr:`Evaluation.per_tile`) for the champion test
(:mod:`active_learning.champion`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from active_learning.fingerprints import fingerprint
from label_config.catalogue import IGNORE_INDEX, Catalogue
from ml_backend.metrics import class_iou, mean_iou
from ml_backend.synthetic.families import generate_field

SCORE_RULE = "expert mIoU, synthetic mIoU as a guard"


@dataclass(frozen=True)
class ValidationSample:
    """A raw image and its uint8 class labels (255 = no label), with a stable id.

    ``synthetic`` marks generated sections; every other sample is a held-out expert label.
    ``champion_only`` expert samples are kept out of the score and only judge champions.
    """

    id: str
    image: np.ndarray
    label: np.ndarray
    synthetic: bool = False
    champion_only: bool = False

    def content_hash(self) -> str:
        """SHA-256 of shape, image bytes and label bytes."""
        digest = hashlib.sha256(repr((self.image.shape, str(self.image.dtype))).encode())
        digest.update(np.ascontiguousarray(self.image).tobytes())
        digest.update(np.ascontiguousarray(self.label).tobytes())
        return digest.hexdigest()


def synthetic_validation_set(
    catalogue: Catalogue, seed: int, n: int, size: int, families: Iterable[str] = ("porphyritic",)
) -> list[ValidationSample]:
    """Fields ``seed .. seed + n - 1`` of side ``size`` of each family, with each family's realistic defaults."""
    samples = []
    for family in families:
        for k in range(n):
            section = generate_field(family, size, seed + k, catalogue)
            name = "synth" if family == "porphyritic" else family  # porphyritic ids predate the families
            samples.append(
                ValidationSample(f"{name}-{seed + k}-{size}", section.image, section.classes, synthetic=True)
            )
    return samples


@dataclass(frozen=True)
class Evaluation:
    """A model on a validation set: per-class IoU over all samples, and the mIoU of each domain.

    Attributes:
        iou: Per-class IoU, all pixels pooled (for the per-class curves).
        synthetic_miou: mIoU on the synthetic sections (NaN without any).
        expert_miou: mIoU on the held-out expert labels (None without any).
        per_tile: mIoU of each ``champion_only`` sample, by id (the champion test pairs them).
    """

    iou: dict[str, float]
    synthetic_miou: float
    expert_miou: float | None = None
    per_tile: dict[str, float] = field(default_factory=dict)

    @property
    def score(self) -> float:
        """What checkpoints and champions are compared on: expert mIoU if any, else synthetic mIoU."""
        if self.expert_miou is None or math.isnan(self.expert_miou):
            return self.synthetic_miou
        return self.expert_miou


def evaluation(
    confusions: Mapping[bool, np.ndarray], names: Iterable[str], per_tile: Mapping[str, float] | None = None
) -> Evaluation:
    """An :class:`Evaluation` from confusion matrices keyed by ``synthetic`` (a missing key: no such samples)."""
    names = list(names)
    empty = np.zeros((len(names), len(names)), np.int64)
    synthetic, expert = confusions.get(True, empty), confusions.get(False)
    pooled = synthetic if expert is None else synthetic + expert
    expert_miou = None if expert is None else mean_iou(class_iou(expert, names))
    return Evaluation(
        class_iou(pooled, names), mean_iou(class_iou(synthetic, names)), expert_miou, dict(per_tile or {})
    )


def class_frequencies(samples: Iterable[ValidationSample], n_classes: int) -> np.ndarray:
    """Fraction of labelled pixels of each class."""
    counts = np.zeros(n_classes, np.float64)
    for sample in samples:
        labels = sample.label[sample.label != IGNORE_INDEX]
        counts += np.bincount(labels.ravel(), minlength=n_classes)[:n_classes]
    return counts / max(counts.sum(), 1.0)


def validation_set(
    catalogue: Catalogue,
    seed: int,
    n: int,
    size: int,
    extra: Iterable[ValidationSample] = (),
    families: Iterable[str] = ("porphyritic",),
) -> tuple[list[ValidationSample], dict[str, str], str]:
    """The fixed synthetic fields (``n`` per family) plus ``extra`` (held-out expert labels): samples, id -> hash, fingerprint.

    Two evaluations are comparable (for the champion rule) only on the same fingerprint; a
    set with expert labels also fingerprints its score rule (scores of older rules differ).
    """
    samples = synthetic_validation_set(catalogue, seed, n, size, families) + list(extra)
    hashes = {sample.id: sample.content_hash() for sample in samples}
    rule = {"score": SCORE_RULE} if any(not sample.synthetic for sample in samples) else {}
    return samples, hashes, fingerprint(hashes | rule)
