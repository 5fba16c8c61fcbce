"""Re-predicting open tasks on a real Label Studio: a race with Label Studio's own "retrieve predictions"
leaves one prediction per task and version."""

from __future__ import annotations

from typing import Any

import pytest

from active_learning.repredict import drop_duplicate_predictions, repredict_open_tasks
from label_config.generate import CONFIG_DIR

pytestmark = pytest.mark.slow  # starts a real Label Studio


class RacingPredictor:
    """Predicts every task with ``version``; while it works, Label Studio's "retrieve predictions" (here:
    a direct POST) stores a prediction of the same version for each task, as it did in `scraiber up`."""

    def __init__(self, client: Any, version: str) -> None:
        self.client = client
        self.version = version

    def model_version(self, project: int) -> str:
        return self.version

    def predict(self, tasks: list[dict], config: str, project: int) -> list[dict]:
        for task in tasks:
            self.client.create_prediction(task["id"], [], 0.25, self.version)
        return [{"result": [], "score": 0.75, "model_version": self.version} for _ in tasks]


def test_a_task_predicted_twice_at_once_keeps_the_first_prediction_only(label_studio):
    client = label_studio.client
    project = client.create_project("Re-predicted while retrieved", (CONFIG_DIR / "minerals.xml").read_text())["id"]
    tasks = client.import_tasks(project, [{"image": f"/data/upload/none-{i}.png"} for i in range(2)])
    older = client.create_prediction(tasks[0], [], 0.5, "fcn-older")

    assert repredict_open_tasks(client, RacingPredictor(client, "fcn-new"), project) == 2

    for task in tasks:
        kept = [p for p in client.task_predictions(task) if p["model_version"] == "fcn-new"]
        assert [p["score"] for p in kept] == [0.25]  # the first stored copy, not the worker's
    assert older["id"] in {p["id"] for p in client.task_predictions(tasks[0])}  # other versions untouched
    assert client.get_project(project)["model_version"] == "fcn-new"
    assert drop_duplicate_predictions(client, project, "fcn-new") == 0  # idempotent: the other side finds nothing
