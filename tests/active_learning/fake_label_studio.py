"""An in-memory stand-in for :class:`ml_backend.label_studio.LabelStudioClient` (the harvest calls only).

Shapes follow what Label Studio 1.23.2 answers (checked against the real server): the
annotation API gives ``completed_by`` as an id, ``get_task`` lists annotations with skips
and ``completed_by`` as a user object, task lists carry annotation counts.
"""

from __future__ import annotations

import copy
import itertools
from datetime import UTC, datetime, timedelta

import numpy as np

from label_config.generate import CONFIG_DIR
from ml_backend.label_studio import LabelStudioError
from ml_backend.regions import class_map_to_regions

MINERALS_XML = (CONFIG_DIR / "minerals.xml").read_text()
OTHER_XML = '<View><Image name="img" value="$image"/><RectangleLabels name="box" toName="img"><Label value="Cat"/></RectangleLabels></View>'
EMAIL = "petrologist@example.org"


def brush_result(class_map: np.ndarray, labels: dict[int, str], from_name: str = "minerals") -> list[dict]:
    """One brushlabels region per class present in ``class_map`` (255 = nothing)."""
    return class_map_to_regions(class_map, labels, from_name, "image", id_prefix="r")


class FakeLabelStudio:
    """Projects, tasks, predictions and annotations in dicts; ``down = True`` simulates an outage."""

    def __init__(self) -> None:
        self.projects: dict[int, dict] = {}
        self.tasks: dict[int, dict] = {}
        self.predictions: dict[int, dict] = {}
        self.annotations: dict[int, dict] = {}
        self.backends: dict[int, list[dict]] = {}
        self.down = False
        self.calls: list[str] = []
        self._ids = itertools.count(1)
        self._tick = itertools.count(1)

    # -- building the world --------------------------------------------------------------

    def now(self) -> str:
        moment = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=next(self._tick))
        return moment.isoformat().replace("+00:00", "Z")

    def add_project(self, label_config: str = MINERALS_XML, backend_version: str | None = "model-1") -> int:
        project_id = next(self._ids)
        self.projects[project_id] = {"id": project_id, "title": f"p{project_id}", "label_config": label_config}
        self.backends[project_id] = [{"id": 1, "model_version": backend_version}] if backend_version else []
        return project_id

    def add_task(self, project_id: int) -> int:
        task_id = next(self._ids)
        self.tasks[task_id] = {"id": task_id, "project": project_id, "data": {"image": f"/data/upload/{task_id}.png"}}
        return task_id

    def add_prediction(self, task_id: int, result: list[dict], model_version: str = "model-1") -> int:
        prediction_id = next(self._ids)
        self.predictions[prediction_id] = {
            "id": prediction_id,
            "task": task_id,
            "project": self.tasks[task_id]["project"],
            "result": result,
            "model_version": model_version,
            "score": 0.5,
            "created_at": self.now(),
        }
        return prediction_id

    def annotate(
        self,
        task_id: int,
        result: list[dict],
        lead_time: float | None = 30.0,
        was_cancelled: bool = False,
        parent_prediction: int | None = None,
        user: int = 7,
    ) -> int:
        annotation_id = next(self._ids)
        stamp = self.now()
        self.annotations[annotation_id] = {
            "id": annotation_id,
            "result": result,
            "completed_by": user,
            "created_username": f" {EMAIL}, {user}",
            "was_cancelled": was_cancelled,
            "created_at": stamp,
            "updated_at": stamp,
            "lead_time": lead_time,
            "task": task_id,
            "project": self.tasks[task_id]["project"],
            "parent_prediction": parent_prediction,
        }
        return annotation_id

    def update(self, annotation_id: int, result: list[dict], lead_time: float | None = None) -> str:
        annotation = self.annotations[annotation_id]
        annotation["result"] = result
        annotation["updated_at"] = self.now()
        if lead_time is not None:
            annotation["lead_time"] = lead_time
        return annotation["updated_at"]

    def delete(self, annotation_id: int) -> None:
        del self.annotations[annotation_id]

    # -- the client API the harvester uses -----------------------------------------------

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if self.down:
            raise LabelStudioError("cannot reach Label Studio at http://fake: connection refused", None, "GET", name)

    @staticmethod
    def _missing(what: str) -> LabelStudioError:
        return LabelStudioError(f"Label Studio GET {what} failed with HTTP 404: Not found.", 404, "GET", what)

    def whoami(self) -> dict:
        self._call("whoami")
        return {"id": 1}

    def get_annotation(self, annotation_id: int) -> dict:
        self._call("get_annotation")
        if annotation_id not in self.annotations:
            raise self._missing(f"/api/annotations/{annotation_id}/")
        return copy.deepcopy(self.annotations[annotation_id])

    def get_project(self, project_id: int) -> dict:
        self._call("get_project")
        if project_id not in self.projects:
            raise self._missing(f"/api/projects/{project_id}/")
        return copy.deepcopy(self.projects[project_id])

    def list_projects(self) -> list[dict]:
        self._call("list_projects")
        return copy.deepcopy(list(self.projects.values()))

    def list_ml_backends(self, project_id: int) -> list[dict]:
        self._call("list_ml_backends")
        return copy.deepcopy(self.backends.get(project_id, []))

    def _task_annotations(self, task_id: int) -> list[dict]:
        return [a for a in self.annotations.values() if a["task"] == task_id]

    def list_tasks(self, project_id: int, full: bool = False) -> list[dict]:
        self._call("list_tasks")
        if project_id not in self.projects:
            raise self._missing(f"/api/projects/{project_id}/")
        return [
            {
                "id": task["id"],
                "project": project_id,
                "data": dict(task["data"]),
                "total_annotations": sum(not a["was_cancelled"] for a in self._task_annotations(task["id"])),
                "cancelled_annotations": sum(a["was_cancelled"] for a in self._task_annotations(task["id"])),
            }
            for task in self.tasks.values()
            if task["project"] == project_id
        ]

    def get_task(self, task_id: int) -> dict:
        self._call("get_task")
        if task_id not in self.tasks:
            raise self._missing(f"/api/tasks/{task_id}/")
        task = copy.deepcopy(self.tasks[task_id])
        annotations = copy.deepcopy(self._task_annotations(task_id))
        for annotation in annotations:
            annotation["completed_by"] = {"id": annotation["completed_by"], "email": EMAIL}
        task["annotations"] = annotations
        return task

    def task_predictions(self, task_id: int) -> list[dict]:
        self._call("task_predictions")
        return copy.deepcopy([p for p in self.predictions.values() if p["task"] == task_id])
