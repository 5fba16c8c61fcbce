"""One full active-learning cycle through a real Label Studio 1.23.2 and the real backend:

annotation -> webhook -> implicit label -> Start training -> fine-tune -> champion rule ->
promotion. With learning rate 0 the candidate keeps the shipped weights, so it keeps their
name and no task is predicted twice; re-prediction with a new version is tested with the
fast learner (test_fast_learner_server.py).
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from active_learning.reconcile import authorise_webhooks
from active_learning.retrain import held_out_tasks
from active_learning.training_queue import TrainingQueue
from label_config import load_catalogue
from label_config.generate import CONFIG_DIR
from ml_backend.brush import mask_to_rle
from ml_backend.label_studio import LabelStudioClient
from ml_backend.synthetic import generate_section
from tests.fixtures.backend import running_backend

pytestmark = pytest.mark.slow
SIZE = 192
# lr = 0 (and batch-norm statistics frozen, as cycles always fine-tune) keeps the weights equal
# to the champion's, so the candidate's validation mIoU equals the champion's on the same set
# ("not worse": promoted): the cycle's plumbing is tested deterministically; learning itself
# is measured by `scraiber bench active-learning` (with the fast learner; docs/active-learning.md).
TINY = """arch = "unet-mobilenet_v2"
steps = 4
val_every = 4
batch_size = 2
patch = 128
section_size = 128
patches_per_section = 2
val_sections = 1
val_size = 128
lr = 0.0
warmup_steps = 1
patience = 0
harvest_ratio = 0.5
amp = false
"""


@pytest.fixture(scope="module")
def backend(label_studio, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("cycle-backend")
    (data_dir / "tiny.toml").write_text(TINY)
    with running_backend(  # the fast learner would re-predict too: this test is about the FCN cycle alone
        label_studio,
        data_dir,
        SCRAIBER_RETRAIN_CONFIG=str(data_dir / "tiny.toml"),
        SCRAIBER_MODEL_POLL_SECONDS="1",
        SCRAIBER_FAST_LEARNER="false",
    ) as backend:
        yield backend


def test_full_cycle(label_studio, backend, tmp_path):
    catalogue = load_catalogue()
    client = LabelStudioClient(label_studio.url, label_studio.api_key, timeout=900)
    project = client.create_project("Active learning cycle", (CONFIG_DIR / "minerals.xml").read_text())
    sections, paths = [], []
    for seed in range(200, 206):
        sections.append(generate_section(SIZE, seed=seed))
        paths.append(tmp_path / f"field-{seed}.png")
        Image.fromarray(sections[-1].image).save(paths[-1])
    task_ids = client.upload_files(project["id"], paths)
    client.connect_ml_backend(project["id"], backend.url, "scrAiber", basic_auth=backend.auth)
    assert authorise_webhooks(client, project["id"], backend.auth) == 1
    client.retrieve_predictions(project["id"])
    first_version = backend.status()["model_version"]
    assert first_version.startswith("fcn-")  # the shipped model: no champion yet

    # the expert corrects three tasks: the first labelled is held out, the cycle trains on two
    annotated = task_ids[:3]
    for task_id in annotated:
        truth = sections[task_ids.index(task_id)].classes
        (prediction,) = client.task_predictions(task_id)
        regions = [
            {"id": f"truth-{c}", "from_name": "minerals", "to_name": "image", "type": "brushlabels",
             "original_width": SIZE, "original_height": SIZE,
             "value": {"format": "rle", "rle": mask_to_rle(truth == c), "brushlabels": [catalogue.names[c]]}}
            for c in np.unique(truth)
        ]  # fmt: skip
        client.create_annotation(task_id, regions, lead_time=60.0, parent_prediction=prediction["id"])
    # (the shared Label Studio holds other modules' projects too: count this project's labels)
    harvests = backend.harvests()
    backend.wait(lambda: len(harvests.records(project=project["id"])) == len(annotated), 120, "the implicit labels")
    history = harvests.records(project=project["id"], include_retracted=True, include_superseded=True)
    assert held_out_tasks(history) == {history[0].task_id} and history[0].task_id in annotated
    assert backend.status()["implicit_labels"] >= len(annotated)

    (ml_backend,) = client.list_ml_backends(project["id"])
    client.train_ml_backend(ml_backend["id"])
    backend.wait(lambda: backend.status()["training_runs"] >= 1, 60, "a training run to start")
    # v1 is the shipped baseline the cycle registers, v2 the candidate; lr = 0 keeps the weights, so
    # the candidate is named like the shipped model (names follow the weights) but is promoted
    queue = TrainingQueue(backend.events().engine)
    runs = backend.wait(lambda: [r for r in queue.runs() if r["finished_at"]], 900, "the training run to end")
    assert runs[0]["status"] == "promoted" and runs[0]["model_version"] == "scraiber-minerals v2"
    assert backend.status()["model_version"] == first_version

    # the promoted candidate has the shipped weights: same name, so no task is predicted again
    for task_id in task_ids:
        assert [p["model_version"] for p in client.task_predictions(task_id)] == [first_version]
