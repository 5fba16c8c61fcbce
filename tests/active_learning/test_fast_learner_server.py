"""The fast learner through a real Label Studio 1.23.2 and the real backend.

The expert's sample has a phase the model names wrongly everywhere (here: what the model
calls Plagioclase, the expert paints Clinopyroxene). One corrected task must be enough:
the backend harvests it, refits the project's fast learner, re-predicts the open tasks
with it (the prediction's ``model_version`` names the learner), sets the project's
``model_version`` to it so the Data Manager sorts by the new scores, and the new
pre-annotations follow the expert's naming.
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


def test_one_correction_updates_the_pre_annotations_of_every_open_task(label_studio, backend, tmp_path):
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

    truth = expert_truth(sections[0])
    regions = [{"id": f"t{c}", "from_name": "minerals", "to_name": "image", "type": "brushlabels",
                "original_width": SIZE, "original_height": SIZE,
                "value": {"format": "rle", "rle": mask_to_rle(truth == c), "brushlabels": [CAT.names[c]]}}
               for c in np.unique(truth)]  # fmt: skip
    client.create_annotation(tasks[0], regions, lead_time=90.0, parent_prediction=before[tasks[0]]["id"])

    def learnt() -> dict | None:
        latest = {t: client.task_predictions(t)[-1] for t in tasks[1:]}
        versions = {p["model_version"] for p in latest.values()}
        return latest if len(versions) == 1 and f"+fast-p{project}-" in versions.pop() else None

    after = backend.wait(learnt, 300, "the open tasks' predictions by the project's fast learner")
    version = next(iter(after.values()))["model_version"]
    assert version.startswith(fcn_version + "+fast-")
    assert client.get_project(project)["model_version"] == version  # the Data Manager scores this version
    assert {p["model_version"] for p in client.task_predictions(tasks[0])} == {fcn_version}  # annotated: left alone
    for task, section in zip(tasks[1:], sections[1:]):
        wanted = expert_truth(section)
        old, new = decoded(before[task]), decoded(after[task])
        plag_area = section.classes == PLAG
        assert np.mean(new[plag_area] == CPX) > 0.6 > np.mean(old[plag_area] == CPX)
        assert np.mean(new == wanted) > np.mean(old == wanted) + 0.05
        assert 0.0 <= after[task]["score"] <= 1.0
