"""The fast learner through a real Label Studio 1.23.2 and the real backend.

The expert's sample has a phase the model names wrongly everywhere (here: what the model
calls Plagioclase, the expert paints Clinopyroxene). After each corrected task the backend
harvests it, refits the project's fast learner, re-predicts the open tasks with it (the
prediction's ``model_version`` names the learner) and sets the project's ``model_version``
to it so the Data Manager sorts by the new scores. One tile, where plagioclase covers 9 %,
is too little evidence to ban a phase from the project (``reject_share_one_image``); after
the second the new pre-annotations follow the expert's naming.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from active_learning.reconcile import authorise_webhooks
from label_config import load_catalogue
from label_config.generate import CONFIG_DIR
from ml_backend.brush import mask_to_rle, rle_to_mask
from ml_backend.label_studio import LabelStudioClient
from ml_backend.synthetic import generate_section
from tests.fixtures.backend import running_backend

pytestmark = pytest.mark.slow
SIZE = 256
CAT = load_catalogue()
PLAG, CPX = CAT.index_of("Plagioclase"), CAT.index_of("Clinopyroxene")


def expert_truth(section) -> np.ndarray:
    truth = section.classes.copy()
    truth[truth == PLAG] = CPX
    return truth


def decoded(prediction: dict) -> np.ndarray:
    labels = np.full((SIZE, SIZE), 255, np.uint8)
    for region in prediction["result"]:
        labels[rle_to_mask(region["value"]["rle"], SIZE, SIZE)] = CAT.index_of(region["value"]["brushlabels"][0])
    return labels


@pytest.fixture(scope="module")
def backend(label_studio, tmp_path_factory):
    with running_backend(
        label_studio, tmp_path_factory.mktemp("fast-backend"), SCRAIBER_MODEL_POLL_SECONDS="1"
    ) as backend:
        yield backend


def correct(client: LabelStudioClient, task: int, section, prediction: dict) -> None:
    """Submit the expert's correction of ``prediction`` on ``task``."""
    truth = expert_truth(section)
    regions = [{"id": f"t{c}", "from_name": "minerals", "to_name": "image", "type": "brushlabels",
                "original_width": SIZE, "original_height": SIZE,
                "value": {"format": "rle", "rle": mask_to_rle(truth == c), "brushlabels": [CAT.names[c]]}}
               for c in np.unique(truth)]  # fmt: skip
    client.create_annotation(task, regions, lead_time=90.0, parent_prediction=prediction["id"])


def test_each_correction_updates_the_pre_annotations_of_every_open_task(label_studio, backend, tmp_path):
    client = LabelStudioClient(label_studio.url, label_studio.api_key, timeout=300)
    project = client.create_project("Fast learner", (CONFIG_DIR / "minerals.xml").read_text())["id"]
    sections = [generate_section(SIZE, seed) for seed in (301, 302, 303, 304)]
    paths = []
    for k, section in enumerate(sections):
        paths.append(tmp_path / f"field-{k}.png")
        Image.fromarray(section.image).save(paths[-1])
    tasks = client.upload_files(project, paths)
    client.connect_ml_backend(project, backend.url, "scrAiber", basic_auth=backend.auth)
    assert authorise_webhooks(client, project, backend.auth) == 1
    client.retrieve_predictions(project)
    fcn_version = backend.status()["model_version"]
    before = {task: client.task_predictions(task)[-1] for task in tasks}
    assert {p["model_version"] for p in before.values()} == {fcn_version}

    def learnt(open_tasks: list[int], not_version: str) -> dict | None:
        """The open tasks' latest predictions once all are of one new fast-learner version and the project's
        ``model_version`` is set to it (the worker sets it after posting the last one)."""
        latest = {t: client.task_predictions(t)[-1] for t in open_tasks}
        versions = {p["model_version"] for p in latest.values()}
        version = versions.pop() if len(versions) == 1 else ""
        done = f"+fast-p{project}-" in version and version != not_version
        return latest if done and client.get_project(project)["model_version"] == version else None

    correct(client, tasks[0], sections[0], before[tasks[0]])
    first = backend.wait(lambda: learnt(tasks[1:], ""), 300, "the open tasks' predictions by the fast learner")
    version = next(iter(first.values()))["model_version"]
    assert version.startswith(fcn_version + "+fast-")  # the project's model_version: the Data Manager scores it
    assert {p["model_version"] for p in client.task_predictions(tasks[0])} == {fcn_version}  # annotated: left alone

    correct(client, tasks[1], sections[1], first[tasks[1]])
    after = backend.wait(lambda: learnt(tasks[2:], version), 300, "the fast learner taught the second correction")
    for task, section in zip(tasks[2:], sections[2:]):
        wanted = expert_truth(section)
        old, new = decoded(before[task]), decoded(after[task])
        plag_area = section.classes == PLAG
        assert np.mean(new[plag_area] == CPX) > 0.6 > np.mean(old[plag_area] == CPX)
        assert np.mean(new == wanted) > np.mean(old == wanted) + 0.05
        assert 0.0 <= after[task]["score"] <= 1.0
