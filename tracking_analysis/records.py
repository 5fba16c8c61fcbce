"""Snapshot -> harvest records and implicit labels, with the harvester's own arithmetic.

:func:`harvest_snapshot` does for every annotation of a :class:`~tracking_analysis.snapshot.Snapshot`
what :class:`active_learning.harvest.Harvester` does for one annotation in Label Studio:
find the prediction the expert started from (:func:`~active_learning.harvest.choose_prediction`),
derive the implicit label and its statistics with the harvester's own function
(:func:`~active_learning.harvest.derive`) and build a
:class:`~active_learning.harvest_log.HarvestRecord`. The indicator
functions then read the same kind of records whether they come from a snapshot or from the
harvest log (:func:`harvest_log_records`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from active_learning.corrections import ConfidenceModel
from active_learning.harvest import choose_prediction, derive, label_keys
from active_learning.harvest_log import EMPTY, SKIP, HarvestLog, HarvestRecord
from tracking_analysis.snapshot import Snapshot, SnapshotAnnotation, SnapshotPrediction


@dataclass(frozen=True)
class Harvested:
    """One annotation's harvest record and, for kind "label", its implicit label.

    Attributes:
        record: The record (``stats`` as the harvester computes them).
        label: uint8 implicit label (255 = unlabelled), None for skips and empty submissions.
        confidence: float32 per-pixel confidence of ``label`` (None with it).
        predicted: The class map of the prediction the expert started from (None: none).
    """

    record: HarvestRecord
    label: np.ndarray | None = None
    confidence: np.ndarray | None = None
    predicted: np.ndarray | None = None


def _prediction_dict(prediction: SnapshotPrediction) -> dict:
    return {"id": prediction.id, "created_at": prediction.created_at, "model_version": prediction.model_version}


def harvest_annotation(
    annotation: SnapshotAnnotation,
    predictions: Sequence[SnapshotPrediction],
    snapshot: Snapshot,
    model: ConfidenceModel = ConfidenceModel(),
) -> Harvested:
    """Harvest one snapshot annotation (see the module docstring).

    Args:
        annotation: The annotation.
        predictions: The predictions of its task.
        snapshot: The snapshot (project id, classes, served model versions).
        model: Confidence model parameters (the harvester's default unless configured otherwise).
    """
    base = HarvestRecord(
        annotation_id=annotation.id,
        updated_at=annotation.updated_at,
        project_id=snapshot.project_id,
        task_id=annotation.task,
        kind=SKIP,
        annotator=annotation.annotator,
        lead_time=annotation.lead_time,
        was_cancelled=annotation.was_cancelled,
        created_at=annotation.created_at,
    )
    by_id = {p.id: p for p in predictions}
    chosen, rule = choose_prediction(
        {"parent_prediction": annotation.parent_prediction, "created_at": annotation.created_at},
        [_prediction_dict(p) for p in predictions],
        snapshot.served_versions,
    )
    parent = by_id[chosen["id"]] if chosen is not None else None
    if annotation.was_cancelled:
        # unlike the harvest log, a skip keeps the prediction it was shown: skip rates per model version
        return Harvested(
            replace(
                base,
                model_version=parent.model_version if parent else None,
                prediction_id=parent.id if parent else None,
                prediction_rule=rule,
            )
        )
    start = parent.classes if parent is not None else None
    derived = derive(
        annotation.classes,
        start,
        snapshot.classes,
        annotation.lead_time,
        model,
        unknown_labels=annotation.unknown_labels,
    )
    if derived is not None and start is not None and derived.predicted is None:  # another image size
        parent, rule, start = None, "none", None
    record = replace(
        base,
        kind=EMPTY,
        model_version=parent.model_version if parent is not None else None,
        prediction_id=parent.id if parent is not None else None,
        prediction_rule=rule,
    )
    if derived is None:
        return Harvested(record)
    record = replace(record, kind=derived.kind, stats=derived.stats)
    if derived.kind == EMPTY:
        return Harvested(record, predicted=start)
    record = replace(record, label_key=label_keys(snapshot.project_id, annotation.task, annotation.id)[0])
    return Harvested(record, derived.correction.label, derived.confidence, start)


def harvest_snapshot(snapshot: Snapshot, model: ConfidenceModel = ConfidenceModel()) -> list[Harvested]:
    """Harvest every annotation of a snapshot, in annotation id order."""
    by_task: dict[int, list[SnapshotPrediction]] = {}
    for prediction in snapshot.predictions:
        by_task.setdefault(prediction.task, []).append(prediction)
    return [harvest_annotation(a, by_task.get(a.task, []), snapshot, model) for a in snapshot.annotations]


def harvest_log_records(url: str, project: int | None = None, history: bool = False) -> list[HarvestRecord]:
    """Active harvest records of the backend's harvest log (``history``: also superseded versions)."""
    return HarvestLog.from_url(url).records(project=project, include_superseded=history)


def records_of(harvested: Iterable[Harvested]) -> list[HarvestRecord]:
    """The records of :func:`harvest_snapshot`'s output."""
    return [h.record for h in harvested]
