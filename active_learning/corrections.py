"""What an expert changed in a pre-annotation, and how much the result can be trusted.

Pure arithmetic on two class maps of the same field (uint8 catalogue indices,
``NOTHING = 255`` where no mineral is drawn):

* ``predicted``: the prediction the expert started from (255 = nothing predicted);
* ``final``: the submitted annotation (255 = nothing painted).

**Implicit label.** The implicit label is ``final`` itself. An unpainted pixel stays
unlabelled (255), never "background": a pixel the prediction painted and the expert
erased without repainting counts as *removed* and carries no label, because erasing
says "not this mineral", not which mineral it is. Epoxy (resin) is a mineral class of its
own and must be painted to be a label.

**Counts.** ``confusion[i, j]`` counts pixels predicted ``i`` and finally ``j``, with
the last row/column standing for "nothing" (255). Per class ``c``: *kept* is the
diagonal, *added* is nothing -> c, *removed* is c -> nothing, *relabelled_out* is
c -> another class and *relabelled_in* another class -> c. *Edited* pixels are all
pixels whose value changed (added, removed or relabelled).

**Confidence model** (per pixel, in [0, 1], see :class:`ConfidenceModel`)::

    proximity(x)  = exp(-d(x) / L)          d = distance in px to the nearest edited pixel
    confidence(x) = proximity + (1 - proximity) * untouched * attention
    confidence(x) = 0 where final(x) is 255 (nothing shown, nothing labelled)

An edited pixel gets 1: the expert drew it on purpose. Around an edit the expert
looked closely (zoomed in, brushed along boundaries), so confidence decays with the
distance over the length scale ``L`` (default 20 px, about the reach of a brush stroke
and of the neighbourhood inspected around it at the zoom used for brushing). Far from any
edit, a pixel left as predicted was at best glanced at: confirmation by omission is
weaker evidence than a correction, so it gets ``untouched`` (default 0.6) times an
``attention`` factor from the expert's behaviour on the whole submission:

* any edit shows the expert engaged with the image: attention 1;
* no edit at all: attention grows with the time spent, from ``hasty_floor`` (0.3) for an
  instant submission linearly to 1 at ``review_seconds`` (10 s) or longer. Accepting a
  prediction unchanged after 1 s is more likely a click-through than a review, and the
  model must not learn its own mistakes back from it;
* no ``lead_time`` recorded (imported annotations): halfway, neither hasty nor careful.

The parameters are judgement, not measurement; the tracking analysis should calibrate
them against expert re-labelling of a sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from label_config.catalogue import IGNORE_INDEX

NOTHING = IGNORE_INDEX
"""Class-map value of a pixel without a mineral (nothing predicted / nothing painted)."""


@dataclass(frozen=True)
class ConfidenceModel:
    """Parameters of the per-pixel confidence (see the module docstring for the model).

    Attributes:
        length_scale_px: Distance (px) over which confidence decays away from an edit.
        untouched: Confidence of a pixel left as predicted far from any edit, after careful review.
        review_seconds: Time after which an unedited acceptance counts as a full review.
        hasty_floor: Attention of an unedited acceptance submitted instantly.
    """

    length_scale_px: float = 20.0
    untouched: float = 0.6
    review_seconds: float = 10.0
    hasty_floor: float = 0.3

    def __post_init__(self) -> None:
        if self.length_scale_px <= 0 or self.review_seconds <= 0:
            raise ValueError("length_scale_px and review_seconds must be positive")
        if not (0 <= self.untouched <= 1 and 0 <= self.hasty_floor <= 1):
            raise ValueError("untouched and hasty_floor must lie in [0, 1]")

    def attention(self, edited_pixels: int, lead_time: float | None) -> float:
        """Global trust in the untouched part of a submission, from the expert's behaviour."""
        if edited_pixels > 0:
            return 1.0
        review = 0.5 if lead_time is None else min(1.0, max(0.0, float(lead_time)) / self.review_seconds)
        return self.hasty_floor + (1.0 - self.hasty_floor) * review

    def confidence(self, edited: np.ndarray, final: np.ndarray, attention: float) -> np.ndarray:
        """Per-pixel confidence (float32) of ``final`` given the ``edited`` mask."""
        if edited.any():
            distance = ndimage.distance_transform_edt(~edited)
            proximity = np.exp(-distance / self.length_scale_px)
        else:
            proximity = np.zeros(final.shape)
        confidence = proximity + (1.0 - proximity) * (self.untouched * attention)
        confidence[final == NOTHING] = 0.0
        return confidence.astype(np.float32)


@dataclass(frozen=True)
class Correction:
    """The result of comparing a prediction with the expert's final annotation.

    Attributes:
        label: The implicit label (= ``final``), uint8, 255 where unlabelled.
        confidence: Per-pixel confidence in [0, 1], float32, 0 where unlabelled.
        confusion: (K+1, K+1) int64 pixel counts, predicted (rows) -> final (columns),
            index K = nothing.
        attention: The behaviour factor used (see :meth:`ConfidenceModel.attention`).
        lead_time: Seconds the expert spent (None if unknown).
    """

    label: np.ndarray
    confidence: np.ndarray
    confusion: np.ndarray
    attention: float
    lead_time: float | None

    @property
    def n_classes(self) -> int:
        """Number of catalogue classes K."""
        return self.confusion.shape[0] - 1

    @property
    def edited_pixels(self) -> int:
        """Pixels whose value the expert changed."""
        return int(self.confusion.sum() - np.trace(self.confusion))

    @property
    def touched_pixels(self) -> int:
        """Pixels predicted or painted (either map not 255)."""
        return int(self.confusion.sum() - self.confusion[-1, -1])

    def class_counts(self, index: int) -> dict[str, int]:
        """Kept, added, removed, relabelled_out/_in, predicted and final pixels of one class."""
        c, k = self.confusion, self.n_classes
        kept = int(c[index, index])
        return {
            "kept": kept,
            "added": int(c[k, index]),
            "removed": int(c[index, k]),
            "relabelled_out": int(c[index, :k].sum()) - kept,
            "relabelled_in": int(c[:k, index].sum()) - kept,
            "predicted": int(c[index].sum()),
            "final": int(c[:, index].sum()),
        }

    def stats(self, names: Sequence[str]) -> dict[str, Any]:
        """JSON-ready summary: per-class counts, confusion matrix, edit and confidence figures.

        Args:
            names: Class names in catalogue index order (length K).
        """
        if len(names) != self.n_classes:
            raise ValueError(f"{len(names)} class names for {self.n_classes} classes")
        touched = self.touched_pixels
        labelled = self.label != NOTHING
        return {
            "classes": list(names),
            "confusion_axes": "rows: predicted, columns: final; last = nothing (255)",
            "confusion": self.confusion.tolist(),
            "per_class": {name: self.class_counts(i) for i, name in enumerate(names)},
            "pixels": int(self.label.size),
            "predicted_pixels": int(self.confusion[: self.n_classes].sum()),
            "labelled_pixels": int(labelled.sum()),
            "edited_pixels": self.edited_pixels,
            "edit_fraction": self.edited_pixels / touched if touched else 0.0,
            "accepted_unchanged": self.edited_pixels == 0,
            "attention": self.attention,
            "lead_time": self.lead_time,
            "mean_confidence": float(self.confidence[labelled].mean()) if labelled.any() else 0.0,
        }


def _validate_inputs(predicted: np.ndarray, final: np.ndarray, n_classes: int) -> None:
    for name, array in (("predicted", predicted), ("final", final)):
        if not isinstance(array, np.ndarray) or array.ndim != 2 or array.dtype != np.uint8:
            raise ValueError(
                f"{name} must be a 2-D uint8 class map, got {getattr(array, 'dtype', type(array).__name__)} "
                f"with shape {getattr(array, 'shape', None)}"
            )
        bad = (array >= n_classes) & (array != NOTHING)
        if bad.any():
            raise ValueError(f"{name} holds class {int(array[bad][0])}, outside 0..{n_classes - 1} and not 255")
    if predicted.shape != final.shape:
        raise ValueError(f"predicted {predicted.shape} and final {final.shape} class maps differ in shape")


def compare(
    predicted: np.ndarray,
    final: np.ndarray,
    n_classes: int,
    lead_time: float | None = None,
    model: ConfidenceModel = ConfidenceModel(),
) -> Correction:
    """Compare the prediction the expert started from with the final annotation.

    Args:
        predicted: uint8 class map of the prediction (255 = nothing predicted).
        final: uint8 class map of the submitted annotation (255 = nothing painted).
        n_classes: Number of catalogue classes K (valid values 0..K-1 and 255).
        lead_time: Seconds the expert spent on the task, if known.
        model: Confidence model parameters.

    Raises:
        ValueError: naming the map with a bad shape, dtype or value.
    """
    _validate_inputs(predicted, final, n_classes)
    rows = np.where(predicted == NOTHING, n_classes, predicted).astype(np.int64)
    columns = np.where(final == NOTHING, n_classes, final).astype(np.int64)
    size = n_classes + 1
    confusion = np.bincount((rows * size + columns).ravel(), minlength=size * size).reshape(size, size)
    edited = predicted != final
    attention = model.attention(int(edited.sum()), lead_time)
    return Correction(
        label=final.copy(),
        confidence=model.confidence(edited, final, attention),
        confusion=confusion,
        attention=attention,
        lead_time=None if lead_time is None else float(lead_time),
    )


def model_parameters(model: ConfidenceModel) -> dict[str, float]:
    """The model's parameters as a dict (for provenance records)."""
    return {key: float(value) for key, value in asdict(model).items()}
