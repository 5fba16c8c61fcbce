"""A simulated expert: plays an annotator against a real Label Studio, with known ground truth.

It works the queue the way the README tells people to: the open task (no annotation yet)
with the highest prediction score first. For each task it loads the prediction it starts
from, corrects it towards the ground truth the way people do, and submits:

* largest error first: the wrong pixels, split into connected regions per true class, are
  corrected biggest region first;
* tolerance at boundaries: errors within ``boundary_tolerance`` px of a true class boundary
  are not worth a stroke and stay as predicted; regions smaller than ``min_region`` px too;
* a time budget: each corrected region costs ``seconds_per_region`` plus
  ``seconds_per_kpx`` per 1000 px, on top of a fixed ``overhead_seconds``; the expert stops
  when the next region does not fit in ``budget_seconds``;
* occasional skips: with ``skip_probability``, or ``skip_uncertain_probability`` when the
  prediction's score is at least ``skip_uncertain_score``, or ``skip_empty_probability``
  when the prediction is empty: a cancelled annotation (``was_cancelled=True``).

The annotation carries ``lead_time`` (the modelled seconds) and ``parent_prediction`` (the id
of the prediction it started from), so harvesting can diff it against that prediction. In
``explicit`` mode the expert ignores the prediction and paints the truth from scratch
(largest true region first, same time model, no ``parent_prediction``): explicit labels for
comparison experiments.

Ground truth (:class:`tracking_analysis.truth.TruthLookup`): a folder of ``{key}_classes.png`` class-index masks as
written by ``ml_backend.synthetic.write_section`` (or ``scraiber synth``). A task's key is
``data.truth`` if present, else the entry for its id or image file name in an optional JSON
mapping file, else the stem of its image file name (without Label Studio's 8-hex upload
prefix). Everything is seeded: the same seed, project state and truth give the same
submissions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from label_config import Catalogue, load_catalogue
from label_config.catalogue import IGNORE_INDEX
from ml_backend.label_map import control_target
from ml_backend.label_studio import LabelStudioClient
from ml_backend.metrics import confusion_matrix, iou_per_class
from ml_backend.regions import class_map_to_regions, regions_to_class_map
from tracking_analysis.truth import TruthLookup

log = logging.getLogger(__name__)

MODES = ("correct", "explicit")


@dataclass(frozen=True)
class ExpertConfig:
    """How the simulated expert behaves (all seeded).

    Attributes:
        mode: ``correct`` (edit the prediction) or ``explicit`` (paint the truth from scratch).
        boundary_tolerance: Errors within this many px of a pixel of another true class are
            ignored (1: only pixels touching another class).
        min_region: Error regions smaller than this (px) are ignored.
        budget_seconds: Time the expert gives one task.
        overhead_seconds: Fixed time per task (look at it, submit).
        seconds_per_region: Time per corrected region (pick the label, aim).
        seconds_per_kpx: Painting time per 1000 px corrected.
        time_noise: Standard deviation of the log of a multiplicative factor on every duration.
        skip_probability: Chance of skipping any task.
        skip_uncertain_score: Predictions scored at least this are "very uncertain" (None: never).
        skip_uncertain_probability: Chance of skipping a very uncertain task.
        skip_empty_probability: Chance of skipping a task whose prediction has no regions.
        seed: Seed of durations and skips.
    """

    mode: str = "correct"
    boundary_tolerance: int = 2
    min_region: int = 16
    budget_seconds: float = 180.0
    overhead_seconds: float = 10.0
    seconds_per_region: float = 3.0
    seconds_per_kpx: float = 1.0
    time_noise: float = 0.15
    skip_probability: float = 0.0
    skip_uncertain_score: float | None = None
    skip_uncertain_probability: float = 0.5
    skip_empty_probability: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown expert mode {self.mode!r}; valid modes: {', '.join(MODES)}")
        if self.boundary_tolerance < 0 or self.min_region < 1:
            raise ValueError("boundary_tolerance must be >= 0 and min_region >= 1")
        times = (
            self.budget_seconds,
            self.overhead_seconds,
            self.seconds_per_region,
            self.seconds_per_kpx,
            self.time_noise,
        )
        if min(times) < 0:
            raise ValueError("budget, overhead, per-region, per-kpx times and time_noise must be >= 0")
        for name in ("skip_probability", "skip_uncertain_probability", "skip_empty_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")


@dataclass(frozen=True)
class Correction:
    """What the expert did to one class map.

    Attributes:
        classes: The submitted class map (``IGNORE_INDEX`` where nothing is painted).
        seconds: Modelled time spent, overhead included.
        regions: Regions corrected (or painted, in explicit mode).
        pixels: Pixels changed.
        out_of_budget: Regions worth correcting that were left for lack of time.
    """

    classes: np.ndarray
    seconds: float
    regions: int
    pixels: int
    out_of_budget: int


@dataclass(frozen=True)
class Submission:
    """One task the expert handled.

    Attributes:
        task_id: The task.
        annotation_id: The annotation created.
        prediction_id: The prediction it started from (None in explicit mode or without one).
        score: That prediction's score.
        skipped: Submitted as cancelled.
        lead_time: Seconds submitted.
        regions, pixels, out_of_budget: See :class:`Correction`.
        iou_before, iou_after: Mean IoU over the true classes of the prediction and of the submission.
    """

    task_id: int
    annotation_id: int
    prediction_id: int | None
    score: float | None
    skipped: bool
    lead_time: float
    regions: int
    pixels: int
    out_of_budget: int
    iou_before: float | None
    iou_after: float | None


def mean_iou(classes: np.ndarray, truth: np.ndarray) -> float:
    """Mean IoU over the classes present in ``truth``; an unlabelled pixel (``IGNORE_INDEX``) of ``classes``
    counts as wrong, one of ``truth`` is skipped (:func:`ml_backend.metrics.confusion_matrix`)."""
    labelled = np.concatenate([classes[classes != IGNORE_INDEX], truth[truth != IGNORE_INDEX]])
    unlabelled = int(labelled.max(initial=0)) + 1  # a column of its own for unlabelled predictions
    predicted = np.where(classes == IGNORE_INDEX, unlabelled, classes)
    iou = iou_per_class(confusion_matrix(truth, predicted, unlabelled + 1))
    return float(np.mean(iou[np.unique(truth[truth != IGNORE_INDEX])]))


def _regions(todo: np.ndarray, truth: np.ndarray, min_region: int) -> list[tuple[int, np.ndarray]]:
    """(class, mask) of the connected regions of ``todo`` per true class, largest first
    (ties: lower class, then first pixel in raster order)."""
    found = []
    for k in np.unique(truth[todo]):
        labelled, n = ndimage.label(todo & (truth == k))
        if n == 0:
            continue
        sizes = np.bincount(labelled.ravel())[1:]
        firsts = ndimage.minimum(np.arange(labelled.size).reshape(labelled.shape), labelled, np.arange(1, n + 1))
        for i in np.flatnonzero(sizes >= min_region):
            found.append((int(sizes[i]), int(k), float(firsts[i]), labelled == i + 1))
    found.sort(key=lambda item: (-item[0], item[1], item[2]))
    return [(k, mask) for _, k, _, mask in found]


def correct(start: np.ndarray, truth: np.ndarray, config: ExpertConfig, rng: np.random.Generator) -> Correction:
    """Correct the class map ``start`` towards ``truth`` within the time budget.

    In explicit mode ``start`` is ignored: the expert paints truth regions onto an empty map.
    """
    if start.shape != truth.shape:
        raise ValueError(f"prediction of shape {start.shape} does not fit the ground truth of shape {truth.shape}")
    explicit = config.mode == "explicit"
    classes = np.full(truth.shape, IGNORE_INDEX, np.uint8) if explicit else start.copy()
    todo = truth != IGNORE_INDEX
    if not explicit:
        near_boundary = np.zeros(truth.shape, bool)
        if config.boundary_tolerance > 0:
            edges = np.zeros(truth.shape, bool)
            edges[:-1] |= truth[:-1] != truth[1:]
            edges[1:] |= truth[:-1] != truth[1:]
            edges[:, :-1] |= truth[:, :-1] != truth[:, 1:]
            edges[:, 1:] |= truth[:, :-1] != truth[:, 1:]
            near_boundary = ndimage.distance_transform_edt(~edges) < config.boundary_tolerance
        todo &= (classes != truth) & ~near_boundary

    def noise() -> float:
        return float(np.exp(rng.normal(0.0, config.time_noise))) if config.time_noise > 0 else 1.0

    seconds = config.overhead_seconds * noise()
    regions = pixels = 0
    queue = _regions(todo, truth, config.min_region)
    for position, (k, mask) in enumerate(queue):
        cost = (config.seconds_per_region + config.seconds_per_kpx * mask.sum() / 1000.0) * noise()
        if seconds + cost > config.budget_seconds:
            return Correction(classes, round(float(seconds), 3), regions, pixels, len(queue) - position)
        pixels += int((classes[mask] != k).sum())
        classes[mask] = k
        seconds += cost
        regions += 1
    return Correction(classes, round(float(seconds), 3), regions, pixels, 0)


class SimulatedExpert:
    """Annotates a Label Studio project's open tasks in prediction-score order.

    Args:
        client: Label Studio client of the expert's account.
        project_id: The project.
        truth: Ground-truth lookup.
        config: Behaviour.
        catalogue: Mineral catalogue (default: the built-in one).
    """

    def __init__(
        self,
        client: LabelStudioClient,
        project_id: int,
        truth: TruthLookup,
        config: ExpertConfig | None = None,
        catalogue: Catalogue | None = None,
    ) -> None:
        self.client = client
        self.project_id = int(project_id)
        self.truth = truth
        self.config = config or ExpertConfig()
        self.catalogue = catalogue or load_catalogue()
        self.target = control_target(client.get_project(self.project_id)["label_config"], self.catalogue)
        self._rng = np.random.default_rng(self.config.seed)

    def next_task(self) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
        """(task, the prediction to start from) of the open task with the highest score, or None.

        Open: no annotation, submitted or cancelled. The prediction is the task's newest;
        tasks without predictions come last (score -1); ties go to the lower task id. Tasks
        without ground truth are left to people.
        """
        best = None
        for task in self.client.list_tasks(self.project_id):
            if task.get("total_annotations", 0) or task.get("cancelled_annotations", 0):
                continue
            if not self.truth.has(task, self.target.value_key):
                continue
            predictions = self.client.task_predictions(int(task["id"]))
            prediction = max(predictions, key=lambda p: int(p["id"])) if predictions else None
            score = float(prediction.get("score") or 0.0) if prediction else -1.0
            key = (-score, int(task["id"]))
            if best is None or key < best[0]:
                best = (key, task, prediction)
        return None if best is None else (best[1], best[2])

    def annotate(self, task: dict[str, Any], prediction: dict[str, Any] | None) -> Submission:
        """Correct (or label) one task and submit the annotation."""
        cfg = self.config
        task_id = int(task["id"])
        truth = self.truth.classes(task, self.target.value_key)
        start, _ = regions_to_class_map(
            (prediction or {}).get("result"), truth.shape, self.catalogue, self.target.from_name
        )
        score = float(prediction["score"]) if prediction and prediction.get("score") is not None else None
        parent = int(prediction["id"]) if prediction and cfg.mode == "correct" else None
        extra: dict[str, Any] = {"parent_prediction": parent} if parent is not None else {}
        skip_chance = cfg.skip_probability
        if cfg.skip_uncertain_score is not None and score is not None and score >= cfg.skip_uncertain_score:
            skip_chance = max(skip_chance, cfg.skip_uncertain_probability)
        if cfg.mode == "correct" and not (start != IGNORE_INDEX).any():
            skip_chance = max(skip_chance, cfg.skip_empty_probability)
        draw = self._rng.random()
        iou_before = mean_iou(start, truth) if prediction else None
        if draw < skip_chance:
            seconds = round(cfg.overhead_seconds * float(np.exp(self._rng.normal(0.0, cfg.time_noise))), 3)
            answer = self.client.create_annotation(task_id, [], lead_time=seconds, was_cancelled=True, **extra)
            return Submission(task_id, int(answer["id"]), parent, score, True, seconds, 0, 0, 0, iou_before, None)
        done = correct(start, truth, cfg, self._rng)
        target = self.target
        result = class_map_to_regions(done.classes, target.labels, target.from_name, target.to_name, id_prefix="expert")
        answer = self.client.create_annotation(task_id, result, lead_time=done.seconds, **extra)
        return Submission(
            task_id, int(answer["id"]), parent, score, False, done.seconds, done.regions, done.pixels,
            done.out_of_budget, iou_before, mean_iou(done.classes, truth),
        )  # fmt: skip

    def run(self, max_tasks: int | None = None) -> list[Submission]:
        """Annotate open tasks in score order until none is left or ``max_tasks`` are done."""
        submissions: list[Submission] = []
        while max_tasks is None or len(submissions) < max_tasks:
            picked = self.next_task()
            if picked is None:
                break
            submissions.append(self.annotate(*picked))
            log.info("simulated expert: %s", submissions[-1])
        return submissions
