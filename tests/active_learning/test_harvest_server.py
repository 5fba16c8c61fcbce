"""Harvesting end to end: the real backend process (gunicorn + worker) against a real Label Studio 1.23.2.

The backend runs once for the module; the tests stop, restart and SIGKILL it, so they run in file order.
Label Studio sends its ML-backend webhooks without the basic auth the backend requires;
the tests add the header to the webhook (Settings > Webhooks in the UI) where a webhook must arrive.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from active_learning.harvest import label_keys
from active_learning.harvest_log import LABEL, SKIP
from active_learning.pseudonyms import load_or_create_key, pseudonym
from active_learning.reconcile import authorise_webhooks
from active_learning.training_queue import TrainingQueue
from label_config import load_catalogue
from label_config.generate import CONFIG_DIR
from ml_backend.brush import mask_to_rle, rle_to_mask
from ml_backend.synthetic import generate_section
from tests.fixtures.backend import Backend, running_backend

pytestmark = pytest.mark.slow
MINERALS_XML = (CONFIG_DIR / "minerals.xml").read_text()
CATALOGUE = load_catalogue()
SIZE = 96


@pytest.fixture(scope="module")
def backend(label_studio, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("harvest-backend")
    # only the reconciliation round at each start
    with running_backend(
        label_studio, data_dir, SCRAIBER_WEB_WORKERS="2", SCRAIBER_RECONCILE_SECONDS="3600"
    ) as backend:
        yield backend


def _project(label_studio, backend: Backend, title: str, seeds: list[int], folder: Path, authorize_webhook: bool):
    """A minerals project with synthetic fields, the backend connected, predictions retrieved."""
    client = label_studio.client
    project = client.create_project(title, MINERALS_XML)
    paths, truths = [], []
    for seed in seeds:
        section = generate_section(SIZE, seed=seed)
        path = folder / f"{title.replace(' ', '-')}-{seed}.png"
        Image.fromarray(section.image).save(path)
        paths.append(path)
        truths.append(section.classes)
    task_ids = client.upload_files(project["id"], paths)
    client.connect_ml_backend(project["id"], backend.url, "scrAiber", basic_auth=backend.auth)
    if authorize_webhook:
        assert authorise_webhooks(client, project["id"], backend.auth) == 1
    client.retrieve_predictions(project["id"])
    predictions = [client.task_predictions(task_id) for task_id in task_ids]
    assert all(len(p) == 1 for p in predictions), predictions
    return project["id"], task_ids, [p[0] for p in predictions], truths


def _decode(prediction: dict) -> np.ndarray:
    """The prediction's class map, decoded region by region (independently of the harvester)."""
    predicted = np.full((SIZE, SIZE), 255, np.uint8)
    for region in prediction["result"]:
        predicted[rle_to_mask(region["value"]["rle"], SIZE, SIZE)] = CATALOGUE.index_of(
            region["value"]["brushlabels"][0]
        )
    return predicted


def _result(class_map: np.ndarray) -> list[dict]:
    return [
        {
            "from_name": "minerals",
            "to_name": "image",
            "type": "brushlabels",
            "original_width": SIZE,
            "original_height": SIZE,
            "value": {"format": "rle", "rle": mask_to_rle(class_map == c), "brushlabels": [CATALOGUE.names[c]]},
        }
        for c in np.unique(class_map)
        if c != 255
    ]


def _correct(predicted: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Relabel the most predicted class, paint the truth into a square, erase a corner."""
    counts = np.bincount(predicted[predicted != 255], minlength=len(CATALOGUE))
    wrong = int(np.argmax(counts))
    right = (wrong + 2) % len(CATALOGUE)
    final = predicted.copy()
    final[predicted == wrong] = right
    final[24:56, 24:56] = truth[24:56, 24:56]
    final[80:90, 80:90] = 255
    return final, wrong, right


def _expected_confusion(predicted: np.ndarray, final: np.ndarray) -> list[list[int]]:
    k = len(CATALOGUE)
    rows = np.where(predicted == 255, k, predicted).astype(int)
    columns = np.where(final == 255, k, final).astype(int)
    confusion = np.zeros((k + 1, k + 1), int)
    np.add.at(confusion, (rows.ravel(), columns.ravel()), 1)
    return confusion.tolist()


def _annotation_events(backend: Backend, annotation_id: int) -> list[str]:
    return [
        e.action
        for e in backend.events().list_events()
        if (e.payload.get("annotation") or {}).get("id") == annotation_id
        or {"id": annotation_id} in (e.payload.get("annotations") or [])
    ]


# -- one harvest cycle through the real webhook ------------------------------------------


def test_webhook_to_implicit_label_update_and_delete(label_studio, backend, tmp_path):
    client = label_studio.client
    project_id, [task_id], [prediction], [truth] = _project(
        label_studio, backend, "Harvest cycle", [11], tmp_path, authorize_webhook=True
    )
    predicted = _decode(prediction)
    final, wrong, right = _correct(predicted, truth)
    annotation = client.create_annotation(task_id, _result(final), lead_time=42.0, parent_prediction=prediction["id"])
    harvests = backend.harvests()
    record = backend.wait(lambda: harvests.current(annotation["id"]), 90, "the implicit label")

    assert _annotation_events(backend, annotation["id"]) == ["ANNOTATION_CREATED"]  # it came by webhook
    assert (record.kind, record.project_id, record.task_id) == (LABEL, project_id, task_id)
    assert (record.prediction_id, record.prediction_rule) == (prediction["id"], "parent_prediction")
    assert record.model_version == prediction["model_version"] == backend.status()["model_version"]
    assert record.lead_time == 42.0 and record.updated_at == annotation["updated_at"]
    assert record.stats["confusion"] == _expected_confusion(predicted, final)
    name = CATALOGUE.names[wrong]
    outside = int(((predicted == wrong) & (final != wrong)).sum())
    assert record.stats["per_class"][name]["relabelled_out"] + record.stats["per_class"][name]["removed"] == outside
    assert record.stats["edited_pixels"] == int((predicted != final).sum())
    assert record.stats["labelled_pixels"] == int((final != 255).sum())

    arrays = backend.store().get_arrays(record.label_key)
    np.testing.assert_array_equal(arrays["label"], final)
    assert arrays["confidence"].dtype == np.float16
    assert (arrays["confidence"][(predicted != final) & (final != 255)] == 1).all()
    assert (arrays["confidence"][final == 255] == 0).all()
    key = load_or_create_key(backend.data_dir)
    user_id = annotation["completed_by"]
    assert record.annotator == pseudonym(user_id, key)
    provenance = backend.store().get_json(label_keys(project_id, task_id, annotation["id"])[1])
    assert label_studio.username not in json.dumps(provenance)
    assert provenance["image"] == client.get_task(task_id)["data"]["image"]
    assert backend.status()["implicit_labels"] >= 1

    # the expert edits the annotation: the new version replaces the label
    final[0:8, 0:8] = right
    answer = requests.patch(
        f"{label_studio.url}/api/annotations/{annotation['id']}/",
        json={"result": _result(final), "lead_time": 50.0},
        headers={"Authorization": f"Token {label_studio.api_key}"},
        timeout=30,
    )
    answer.raise_for_status()
    newer = backend.wait(
        lambda: (r := harvests.current(annotation["id"])) and r.updated_at != record.updated_at and r,
        90,
        "the updated label",
    )
    np.testing.assert_array_equal(backend.store().get_arrays(newer.label_key)["label"], final)
    assert [r.active for r in harvests.records(project=project_id, include_superseded=True)] == [False, True]

    # the annotation is deleted: the label is retracted, the records stay
    client.delete_annotation(annotation["id"])
    backend.wait(lambda: not harvests.records(project=project_id), 90, "retraction")
    assert [r.retracted_at is not None for r in harvests.records(project=project_id, include_retracted=True)] == [True]
    assert not backend.store().exists(newer.label_key)
    assert _annotation_events(backend, annotation["id"]) == [
        "ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_DELETED",
    ]  # fmt: skip


# -- reconciliation: what happened while the backend was down ----------------------------


def test_annotations_made_while_the_backend_is_down_are_harvested_once(label_studio, backend, tmp_path):
    client = label_studio.client
    project_id, task_ids, predictions, truths = _project(
        label_studio, backend, "Backend down", [21, 22, 23], tmp_path, authorize_webhook=True
    )
    harvests = backend.harvests()
    early_final, _, _ = _correct(_decode(predictions[2]), truths[2])
    early = client.create_annotation(task_ids[2], _result(early_final), lead_time=20.0)
    backend.wait(lambda: harvests.current(early["id"]), 90, "the label made while up")

    backend.process.stop()
    final, _, _ = _correct(_decode(predictions[0]), truths[0])
    labelled = client.create_annotation(
        task_ids[0], _result(final), lead_time=33.0, parent_prediction=predictions[0]["id"]
    )
    skipped = client.create_annotation(task_ids[1], [], lead_time=2.0, was_cancelled=True)
    client.delete_annotation(early["id"])
    backend.process.start()

    backend.wait(lambda: "reconciled" in backend.process.log_tail(400), 180, "reconciliation after the restart")
    assert harvests.current(labelled["id"]) and harvests.current(skipped["id"])
    assert harvests.current(early["id"]).retracted_at is not None
    for missed in (labelled, skipped):
        assert _annotation_events(backend, missed["id"]) == []  # Label Studio never re-sent them
    history = harvests.records(project=project_id, include_superseded=True, include_retracted=True)
    assert sorted((r.annotation_id, r.kind) for r in history) == sorted(
        [(early["id"], LABEL), (labelled["id"], LABEL), (skipped["id"], SKIP)]
    )
    record = harvests.current(labelled["id"])
    assert record.prediction_id == predictions[0]["id"] and record.lead_time == 33.0
    assert record.stats["confusion"] == _expected_confusion(_decode(predictions[0]), final)
    assert harvests.current(skipped["id"]).was_cancelled is True

    backend.restart()  # another full reconciliation: nothing is harvested twice
    backend.wait(lambda: "reconciled" in backend.process.log_tail(400), 180, "reconciliation after the restart")
    again = harvests.records(project=project_id, include_superseded=True, include_retracted=True)
    assert [(r.id, r.annotation_id, r.retracted_at is None) for r in again] == [
        (r.id, r.annotation_id, r.retracted_at is None) for r in history
    ]


# -- durability: SIGKILL in the middle of a burst -----------------------------------------

BURST = 300
SENDERS = 6
KILL_AFTER = 120
BURST_PROJECT = 10**6  # project ids of the burst events (no such projects in Label Studio)


def _burst_payload(i: int) -> dict:
    marker = {"project": {"id": BURST_PROJECT + i}}  # the event log stores ids only: the project id marks the event
    if i % 3 == 0:
        return {"action": "START_TRAINING", **marker}
    if i % 3 == 1:
        return {"action": "ANNOTATION_CREATED", "annotation": {"id": 10**8 + i}, **marker}  # not in Label Studio
    return {"action": "PROJECT_UPDATED", **marker}  # stored, ignored


def _send(backend: Backend, payload: dict) -> str:
    try:
        answer = requests.post(f"{backend.url}/webhook", json=payload, auth=backend.auth, timeout=15)
    except requests.RequestException:
        return "error"
    return answer.json()["status"] if answer.status_code == 200 else "error"


def test_sigkill_in_a_burst_loses_nothing_and_duplicates_nothing(backend):
    outcomes: dict[int, str] = {}
    lock = threading.Lock()
    acknowledged = threading.Event()
    work: queue.Queue[int] = queue.Queue()
    for i in range(BURST):
        work.put(i)

    def sender() -> None:
        while True:
            try:
                i = work.get_nowait()
            except queue.Empty:
                return
            outcome = _send(backend, _burst_payload(i))
            with lock:
                outcomes[i] = outcome
                if sum(o != "error" for o in outcomes.values()) >= KILL_AFTER:
                    acknowledged.set()

    threads = [threading.Thread(target=sender) for _ in range(SENDERS)]
    for thread in threads:
        thread.start()
    assert acknowledged.wait(120), backend.process.log_tail(40)
    os.killpg(backend.process.pid, signal.SIGKILL)  # gunicorn master, web workers and harvest worker
    for thread in threads:
        thread.join(60)
    backend.process.stop()  # reap
    before = dict(outcomes)
    acked_before = {i for i, o in before.items() if o != "error"}
    failed = sorted(i for i, o in before.items() if o == "error")

    backend.process.start()
    resent = {i: _send(backend, _burst_payload(i)) for i in failed}
    assert all(o in ("stored", "duplicate") for o in resent.values()), resent
    events = backend.events()
    backend.wait(
        lambda: (
            (s := backend.status())["queue_depth"] == 0
            and s["events_processed"] + s["events_failed"] == s["events_received"]
        ),
        180,
        "the worker to drain the log",
    )
    burst = range(BURST_PROJECT, BURST_PROJECT + BURST)
    mine = [e for e in events.list_events() if (e.payload.get("project") or {}).get("id") in burst]
    stored_ids = sorted(e.payload["project"]["id"] - BURST_PROJECT for e in mine)
    with events.engine.connect() as connection:
        status_of = dict(connection.exec_driver_sql("SELECT id, status FROM events").all())
    statuses = dict(Counter(status_of[e.id] for e in mine))
    trainings = [r for r in TrainingQueue(events.engine).requests() if r.project_id in burst]
    print(
        f"\nburst: sent {BURST}, acknowledged before SIGKILL {len(acked_before)}, failed {len(failed)} "
        f"(re-sent: {sum(o == 'stored' for o in resent.values())} stored, "
        f"{sum(o == 'duplicate' for o in resent.values())} duplicate), stored {len(mine)}, statuses {statuses}, "
        f"re-claimed after the kill {sum(e.attempts > 1 for e in mine)}"
    )
    assert stored_ids == list(range(BURST))  # every event exactly once, nothing lost
    assert acked_before <= set(stored_ids)
    assert statuses == {"done": 2 * BURST // 3, "ignored": BURST // 3}
    assert sorted(r.event_id for r in trainings) == sorted(e.id for e in mine if e.action == "START_TRAINING")
    assert len(trainings) == BURST // 3
    assert [r for r in backend.harvests().records(include_retracted=True) if r.project_id in burst] == []
