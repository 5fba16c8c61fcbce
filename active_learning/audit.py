"""Audits: a uniform share of submissions gets a second review in Label Studio, and confidence is learnt from them.

**Which submissions.** An implicit label is audited when ``HMAC-SHA256(key, annotation id)``,
read as a number in [0, 1), is below ``rate`` (default 7 %): uniform over submissions,
independent of what the expert did (an audit chosen by difficulty would calibrate on the wrong
pixels), the same in every process, and not predictable by the annotator.

**Where.** The backend creates a *review project* beside the served one, "<title> (audit)", with
the same labelling config, and is *not* connected to it (its annotations are never harvested
as implicit labels). :meth:`AuditWorkflow.sync` imports each audited submission as a task of the
review project: the same image, the first expert's submitted regions as the prediction to review,
and ``data.audit_of`` naming the project, task and annotation. A reviewer opens the review project,
corrects what is wrong and submits. ``scraiber audit --project ID`` runs it (idempotent: a
submission is sent once; state in the artefact store under ``audits/project-P.json``).

**What is learnt.** :meth:`AuditWorkflow.collect` pairs each reviewed task with the implicit label
it audits and with the prediction that expert started from; :func:`fit_calibration` fits
:class:`~active_learning.calibration.CalibrationModel` (harvest-time features, per-annotator offsets
and maps) on "the implicit label agrees with the review" and stores it as ``calibration/confidence.json``.
From then on every harvest stores the calibrated confidence instead of the hand-set one
(:class:`~active_learning.harvest.Harvester`), and training weights pixels by it.
``scraiber calibrate --project ID`` runs both steps.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from active_learning.calibration import HARVEST_FEATURES, CalibrationModel, pixel_features
from active_learning.corrections import NOTHING
from active_learning.harvest_log import LABEL, HarvestLog, HarvestRecord
from active_learning.store import ArtefactNotFoundError, ArtefactStore
from label_config import Catalogue
from ml_backend.label_map import labelled_target
from ml_backend.label_studio import LabelStudioClient
from ml_backend.regions import regions_to_class_map

log = logging.getLogger(__name__)

DEFAULT_RATE = 0.07
REVIEW_SUFFIX = " (audit)"
PIXELS_PER_AUDIT = 5000


def audited(annotation_id: int, key: bytes, rate: float = DEFAULT_RATE) -> bool:
    """Whether the submission ``annotation_id`` goes to a second review (uniform, keyed, deterministic).

    Raises:
        ValueError: for a rate outside [0, 1].
    """
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"audit rate must lie in [0, 1], got {rate}")
    digest = hmac.new(key, f"audit:{int(annotation_id)}".encode(), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def state_key(project_id: int) -> str:
    """Artefact key of a project's audit state."""
    return f"audits/project-{int(project_id)}.json"


@dataclass(frozen=True)
class AuditPair:
    """An implicit label and its review, with what the calibration features need."""

    record: HarvestRecord
    predicted: np.ndarray
    label: np.ndarray
    reviewed: np.ndarray


class AuditWorkflow:
    """Sends audited submissions of a served project to its review project and reads the reviews back.

    Args:
        client: Label Studio (a user who can create projects and read the served one).
        harvests: The harvest log (which submissions exist).
        store: Artefact store (labels; audit state; the calibration model).
        catalogue: Mineral classes.
        key: Secret of the audit draw (the pseudonym key will do).
        rate: Share of submissions audited.
    """

    def __init__(
        self,
        client: LabelStudioClient,
        harvests: HarvestLog,
        store: ArtefactStore,
        catalogue: Catalogue,
        key: bytes,
        rate: float = DEFAULT_RATE,
    ) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"audit rate must lie in [0, 1], got {rate}")
        self.client, self.harvests, self.store, self.catalogue = client, harvests, store, catalogue
        self.key, self.rate = key, rate

    def _state(self, project_id: int) -> dict[str, Any]:
        try:
            return self.store.get_json(state_key(project_id))
        except ArtefactNotFoundError:
            return {"review_project": None, "sent": {}}

    def review_project(self, project_id: int) -> int:
        """The review project of ``project_id`` (created with the same labelling config if missing)."""
        state = self._state(project_id)
        if state.get("review_project"):
            return int(state["review_project"])
        project = self.client.get_project(project_id)
        title = f"{project['title']}{REVIEW_SUFFIX}"
        found = self.client.find_project_by_title(title)
        review = found or self.client.create_project(
            title, project["label_config"],
            description=f"Second review of a uniform {self.rate:.0%} of the submissions of project {project_id} "
                        "(scrAiber audit): correct what is wrong, then submit.",
        )  # fmt: skip
        state["review_project"] = int(review["id"])
        self.store.put_json(state_key(project_id), state)
        return int(review["id"])

    def sync(self, project_id: int) -> list[int]:
        """Send the project's audited submissions not sent yet; returns the review tasks created."""
        review = self.review_project(project_id)
        state = self._state(project_id)
        sent: dict[str, Any] = state.setdefault("sent", {})
        created = []
        for record in self.harvests.records(project=project_id, kind=LABEL):
            if str(record.annotation_id) in sent or not audited(record.annotation_id, self.key, self.rate):
                continue
            annotation = self.client.get_annotation(record.annotation_id)
            task = self.client.get_task(record.task_id)
            data = dict(task.get("data") or {})
            data["audit_of"] = {"project": project_id, "task": record.task_id, "annotation": record.annotation_id,
                                "updated_at": record.updated_at}  # fmt: skip
            prediction = {
                "result": annotation.get("result") or [],
                "model_version": "audit-of-submission",
                "score": 0.0,
            }
            task_ids = self.client.import_tasks(review, [{"data": data, "predictions": [prediction]}])
            sent[str(record.annotation_id)] = {"review_task": task_ids[0], "task": record.task_id,
                                               "updated_at": record.updated_at}  # fmt: skip
            created += task_ids
            self.store.put_json(state_key(project_id), state)  # after each task: a crash never sends one twice
        return created

    def collect(self, project_id: int) -> list[AuditPair]:
        """Every submitted review of the project, paired with the implicit label it audits."""
        state = self._state(project_id)
        if not state.get("review_project"):
            return []
        config = self.client.get_project(int(state["review_project"]))["label_config"]
        target = labelled_target(config, self.catalogue)
        pairs = []
        for annotation_id, entry in state.get("sent", {}).items():
            record = self.harvests.current(int(annotation_id))
            if (
                record is None
                or record.kind != LABEL
                or record.label_key is None
                or record.updated_at != entry["updated_at"]
            ):
                continue  # changed or deleted since: its review no longer matches the label
            reviews = [a for a in self.client.annotations(int(entry["review_task"])) if not a.get("was_cancelled")]
            if not reviews:
                continue
            label = self.store.get_arrays(record.label_key)["label"]
            review = max(reviews, key=lambda a: int(a["id"]))
            reviewed, _ = regions_to_class_map(review.get("result"), label.shape, self.catalogue, target.from_name)
            predicted = np.full(label.shape, NOTHING, np.uint8)
            for prediction in self.client.task_predictions(record.task_id):
                if record.prediction_id is not None and int(prediction["id"]) == record.prediction_id:
                    predicted, _ = regions_to_class_map(
                        prediction.get("result"), label.shape, self.catalogue, target.from_name
                    )
            pairs.append(AuditPair(record, predicted, label, reviewed))
        return pairs


def calibration_table(pairs: list[AuditPair], n_classes: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Features, outcome (label agrees with the review), submission and annotator of audited pixels."""
    parts = []
    for pair in pairs:
        features, index = pixel_features(pair.predicted, pair.label, pair.record.lead_time, n_classes)
        reviewed = pair.reviewed.ravel()[index]
        keep = reviewed != NOTHING
        rng = np.random.default_rng([seed, pair.record.annotation_id])
        chosen = np.flatnonzero(keep)
        chosen = np.sort(rng.permutation(chosen)[:PIXELS_PER_AUDIT])
        part = {name: values[chosen] for name, values in features.items()}
        part["correct"] = pair.label.ravel()[index][chosen] == reviewed[chosen]
        part["submission"] = np.full(chosen.size, pair.record.annotation_id)
        part["annotator"] = np.full(chosen.size, pair.record.annotator or "")
        parts.append(part)
    if not parts:
        return {}
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def fit_calibration(pairs: list[AuditPair], n_classes: int) -> CalibrationModel:
    """The confidence model on the audited pixels (harvest-time features).

    Raises:
        ValueError: with fewer than two reviewed submissions, or reviews that agree (or disagree) everywhere.
    """
    table = calibration_table(pairs, n_classes)
    if not table or len(np.unique(table["submission"])) < 2:
        raise ValueError(f"calibration needs at least two reviewed submissions, got {len(pairs)}")
    names = list(HARVEST_FEATURES) + [f"class_{k}" for k in range(n_classes)]
    return CalibrationModel.fit(
        table, table["correct"], table["submission"], annotators=table["annotator"], names=names
    )
