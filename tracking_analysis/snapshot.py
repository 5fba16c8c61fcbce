"""A project's Label Studio records, reduced to what the tracking analysis reads.

:func:`capture` reads one project through the public client API (tasks, each task's
annotations including skipped ones and its draft count, predictions, the served model
versions) and, if present, the answers of the session questionnaire project. It keeps
only what the analysis needs, so a snapshot can be saved, shared and tested against:

* annotators appear only as pseudonyms (``HMAC(key, user id)``, the harvester's);
* brush results are decoded to uint8 class maps (catalogue indices, 255 = nothing) and
  stored as base64 PNG, which is lossless and about 15x smaller than Label Studio's RLE
  as JSON integers (3 KB instead of 50 KB for a 256 px field);
* timestamps stay Label Studio's ISO strings.

JSON layout (``format: scraiber-tracking-snapshot``, ``version: 1``)::

    {"project": {"id", "title", "from_name"}, "classes": [...], "served_versions": [...],
     "tasks": [{"id", "image", "truth", "pixel_size_um", "drafts", "shape", "igsn", "sample"}],
     "predictions": [{"id", "task", "model_version", "score", "created_at", "classes"}],
     "annotations": [{"id", "task", "annotator", "created_at", "updated_at", "lead_time",
                      "was_cancelled", "parent_prediction", "classes", "unknown_labels"}],
     "questionnaire": [{"id", "task", "annotator", "created_at", "lead_time", "session_key",
                        "answers": {control name: value}}]}
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from active_learning.pseudonyms import pseudonym
from label_config import Catalogue
from ml_backend.label_map import control_target
from ml_backend.label_studio import LabelStudioClient
from ml_backend.regions import regions_to_class_map, result_shape

FORMAT, VERSION = "scraiber-tracking-snapshot", 1
#: Title of the Label Studio project holding the session questionnaire.
QUESTIONNAIRE_PROJECT = "scrAiber session questionnaire"


def encode_map(classes: np.ndarray) -> str:
    """Base64 PNG of a 2-D uint8 class map (lossless)."""
    if classes.ndim != 2 or classes.dtype != np.uint8:
        raise ValueError(f"a class map must be 2-D uint8, got {classes.dtype} with shape {classes.shape}")
    buffer = io.BytesIO()
    Image.fromarray(classes).save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def decode_map(text: str) -> np.ndarray:
    """The uint8 class map of :func:`encode_map`'s output.

    Raises:
        ValueError: if ``text`` is not a base64 single-channel 8-bit PNG.
    """
    try:
        with Image.open(io.BytesIO(base64.b64decode(text, validate=True))) as image:
            if image.mode != "L":
                raise ValueError(f"class map PNG has mode {image.mode}, expected L (8-bit grey)")
            return np.asarray(image, dtype=np.uint8).copy()
    except (OSError, ValueError) as exc:
        raise ValueError(f"not a base64 class-map PNG: {exc}") from None


@dataclass(frozen=True)
class SnapshotTask:
    """A task: its image reference, truth key, pixel size (µm, if known), open drafts and image shape,
    and the physical sample it shows (task data ``igsn`` and ``sample``, when given)."""

    id: int
    image: str | None = None
    truth: str | None = None
    pixel_size_um: float | None = None
    drafts: int = 0
    shape: tuple[int, int] | None = None
    igsn: str | None = None
    sample: str | None = None


@dataclass(frozen=True)
class SnapshotPrediction:
    """A stored prediction with its class map (None: it has no brush regions)."""

    id: int
    task: int
    model_version: str | None
    score: float | None
    created_at: str
    classes: np.ndarray | None = None


@dataclass(frozen=True)
class SnapshotAnnotation:
    """An annotation (submitted or skipped) with its class map (None: nothing painted)."""

    id: int
    task: int
    annotator: str | None
    created_at: str
    updated_at: str
    lead_time: float | None
    was_cancelled: bool
    parent_prediction: int | None = None
    classes: np.ndarray | None = None
    unknown_labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class QuestionnaireAnswer:
    """One submitted questionnaire: control name -> rating (int), choices (list) or text (str)."""

    id: int
    task: int
    annotator: str | None
    created_at: str
    lead_time: float | None
    answers: dict[str, Any]
    session_key: str | None = None


@dataclass(frozen=True)
class Snapshot:
    """A project's records for the tracking analysis (see the module docstring)."""

    project_id: int
    title: str
    from_name: str
    classes: tuple[str, ...]
    tasks: tuple[SnapshotTask, ...]
    predictions: tuple[SnapshotPrediction, ...]
    annotations: tuple[SnapshotAnnotation, ...]
    served_versions: tuple[str, ...] = ()
    questionnaire: tuple[QuestionnaireAnswer, ...] = ()
    captured_at: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def task(self, task_id: int) -> SnapshotTask:
        """The task with this id.

        Raises:
            KeyError: if the snapshot has no such task.
        """
        for task in self.tasks:
            if task.id == task_id:
                return task
        raise KeyError(f"task {task_id} is not in the snapshot of project {self.project_id}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (class maps as base64 PNG)."""

        def maybe(classes: np.ndarray | None) -> str | None:
            return None if classes is None else encode_map(classes)

        return {
            "format": FORMAT,
            "version": VERSION,
            "captured_at": self.captured_at,
            "project": {"id": self.project_id, "title": self.title, "from_name": self.from_name},
            "classes": list(self.classes),
            "served_versions": list(self.served_versions),
            "tasks": [{**vars(t), "shape": list(t.shape) if t.shape else None} for t in self.tasks],
            "predictions": [{**vars(p), "classes": maybe(p.classes)} for p in self.predictions],
            "annotations": [
                {**vars(a), "classes": maybe(a.classes), "unknown_labels": list(a.unknown_labels)}
                for a in self.annotations
            ],
            "questionnaire": [vars(q) for q in self.questionnaire],
            "extra": self.extra,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "snapshot") -> Snapshot:
        """Rebuild a snapshot from :meth:`to_dict`'s output.

        Raises:
            ValueError: naming ``source`` if the format, version or a field is wrong.
        """
        if not isinstance(data, Mapping) or data.get("format") != FORMAT:
            raise ValueError(f"{source} is not a scrAiber tracking snapshot (no format {FORMAT!r})")
        if data.get("version") != VERSION:
            raise ValueError(f"{source} has snapshot version {data.get('version')!r}; this scrAiber reads {VERSION}")

        def maybe(text: str | None) -> np.ndarray | None:
            return None if text is None else decode_map(text)

        try:
            project = data["project"]
            return cls(
                project_id=int(project["id"]),
                title=str(project["title"]),
                from_name=str(project["from_name"]),
                classes=tuple(data["classes"]),
                served_versions=tuple(data.get("served_versions") or ()),
                tasks=tuple(
                    SnapshotTask(**{**t, "shape": tuple(t["shape"]) if t.get("shape") else None}) for t in data["tasks"]
                ),
                predictions=tuple(
                    SnapshotPrediction(**{**p, "classes": maybe(p["classes"])}) for p in data["predictions"]
                ),
                annotations=tuple(
                    SnapshotAnnotation(
                        **{**a, "classes": maybe(a["classes"]), "unknown_labels": tuple(a.get("unknown_labels") or ())}
                    )
                    for a in data["annotations"]
                ),
                questionnaire=tuple(QuestionnaireAnswer(**q) for q in data.get("questionnaire") or ()),
                captured_at=str(data.get("captured_at", "")),
                extra=dict(data.get("extra") or {}),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{source} is missing or has a bad field: {exc}") from None

    def save(self, path: str | Path) -> Path:
        """Write the snapshot as JSON (compact, one line per record)."""
        path = Path(path)
        data = self.to_dict()
        lines = ["{"]
        items = list(data.items())
        for i, (key, value) in enumerate(items):
            comma = "," if i < len(items) - 1 else ""
            if isinstance(value, list) and value and isinstance(value[0], dict):
                rows = ",\n".join("  " + json.dumps(v, separators=(",", ":")) for v in value)
                lines.append(f"{json.dumps(key)}: [\n{rows}\n]{comma}")
            else:
                lines.append(f"{json.dumps(key)}: {json.dumps(value, separators=(',', ':'))}{comma}")
        lines.append("}")
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Snapshot:
        """Read a snapshot written by :meth:`save`.

        Raises:
            OSError: if the file cannot be read or is not JSON.
            ValueError: if it is not a snapshot of this version.
        """
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise OSError(f"snapshot {path} is not valid JSON ({exc})") from None
        return cls.from_dict(data, source=str(path))


def _float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _text(value: Any) -> str | None:
    return str(value).strip() or None if value is not None else None


def _annotator(user: Any, key: bytes) -> str | None:
    try:
        return pseudonym(user, key) if user is not None else None
    except ValueError:
        return None


def questionnaire_answer(annotation: Mapping[str, Any], task: Mapping[str, Any], key: bytes) -> QuestionnaireAnswer:
    """A questionnaire annotation as control name -> rating (int), choices (list of str) or text (str)."""
    answers: dict[str, Any] = {}
    for region in annotation.get("result") or []:
        value = region.get("value") or {}
        name = str(region.get("from_name"))
        kind = str(region.get("type", "")).lower()
        if kind == "rating" and "rating" in value:
            answers[name] = int(value["rating"])
        elif kind == "choices":
            answers[name] = [str(c) for c in value.get("choices") or []]
        elif kind == "textarea":
            answers[name] = "\n".join(str(t) for t in value.get("text") or [])
    return QuestionnaireAnswer(
        id=int(annotation["id"]),
        task=int(task["id"]),
        annotator=_annotator(annotation.get("completed_by"), key),
        created_at=str(annotation["created_at"]),
        lead_time=_float(annotation.get("lead_time")),
        answers=answers,
        session_key=(task.get("data") or {}).get("session_key"),
    )


def capture_questionnaire(
    client: LabelStudioClient, key: bytes, title: str = QUESTIONNAIRE_PROJECT
) -> list[QuestionnaireAnswer]:
    """Submitted answers of the questionnaire project ``title`` (none if it does not exist)."""
    project = client.find_project_by_title(title)
    if project is None:
        return []
    answers = []
    for listed in client.list_tasks(int(project["id"])):
        task = client.get_task(int(listed["id"]))
        for annotation in task.get("annotations") or []:
            if not annotation.get("was_cancelled"):
                answers.append(questionnaire_answer(annotation, task, key))
    return sorted(answers, key=lambda a: a.id)


def capture(
    client: LabelStudioClient,
    project_id: int,
    catalogue: Catalogue,
    key: bytes,
    questionnaire_title: str | None = QUESTIONNAIRE_PROJECT,
) -> Snapshot:
    """Read a project from Label Studio into a :class:`Snapshot`.

    Args:
        client: Client of a user who sees every annotation of the project (an administrator).
        project_id: The project.
        catalogue: The mineral catalogue (class indices of the maps).
        key: Pseudonym key (the backend's, so pseudonyms match the harvest log).
        questionnaire_title: Title of the questionnaire project to read answers from (None: none).

    Raises:
        LabelConfigError: if the project has no BrushLabels control for the catalogue.
        LabelStudioError: if Label Studio fails.
    """
    project = client.get_project(project_id)
    target = control_target(project["label_config"], catalogue)
    served = sorted({str(b["model_version"]) for b in client.list_ml_backends(project_id) if b.get("model_version")})
    tasks, predictions, annotations = [], [], []
    for listed in client.list_tasks(project_id):
        task = client.get_task(int(listed["id"]))
        task_id = int(task["id"])
        task_annotations = [a for a in task.get("annotations") or [] if isinstance(a, Mapping)]
        task_predictions = client.task_predictions(task_id)
        shapes = {
            s
            for s in (
                result_shape(r.get("result") or [], target.from_name) for r in [*task_annotations, *task_predictions]
            )
            if s is not None
        }
        shape = shapes.pop() if len(shapes) == 1 else None
        for prediction in task_predictions:
            results = prediction.get("result") or []
            own = result_shape(results, target.from_name)
            predictions.append(
                SnapshotPrediction(
                    id=int(prediction["id"]),
                    task=task_id,
                    model_version=prediction.get("model_version"),
                    score=_float(prediction.get("score")),
                    created_at=str(prediction["created_at"]),
                    classes=regions_to_class_map(results, own, catalogue, target.from_name)[0] if own else None,
                )
            )
        for annotation in task_annotations:
            results = annotation.get("result") or []
            own = result_shape(results, target.from_name)
            classes, unknown = regions_to_class_map(results, own, catalogue, target.from_name) if own else (None, ())
            annotations.append(
                SnapshotAnnotation(
                    id=int(annotation["id"]),
                    task=task_id,
                    annotator=_annotator(annotation.get("completed_by"), key),
                    created_at=str(annotation["created_at"]),
                    updated_at=str(annotation["updated_at"]),
                    lead_time=_float(annotation.get("lead_time")),
                    was_cancelled=bool(annotation.get("was_cancelled")),
                    parent_prediction=annotation.get("parent_prediction"),
                    classes=classes,
                    unknown_labels=unknown,
                )
            )
        data = task.get("data") or {}
        tasks.append(
            SnapshotTask(
                id=task_id,
                image=data.get(target.value_key),
                truth=data.get("truth"),
                pixel_size_um=_float(data.get("pixel_size_um")),
                drafts=len(task.get("drafts") or []),
                shape=shape,
                igsn=_text(data.get("igsn")),
                sample=_text(data.get("sample")),
            )
        )
    return Snapshot(
        project_id=int(project_id),
        title=str(project.get("title", "")),
        from_name=target.from_name,
        classes=tuple(catalogue.names),
        tasks=tuple(sorted(tasks, key=lambda t: t.id)),
        predictions=tuple(sorted(predictions, key=lambda p: p.id)),
        annotations=tuple(sorted(annotations, key=lambda a: a.id)),
        served_versions=tuple(served),
        questionnaire=tuple(capture_questionnaire(client, key, questionnaire_title)) if questionnaire_title else (),
        captured_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
