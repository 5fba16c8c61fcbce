"""Audits: the uniform keyed draw, calibration from reviews, and the review project on a real Label Studio."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from active_learning.audit import AuditPair, AuditWorkflow, audited, calibration_table, fit_calibration, state_key
from active_learning.calibration import CALIBRATION_KEY, CalibrationModel
from active_learning.corrections import NOTHING
from active_learning.harvest import label_keys
from active_learning.harvest_log import LABEL, HarvestLog, HarvestRecord
from active_learning.store import open_store
from label_config import load_catalogue
from label_config.generate import CONFIG_DIR
from scraiber.settings import Settings
from tests.active_learning.fake_label_studio import brush_result

CATALOGUE = load_catalogue()
LABELS = dict(enumerate(CATALOGUE.names))


def test_audit_draw_is_uniform_keyed_and_deterministic():
    chosen = [audited(i, b"key", 0.07) for i in range(20_000)]
    assert 0.06 < np.mean(chosen) < 0.08
    assert chosen == [audited(i, b"key", 0.07) for i in range(20_000)]
    assert chosen != [audited(i, b"other", 0.07) for i in range(20_000)]
    assert not any(audited(i, b"key", 0.0) for i in range(100)) and all(audited(i, b"key", 1.0) for i in range(100))
    with pytest.raises(ValueError, match="rate"):
        audited(1, b"key", 1.5)


def _pair(annotation_id: int, rng: np.random.Generator, annotator: str) -> AuditPair:
    """A submission that corrected a block; the review disagrees on a band along the block's edge."""
    predicted = np.zeros((32, 32), np.uint8)
    label = predicted.copy()
    label[8:24, 8:24] = 4
    reviewed = label.copy()
    reviewed[8:10, 8:24] = 0  # the expert's boundary was off by 2 px
    reviewed[rng.integers(0, 32, 20), rng.integers(0, 32, 20)] = 3
    record = HarvestRecord(annotation_id=annotation_id, updated_at="t", project_id=1, task_id=annotation_id,
                           kind=LABEL, annotator=annotator, lead_time=30.0)  # fmt: skip
    return AuditPair(record, predicted, label, reviewed)


def test_calibration_from_reviews_learns_where_labels_are_wrong():
    rng = np.random.default_rng(0)
    pairs = [_pair(i, rng, "u-a" if i % 2 else "u-b") for i in range(6)]
    table = calibration_table(pairs, len(CATALOGUE))
    assert table["correct"].size == 6 * 32 * 32 and set(np.unique(table["annotator"])) == {"u-a", "u-b"}
    model = fit_calibration(pairs, len(CATALOGUE))
    features = {k: v for k, v in table.items()}
    confidence = model.predict(features)
    near_edge = (table["edited"] == 1) & (table["log_distance_to_boundary"] < np.log1p(2.5))
    assert confidence[near_edge].mean() < confidence[table["edited"] == 0].mean()
    with pytest.raises(ValueError, match="two reviewed"):
        fit_calibration(pairs[:1], len(CATALOGUE))


@pytest.mark.slow
def test_review_project_round_trip_on_label_studio(label_studio, tmp_path):
    """Submissions -> review project with the first expert's regions -> reviews -> calibration model -> harvest uses it."""
    client = label_studio.client
    project = client.create_project("Audited sample", (CONFIG_DIR / "minerals.xml").read_text())
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"field-{i}.png")
        Image.fromarray((np.arange(32 * 32).reshape(32, 32) % 251).astype(np.uint8)).save(paths[-1])
    tasks = client.upload_files(project["id"], paths)
    settings = Settings(_env_file=None, data_dir=tmp_path / "data")
    store = open_store(settings.resolved_artefact_uri, settings)
    harvests = HarvestLog.from_url(f"sqlite:///{tmp_path / 'events.db'}")
    rng = np.random.default_rng(0)
    for k, task in enumerate(tasks):
        pair = _pair(0, rng, f"u-{k}")
        prediction = client.create_prediction(task, brush_result(pair.predicted, LABELS), 0.5, "fcn-test")
        annotation = client.create_annotation(task, brush_result(pair.label, LABELS), lead_time=30.0,
                                              parent_prediction=prediction["id"])  # fmt: skip
        key = label_keys(project["id"], task, annotation["id"])[0]
        store.put_arrays(key, {"label": pair.label, "confidence": np.ones(pair.label.shape, np.float16)})
        harvests.add(HarvestRecord(annotation_id=annotation["id"], updated_at=annotation["updated_at"],
                                   project_id=project["id"], task_id=task, kind=LABEL, annotator=f"u-{k}",
                                   prediction_id=prediction["id"], lead_time=30.0, label_key=key))  # fmt: skip
    workflow = AuditWorkflow(client, harvests, store, CATALOGUE, b"key", rate=1.0)
    created = workflow.sync(project["id"])
    assert len(created) == 3 and workflow.sync(project["id"]) == []  # each submission is sent once
    review = workflow.review_project(project["id"])
    assert client.get_project(review)["title"] == "Audited sample (audit)"
    assert client.list_ml_backends(review) == []  # never connected: reviews are not harvested as labels
    review_task = client.get_task(created[0])
    assert review_task["data"]["audit_of"]["project"] == project["id"]
    shown = client.task_predictions(created[0])
    assert shown and shown[0]["result"][0]["value"]["brushlabels"]  # the first expert's regions to review
    state = store.get_json(state_key(project["id"]))
    for review_task_id in created:
        client.create_annotation(review_task_id, brush_result(_pair(0, rng, "x").reviewed, LABELS), lead_time=20.0)
    pairs = workflow.collect(project["id"])
    assert len(pairs) == 3 and len(state["sent"]) == 3
    assert (pairs[0].predicted == 0).all() and (pairs[0].label[8:10, 8:24] == 4).all()
    assert not (pairs[0].reviewed[8:10, 8:24] == 4).any()  # the reviewer moved the boundary
    model = fit_calibration(pairs, len(CATALOGUE))
    store.put_json(CALIBRATION_KEY, model.to_dict())
    assert CalibrationModel.from_dict(store.get_json(CALIBRATION_KEY)).fitted_on["groups"] == 3
    assert not (pairs[0].label == NOTHING).any()
