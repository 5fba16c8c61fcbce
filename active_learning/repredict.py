"""Fresh pre-annotations for a project's open tasks after its model changed, posted to Label Studio.

Used after a fast-learner update and after a promotion: every open task (no annotation
yet) gets a prediction of the new version with its score, and the project's
``model_version`` is set to it, so the Data Manager's "Prediction score" column (which
averages only predictions of the project's version) shows the new scores and sorts by them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from ml_backend.label_studio import LabelStudioClient, LabelStudioError
from ml_backend.predictor import Predictor

log = logging.getLogger(__name__)


def _versions(task: dict) -> set[str]:
    """Model versions of a task's predictions (Label Studio joins them with commas on SQLite)."""
    versions = task.get("predictions_model_versions") or ""
    if isinstance(versions, str):
        versions = versions.split(",")
    return {v for v in versions if v} | {
        p["model_version"] for p in task.get("predictions") or () if isinstance(p, dict) and p.get("model_version")
    }


def repredict_open_tasks(client: LabelStudioClient, predictor: Predictor, project: int) -> int:
    """Predict and post every open task of ``project`` with the predictor's current model; returns how many.

    Tasks that already hold a prediction of that version are left alone; tasks whose
    prediction fails (e.g. an unreadable image) are logged and skipped.
    """
    details = client.get_project(project)
    config = details["label_config"]
    version = predictor.model_version(project)
    open_tasks = [task for task in client.list_tasks(project, full=True)
                  if not task.get("total_annotations") and version not in _versions(task)]  # fmt: skip
    posted = []
    for task, prediction in zip(open_tasks, predictor.predict(open_tasks, config, project)):
        if "result" in prediction:
            client.create_prediction(task["id"], prediction["result"], prediction["score"], prediction["model_version"])
            posted.append(task["id"])
            version = prediction["model_version"]
    if posted:
        drop_duplicate_predictions(client, project, version, posted)
    if details.get("model_version") != version:  # each PATCH makes Label Studio send a PROJECT_UPDATED webhook
        client.update_project(project, model_version=version)
    log.info("project %s: %d open tasks re-predicted with %s", project, len(posted), version)
    return len(posted)


def drop_duplicate_predictions(
    client: LabelStudioClient, project: int, version: str, task_ids: Iterable[int] | None = None
) -> int:
    """Keep one prediction of ``version`` per task (the first stored, lowest id); returns how many were deleted.

    Label Studio's "retrieve predictions" (which asks the backend) and the worker's re-prediction
    can predict the same task at once, and Label Studio stores whatever it is sent. Whoever posts
    last and then calls this sees every copy, and both keep the same one, so a race leaves one.
    The copies are read from one paged task listing (100 tasks per request), not per task.

    Args:
        client: Label Studio.
        project: The project.
        version: The model version whose copies are counted.
        task_ids: Only these tasks (default: all of the project's).
    """
    wanted = None if task_ids is None else set(task_ids)
    deleted = 0
    for task in client.list_tasks(project, full=True):
        if wanted is not None and task["id"] not in wanted:
            continue
        copies = sorted(p["id"] for p in task.get("predictions") or () if p.get("model_version") == version)
        for prediction_id in copies[1:]:
            try:
                client.delete_prediction(prediction_id)
                deleted += 1
            except LabelStudioError as exc:
                if exc.status_code != 404:  # 404: the other side deleted it first
                    raise
    if deleted:
        log.info("deleted %d duplicate predictions of %s", deleted, version)
    return deleted
