"""Harvesting: turn one Label Studio annotation into an implicit label with provenance.

For an annotation id the :class:`Harvester` reads the annotation, its project's
labelling config, its task and the task's predictions from Label Studio (always the
current state: a webhook payload is only a hint of *which* annotation to look at), finds
the prediction the expert started from, decodes both into class maps
(:mod:`ml_backend.regions`), derives the implicit label with :func:`derive` (the same
function the tracking analysis replays snapshots with) and stores

* ``implicit-labels/project-P/task-T/annotation-A.npz``: ``label`` (uint8 catalogue
  indices, 255 = unlabelled) and ``confidence`` (float16, 0..1);
* ``implicit-labels/project-P/task-T/annotation-A.json``: provenance and statistics;
* a row in the harvest log (:mod:`active_learning.harvest_log`), unique per
  (annotation id, ``updated_at``): harvesting the same version again is a no-op.

The prediction the expert started from is, in this order:

1. ``parent_prediction`` (Label Studio sets it when the annotation was started from a
   prediction in the editor);
2. else the latest of the task's predictions created before the annotation whose
   ``model_version`` is the one the project's connected ML backend serves (those are the
   predictions Label Studio 1.23 shows in the editor). This reads the version served
   *now*, which equals the version served at the annotation's creation unless the model
   changed in between (webhook-driven harvests run seconds after the submission);
3. else the latest prediction created before the annotation;
4. else none: every painted pixel counts as added.

A skipped task (``was_cancelled``) stores no label and is recorded as a skip; a submission
with nothing painted is recorded as "empty" with its statistics (what was removed) but no
label. Annotators appear only as pseudonyms (:mod:`active_learning.pseudonyms`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from active_learning.calibration import CALIBRATION_KEY, CalibrationModel, calibrated_confidence
from active_learning.corrections import NOTHING, ConfidenceModel, Correction, compare, model_parameters
from active_learning.crystal_corrections import crystal_changes, crystal_labels
from active_learning.harvest_log import EMPTY, LABEL, SKIP, HarvestLog, HarvestRecord, timestamp
from active_learning.pseudonyms import pseudonym
from active_learning.store import ArtefactNotFoundError, ArtefactStore
from label_config import Catalogue
from ml_backend.crystal_results import crystal_target
from ml_backend.label_map import LabelConfigError, labelled_target
from ml_backend.label_studio import LabelStudioClient, LabelStudioError
from ml_backend.regions import regions_to_class_map, result_shape

log = logging.getLogger(__name__)

HARVESTED, UNCHANGED, GONE, NOT_SERVED = "harvested", "unchanged", "gone", "not_served"


@dataclass(frozen=True)
class HarvestOutcome:
    """What :meth:`Harvester.harvest` did.

    Attributes:
        status: ``"harvested"`` (a new version stored), ``"unchanged"`` (this version was
            stored before), ``"gone"`` (the annotation no longer exists; any label retracted)
            or ``"not_served"`` (its project's config has no BrushLabels for the catalogue).
        record: The stored record (for "harvested" and "unchanged").
    """

    status: str
    record: HarvestRecord | None = None


def label_keys(project_id: int, task_id: int, annotation_id: int) -> tuple[str, str]:
    """Artefact keys of an annotation's label arrays (``.npz``) and provenance (``.json``)."""
    stem = f"implicit-labels/project-{int(project_id)}/task-{int(task_id)}/annotation-{int(annotation_id)}"
    return f"{stem}.npz", f"{stem}.json"


def choose_prediction(
    annotation: Mapping[str, Any], predictions: Iterable[Mapping[str, Any]], served_versions: Iterable[str] = ()
) -> tuple[Mapping[str, Any] | None, str]:
    """The prediction the expert started from and the rule that found it (see module doc).

    Returns:
        (prediction or None, rule) with rule one of ``"parent_prediction"``,
        ``"served_version"``, ``"latest_before"``, ``"none"``.
    """
    predictions = [p for p in predictions if isinstance(p, Mapping)]
    parent = annotation.get("parent_prediction")
    for prediction in predictions:
        if parent is not None and prediction.get("id") == parent:
            return prediction, "parent_prediction"
    created = timestamp(annotation["created_at"])

    def order(prediction: Mapping[str, Any]) -> tuple[float, int]:
        return timestamp(prediction["created_at"]), int(prediction.get("id") or 0)

    before = [p for p in predictions if p.get("created_at") and timestamp(p["created_at"]) <= created]
    versions = set(served_versions)
    served = [p for p in before if p.get("model_version") in versions]
    if served:
        return max(served, key=order), "served_version"
    if before:
        return max(before, key=order), "latest_before"
    return None, "none"


@dataclass(frozen=True)
class Derivation:
    """What one submitted annotation yields, compared with the prediction it started from.

    Attributes:
        predicted: The prediction's class map compared against (None: no prediction, or one
            of another size than the annotation, which is then ignored).
        correction: The comparison (:func:`~active_learning.corrections.compare`); its
            ``label`` is the implicit label.
        confidence: Per-pixel confidence of the label: the calibrated one when a calibration
            was given, else ``correction.confidence``.
        stats: The harvest record's statistics (``Correction.stats`` plus ``unknown_labels``).
    """

    predicted: np.ndarray | None
    correction: Correction
    confidence: np.ndarray
    stats: dict[str, Any]

    @property
    def kind(self) -> str:
        """``"label"`` when any pixel is labelled, else ``"empty"`` (statistics but no label)."""
        return LABEL if self.stats["labelled_pixels"] else EMPTY


def derive(
    final: np.ndarray | None,
    predicted: np.ndarray | None,
    names: Sequence[str],
    lead_time: float | None = None,
    model: ConfidenceModel = ConfidenceModel(),
    unknown_labels: Iterable[str] = (),
    calibration: CalibrationModel | None = None,
    annotator: str | None = None,
) -> Derivation | None:
    """The harvest's derivation of an implicit label, shared by the harvester and the tracking analysis.

    A missing map counts as nothing painted (``final``) or nothing predicted (``predicted``);
    a prediction of another size than ``final`` is ignored.

    Args:
        final: Class map of the submitted annotation (None: it has no regions).
        predicted: Class map of the prediction the expert started from (None: none).
        names: Catalogue class names in index order.
        lead_time: Seconds the expert spent, if known.
        model: Confidence model parameters.
        unknown_labels: Labels of the annotation that match no catalogue class.
        calibration: Confidence model learnt from audits (None: the hand-set ``model``).
        annotator: The annotator's pseudonym (a calibration feature).

    Returns:
        The derivation, or None when neither map exists (no image size to compare on).
    """
    if final is not None and predicted is not None and predicted.shape != final.shape:
        predicted = None
    reference = final if final is not None else predicted
    if reference is None:
        return None
    nothing = np.full(reference.shape, NOTHING, np.uint8)
    start = nothing if predicted is None else predicted
    final = nothing if final is None else final
    correction = compare(start, final, len(names), lead_time, model)
    if calibration is None:
        confidence = correction.confidence
    else:
        confidence = calibrated_confidence(calibration, start, final, lead_time, annotator=annotator)
    stats = correction.stats(list(names))
    stats["unknown_labels"] = sorted(set(unknown_labels))
    return Derivation(predicted, correction, confidence, stats)


class Harvester:
    """Harvests annotations from Label Studio into the artefact store and the harvest log.

    Args:
        client: Label Studio client (its user must see every annotation of the projects).
        store: Where labels and provenance go.
        harvests: The harvest log.
        catalogue: The mineral catalogue (class indices of the labels).
        pseudonym_key: Secret key of the annotator pseudonyms.
        confidence: Confidence model parameters.
    """

    def __init__(
        self,
        client: LabelStudioClient,
        store: ArtefactStore,
        harvests: HarvestLog,
        catalogue: Catalogue,
        pseudonym_key: bytes,
        confidence: ConfidenceModel = ConfidenceModel(),
    ) -> None:
        self.client = client
        self.store = store
        self.harvests = harvests
        self.catalogue = catalogue
        self._key = pseudonym_key
        self.confidence = confidence
        self._calibration: tuple[float, CalibrationModel | None] | None = None

    def calibration(self) -> CalibrationModel | None:
        """The confidence model learnt from audits (``scraiber calibrate``), re-read at most every minute.

        None until one is stored: harvests then use the hand-set :class:`ConfidenceModel`.
        """
        now = time.monotonic()
        if self._calibration is None or now - self._calibration[0] > 60:
            try:
                model = CalibrationModel.from_dict(self.store.get_json(CALIBRATION_KEY))
            except ArtefactNotFoundError:
                model = None
            self._calibration = (now, model)
        return self._calibration[1]

    def harvest(self, annotation_id: int) -> HarvestOutcome:
        """Harvest the current version of an annotation (exactly once per version).

        Raises:
            LabelStudioError: Label Studio failed (other than 404 for the annotation).
            ArtefactStoreUnavailableError: the artefact store cannot be reached.
            ValueError: the annotation's regions cannot be decoded.
        """
        try:
            annotation = self.client.get_annotation(annotation_id)
        except LabelStudioError as exc:
            if exc.status_code != 404:
                raise
            self.retract(annotation_id)
            return HarvestOutcome(GONE)
        updated_at = str(annotation["updated_at"])
        if self.harvests.has(annotation_id, updated_at):
            return HarvestOutcome(UNCHANGED, self.harvests.current(annotation_id))
        project_id, task_id = int(annotation["project"]), int(annotation["task"])
        base = HarvestRecord(
            annotation_id=int(annotation_id),
            updated_at=updated_at,
            project_id=project_id,
            task_id=task_id,
            kind=SKIP,
            annotator=pseudonym(annotation["completed_by"], self._key) if annotation.get("completed_by") else None,
            lead_time=_float_or_none(annotation.get("lead_time")),
            was_cancelled=bool(annotation.get("was_cancelled")),
            created_at=annotation.get("created_at"),
        )
        label_config = self.client.get_project(project_id)["label_config"]
        try:
            target = labelled_target(label_config, self.catalogue)
        except LabelConfigError as exc:
            log.info("annotation %s: project %s is not served: %s", annotation_id, project_id, exc)
            return HarvestOutcome(NOT_SERVED)
        backends = self.client.list_ml_backends(project_id)
        if not self.harvests.lists_this_backend(project_id, backends):  # disconnected (its webhook may remain)
            log.info("annotation %s: project %s no longer lists this backend; not harvested", annotation_id, project_id)
            return HarvestOutcome(NOT_SERVED)
        self.harvests.note_project(project_id, "annotation")
        if base.was_cancelled:
            return self._store(base, None, None)
        task = self.client.get_task(task_id)
        predictions = self.client.task_predictions(task_id)
        served = [b["model_version"] for b in backends if b.get("model_version")]
        parent, rule = choose_prediction(annotation, predictions, served)
        results = annotation.get("result") or []
        own = result_shape(results, target.from_name)
        parent_shape = result_shape(parent.get("result"), target.from_name) if parent else None
        shape = own or parent_shape
        final = unknown = predicted = None
        if shape is not None:
            final, unknown = regions_to_class_map(results, shape, self.catalogue, target.from_name)
        predicted_shape = parent_shape or shape
        if parent is not None and predicted_shape is not None:
            predicted, _ = regions_to_class_map(parent.get("result"), predicted_shape, self.catalogue, target.from_name)
        calibration = self.calibration()
        derived = derive(
            final,
            predicted,
            self.catalogue.names,
            base.lead_time,
            self.confidence,
            unknown_labels=unknown or (),
            calibration=calibration,
            annotator=base.annotator,
        )
        if predicted is not None and derived is not None and derived.predicted is None:
            assert parent is not None  # predicted is only set from a parent prediction
            log.warning("annotation %s: prediction %s has another image size; ignored", annotation_id, parent["id"])
            parent, rule = None, "none"
        record = replace(
            base,
            kind=EMPTY,
            model_version=parent.get("model_version") if parent else None,
            prediction_id=int(parent["id"]) if parent else None,
            prediction_rule=rule,
        )
        if derived is None:
            return self._store(record, None, None)
        stats = derived.stats
        crystals = crystal_target(label_config, self.catalogue) if target.tag == "PolygonLabels" else None
        if crystals is not None:
            stats["crystals"] = crystal_changes(parent.get("result") or [] if parent else [], results, crystals)
        record = replace(record, stats=stats)
        if derived.kind == EMPTY:
            return self._store(record, None, None)
        record = replace(record, kind=LABEL, label_key=label_keys(project_id, task_id, annotation_id)[0])
        provenance = {
            "annotation_id": record.annotation_id,
            "updated_at": record.updated_at,
            "created_at": record.created_at,
            "project_id": project_id,
            "task_id": task_id,
            "image": (task.get("data") or {}).get(target.value_key),
            "annotator": record.annotator,
            "model_version": record.model_version,
            "prediction_id": record.prediction_id,
            "prediction_rule": rule,
            "lead_time": record.lead_time,
            "was_cancelled": False,
            "from_name": target.from_name,
            "label_config_labels": {str(k): v for k, v in sorted(target.labels.items())},
            "confidence_model": model_parameters(self.confidence),
            "confidence_calibration": None if calibration is None else calibration.fitted_on,
            "harvested_at": time.time(),
            "arrays": {"label": "uint8 catalogue index, 255 = unlabelled", "confidence": "float16 in [0, 1]"},
            "stats": stats,
        }
        if crystals is not None:
            provenance["crystals"] = crystal_labels(results, crystals)
        return self._store(record, derived.correction.label, derived.confidence, provenance)

    def _store(
        self,
        record: HarvestRecord,
        label: np.ndarray | None,
        confidence: np.ndarray | None,
        provenance: dict[str, Any] | None = None,
    ) -> HarvestOutcome:
        npz_key, json_key = label_keys(record.project_id, record.task_id, record.annotation_id)
        if label is None:
            # a skip or an empty submission replaces any label of an earlier version
            self.store.delete(npz_key)
            self.store.delete(json_key)
        else:
            assert confidence is not None  # every caller passes a label together with its confidence
            self.store.put_arrays(npz_key, {"label": label, "confidence": confidence.astype(np.float16)})
            self.store.put_json(json_key, provenance)
        stored = self.harvests.add(record)
        if stored is None:
            return HarvestOutcome(UNCHANGED, self.harvests.current(record.annotation_id))
        return HarvestOutcome(HARVESTED, stored)

    def retract(self, annotation_id: int) -> HarvestRecord | None:
        """Retract an annotation's label: the record keeps ``retracted_at``, the artefacts go.

        Idempotent: a second call deletes the (already deleted) artefacts again and returns None.
        """
        current = self.harvests.current(annotation_id)
        retracted = self.harvests.retract(annotation_id)
        if current is not None:
            for key in label_keys(current.project_id, current.task_id, annotation_id):
                self.store.delete(key)
        return retracted

    def retract_if_gone(self, annotation_id: int) -> bool:
        """Retract only if Label Studio confirms the annotation no longer exists (HTTP 404)."""
        try:
            self.client.get_annotation(annotation_id)
        except LabelStudioError as exc:
            if exc.status_code != 404:
                raise
            self.retract(annotation_id)
            return True
        return False


def _float_or_none(value: Any) -> float | None:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
