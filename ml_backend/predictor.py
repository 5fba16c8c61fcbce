"""Pre-annotations for Label Studio tasks: plain Python, no web framework.

The label-studio-ml adapter (``ml_backend.adapter``) only translates HTTP shapes into a
call of :meth:`Predictor.predict`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from label_config import Catalogue
from ml_backend.bse_io import BSEImage, BSEReadError
from ml_backend.crystal_results import crystal_results, crystal_target
from ml_backend.image_source import ImageSource, ImageSourceError
from ml_backend.label_map import ControlTarget, LabelConfigError, control_target
from ml_backend.ladder import check_ladder
from ml_backend.memory_budget import BudgetBusyError, ImageTooLargeError
from ml_backend.regions import class_map_to_regions
from ml_backend.segmenters.base import Segmenter
from ml_backend.uncertainty import task_score

log = logging.getLogger(__name__)

#: Everything that makes one task fail without failing the others.
TASK_ERRORS = (ImageSourceError, BSEReadError, LabelConfigError, ImageTooLargeError, BudgetBusyError)


class TaskScorer(Protocol):
    """How informative a task is (``active_learning.strategies`` scorers implement this)."""

    def score(self, image: np.ndarray, segmenter: Segmenter, probs: np.ndarray | None = None) -> float:
        """Score of one task from its raw image, the segmenter and the probabilities it gave."""


class EntropyScore:
    """The default score: mean normalised entropy of the probabilities (:func:`~ml_backend.uncertainty.task_score`)."""

    def score(self, image: np.ndarray, segmenter: Segmenter, probs: np.ndarray | None = None) -> float:
        """Mean normalised entropy of ``probs`` (computed if not given)."""
        return task_score(probs if probs is not None else segmenter.predict_proba(image))


@dataclass
class Predictor:
    """Turns tasks into BrushLabels predictions with the current segmenter.

    Attributes:
        catalogue: The mineral catalogue the segmenter predicts.
        segmenter: Returns the segmenter to use now (it may change when a new model is promoted).
        images: Where task images are fetched from.
        scorer: Each prediction's ``score`` (default: mean normalised entropy).
        for_project: Given the served segmenter and a project id, the segmenter for that
            project (e.g. with the project's fast learner on top); None: the served one everywhere.
    """

    catalogue: Catalogue
    segmenter: Callable[[], Segmenter]
    images: ImageSource
    scorer: TaskScorer = field(default_factory=EntropyScore)
    for_project: Callable[[Segmenter, int], Segmenter] | None = None

    def current(self, project: int | None = None) -> Segmenter:
        """The segmenter that predicts for ``project`` now."""
        segmenter = self.segmenter()
        if project is not None and self.for_project is not None:
            return self.for_project(segmenter, project)
        return segmenter

    def model_version(self, project: int | None = None) -> str:
        """Version of the segmenter in use for ``project``; Label Studio re-asks when it changes."""
        return self.current(project).version

    def check_config(self, label_config: str) -> None:
        """Raise :class:`LabelConfigError` unless this config can receive predictions (brushes or crystals)."""
        self._renderer(label_config)

    def predict(
        self, tasks: list[dict[str, Any]], label_config: str, project: int | None = None
    ) -> list[dict[str, Any]]:
        """One prediction per task, in order; a task that fails gets ``{"error": ...}`` instead.

        Label Studio stores each dict that has a ``result`` and skips (and logs) the others.
        """
        segmenter = self.current(project)
        try:
            render, value_key = self._renderer(label_config)
        except LabelConfigError as exc:
            return [self._error(task, exc, segmenter.version) for task in tasks]
        predictions = []
        for task in tasks:
            try:
                predictions.append(self._predict_task(task, value_key, render, segmenter))
            except TASK_ERRORS as exc:
                predictions.append(self._error(task, exc, segmenter.version))
            except MemoryError:  # the budget's estimate was short: this task fails, the request does not
                predictions.append(self._error(task, MemoryError("ran out of memory predicting it"), segmenter.version))
        return predictions

    def _renderer(self, label_config: str) -> tuple[Callable[[BSEImage, np.ndarray], list[dict[str, Any]]], str]:
        """How results are drawn for this config: mineral brushes, or crystal polygons for review."""
        try:
            target = control_target(label_config, self.catalogue)
            return (lambda image, probs: brush_results(probs, target)), target.value_key
        except LabelConfigError as brush_error:
            try:
                crystals = crystal_target(label_config, self.catalogue)
            except LabelConfigError:
                raise brush_error from None

        def render(image: BSEImage, probs: np.ndarray) -> list[dict[str, Any]]:
            labels = np.argmax(probs, axis=0).astype(np.uint8)
            return crystal_results(image.pixels, labels, crystals, image.pixel_size_um, self.catalogue)

        return render, crystals.polygons.value_key

    def _predict_task(self, task: dict[str, Any], value_key: str, render, segmenter: Segmenter) -> dict[str, Any]:
        data = task.get("data") if isinstance(task, dict) else None
        if not isinstance(data, dict) or value_key not in data:
            raise ImageSourceError(f"task has no data.{value_key} holding the image URL")
        with self.images.open(data[value_key], pixel_size_um=_pixel_size(data)) as image:
            probs = segmenter.predict_proba(image.pixels)
            score = self.scorer.score(image.pixels, segmenter, probs)
            results = render(image, probs)
            ladder = check_ladder(image.pixels, np.argmax(probs, axis=0), self.catalogue)
            del probs
        if not ladder.consistent:
            log.info("task %s: %s", task.get("id"), ladder.message())
            doubtful = {self.catalogue.index_of(name) for pair in ladder.violations for name in pair}
            for region in results:  # shown with the region in the editor (labels may be synonyms)
                labels = region.get("value", {}).get("brushlabels", ())
                if {self.catalogue.index_of(label) for label in labels} & doubtful:
                    region["meta"] = {"text": [ladder.message()]}
        return {"result": results, "score": score, "model_version": segmenter.version}

    @staticmethod
    def _error(task: Any, exc: Exception, version: str) -> dict[str, Any]:
        task_id = task.get("id") if isinstance(task, dict) else None
        task_id = task_id if isinstance(task_id, int) else repr(task_id)[:40]  # never echo a huge value
        log.warning("task %s: no prediction: %s", task_id, exc)
        return {"error": f"task {task_id}: {exc}", "model_version": version}


def brush_results(probs: np.ndarray, target: ControlTarget) -> list[dict[str, Any]]:
    """One brushlabels region per class present, restricted to the classes the config has.

    Each region's ``score`` is the mean probability of its class over its pixels.
    """
    allowed = np.array(sorted(target.labels))
    classes = allowed[np.argmax(probs[allowed], axis=0)].astype(np.uint8)
    return class_map_to_regions(
        classes, target.labels, target.from_name, target.to_name, origin="prediction", probs=probs
    )


def _pixel_size(data: dict[str, Any]) -> float | None:
    value = data.get("pixel_size_um")
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
