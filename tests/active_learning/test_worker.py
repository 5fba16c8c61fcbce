"""The worker and the reconciler against an in-memory Label Studio: dispatch, retries, outages, exactly-once."""

import threading
import time

import numpy as np
import pytest
import sqlalchemy
from click.testing import CliRunner

from active_learning.event_log import EventLog
from active_learning.event_log import events as event_table
from active_learning.harvest import Harvester
from active_learning.harvest_log import SKIP, HarvestLog
from active_learning.reconcile import Reconciler
from active_learning.store import LocalArtefactStore
from active_learning.training_queue import TrainingQueue
from active_learning.worker import Worker, WorkerLease, is_transient
from label_config import load_catalogue
from ml_backend.label_map import control_target
from ml_backend.label_studio import LabelStudioError
from scraiber.cli import main
from scraiber.settings import Settings
from tests.active_learning.fake_label_studio import MINERALS_XML, FakeLabelStudio, brush_result

CATALOGUE = load_catalogue()
LABELS = control_target(MINERALS_XML, CATALOGUE).labels


def _mask(value: int) -> np.ndarray:
    mask = np.full((6, 6), 1, np.uint8)
    mask[1:3, 1:4] = value
    return mask


@pytest.fixture
def setup(tmp_path):
    ls = FakeLabelStudio()
    project = ls.add_project()
    task = ls.add_task(project)
    ls.add_prediction(task, brush_result(_mask(4), LABELS))
    events = EventLog.from_url(f"sqlite:///{tmp_path / 'events.sqlite'}")
    harvests = HarvestLog(events.engine)
    harvester = Harvester(ls, LocalArtefactStore(tmp_path / "artefacts"), harvests, CATALOGUE, b"k" * 32)
    reconciler = Reconciler(ls, harvester, harvests)
    harvests.note_project(project, "setup")  # as the backend's /setup does when Label Studio connects it
    training = TrainingQueue(events.engine)
    worker = Worker(
        events, harvester, reconciler, training, WorkerLease(events.engine), 300.0, ls.whoami,
        poll_seconds=0.01, max_backoff=0.2,
    )  # fmt: skip
    return {
        "ls": ls, "project": project, "task": task, "events": events, "harvests": harvests,
        "training": training, "worker": worker, "reconciler": reconciler,
    }  # fmt: skip


def _event(action, annotation_id, project_id, **extra):
    return {"action": action, "annotation": {"id": annotation_id}, "project": {"id": project_id}, **extra}


def test_created_and_updated_events_harvest_each_version_once(setup):
    ls, events, harvests, worker = setup["ls"], setup["events"], setup["harvests"], setup["worker"]
    annotation = ls.annotate(setup["task"], brush_result(_mask(3), LABELS))
    created = _event("ANNOTATION_CREATED", annotation, setup["project"])
    assert events.record(created) is True
    assert events.record(created) is False  # the same delivery twice is stored once
    events.record({**created, "action": "ANNOTATION_UPDATED"})  # another event for the same version
    assert worker.drain() == 2
    assert len(harvests.records(include_superseded=True)) == 1
    ls.update(annotation, brush_result(_mask(5), LABELS))
    events.record({**created, "action": "ANNOTATION_UPDATED", "annotation": {"id": annotation, "v": 2}})
    worker.drain()
    history = harvests.records(include_superseded=True)
    assert len(history) == 2 and [r.active for r in history] == [False, True]
    assert history[1].stats["per_class"]["Fe-Ti oxide"]["relabelled_in"] == 6
    assert events.counts()["done"] == 3 and harvests.count_labels() == 1


def test_delete_events_retract_only_what_label_studio_deleted(setup):
    ls, events, harvests, worker = setup["ls"], setup["events"], setup["harvests"], setup["worker"]
    kept = ls.annotate(setup["task"], brush_result(_mask(3), LABELS))
    gone = ls.annotate(setup["task"], brush_result(_mask(2), LABELS))
    for annotation in (kept, gone):
        events.record(_event("ANNOTATION_CREATED", annotation, setup["project"]))
    worker.drain()
    ls.delete(gone)
    events.record({"action": "ANNOTATIONS_DELETED", "annotations": [{"id": kept}, {"id": gone}]})
    events.record({"action": "ANNOTATION_DELETED", "annotation": {"id": gone}})
    worker.drain()
    assert [r.annotation_id for r in harvests.records()] == [kept]
    assert [r.annotation_id for r in harvests.records(include_retracted=True) if r.retracted_at] == [gone]
    assert events.counts()["done"] == 4


def test_label_studio_down_keeps_events_pending_then_catches_up(setup):
    ls, events, harvests, worker = setup["ls"], setup["events"], setup["harvests"], setup["worker"]
    annotation = ls.annotate(setup["task"], brush_result(_mask(3), LABELS))
    events.record(_event("ANNOTATION_CREATED", annotation, setup["project"]))
    ls.down = True
    assert worker.step() is True  # claimed, failed on the outage, back to pending
    assert events.counts()["pending"] == 1
    calls = len(ls.calls)
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        assert worker.step() is False  # backing off: only probes Label Studio, claims nothing
        time.sleep(0.02)
    assert set(ls.calls[calls:]) == {"whoami"}
    assert events.counts() == {"pending": 1, "processing": 0, "done": 0, "ignored": 0, "failed": 0}
    assert events.list_events()[0].attempts == 1
    ls.down = False
    worker.drain(timeout=5)
    assert events.counts()["done"] == 1 and harvests.count_labels() == 1


def test_bad_payloads_are_refused_or_fail_and_are_parked_after_the_retries(setup):
    events, worker = setup["events"], setup["worker"]
    events.max_attempts = 3
    with pytest.raises(ValueError, match="annotation.id"):
        events.record({"action": "ANNOTATION_CREATED", "annotation": {"id": "not-a-number"}})
    # a bad event stored before the log checked payloads fails, then is parked
    bad = '{"action":"ANNOTATION_CREATED","annotation":{"id":"not-a-number"}}'
    with events.engine.begin() as connection:
        connection.execute(sqlalchemy.insert(event_table).values(
            delivery_key="old", action="ANNOTATION_CREATED", payload=bad, received_at=time.time(),
            status="pending", attempts=0,
        ))  # fmt: skip
    worker.drain(timeout=5)
    assert events.counts()["failed"] == 1
    [event] = events.list_events()
    assert event.attempts == 3


def test_start_training_is_recorded_once_per_event_and_trains_nothing(setup):
    events, training, worker = setup["events"], setup["training"], setup["worker"]
    events.record({"action": "START_TRAINING", "project": {"id": setup["project"]}})
    worker.drain()
    [event] = events.list_events()
    worker.dispatch(event)  # handled again (e.g. after a crash): still one request
    assert [(r.reason, r.project_id, r.event_id, r.status) for r in training.requests()] == [
        ("START_TRAINING", setup["project"], event.id, "pending"),
    ]
    assert training.count_runs() == 0


def test_event_claimed_by_a_dead_worker_is_taken_back_at_once(setup):
    ls, events, worker = setup["ls"], setup["events"], setup["worker"]
    annotation = ls.annotate(setup["task"], brush_result(_mask(3), LABELS))
    events.record(_event("ANNOTATION_CREATED", annotation, setup["project"]))
    orphan = events.claim()  # a worker claimed it and was SIGKILLed
    time.sleep(0.01)
    worker._acquired_at = time.time()  # a new worker took the lease afterwards
    assert worker.step() is True
    [event] = events.list_events()
    assert event.id == orphan.id and event.attempts == 2 and events.counts()["done"] == 1


def test_transient_failures_are_told_apart():
    assert is_transient(LabelStudioError("down", None))
    assert is_transient(LabelStudioError("busy", 503))
    assert is_transient(LabelStudioError("key revoked", 401))
    assert not is_transient(LabelStudioError("bad request", 400))
    assert not is_transient(ValueError("broken RLE"))


# -- the reconciler ---------------------------------------------------------------------


def test_reconciler_harvests_missed_annotations_and_retracts_deleted_ones(setup):
    ls, harvests, reconciler = setup["ls"], setup["harvests"], setup["reconciler"]
    first = ls.annotate(setup["task"], brush_result(_mask(3), LABELS))
    skipped = ls.annotate(ls.add_task(setup["project"]), [], was_cancelled=True)
    report = reconciler.run()
    assert (report.projects, report.annotations, report.harvested, report.retracted) == ([setup["project"]], 2, 2, 0)
    assert [r.kind for r in harvests.records(kind=SKIP)] == [SKIP] and harvests.count_labels() == 1
    again = reconciler.run()
    assert (again.harvested, again.retracted) == (0, 0)
    assert len(harvests.records(include_superseded=True, include_retracted=True)) == 2
    ls.update(first, brush_result(_mask(5), LABELS))
    ls.delete(skipped)
    third = reconciler.run()
    assert (third.harvested, third.retracted) == (1, 1)
    assert [r.annotation_id for r in harvests.records()] == [first]


def test_reconciler_retracts_everything_of_a_deleted_project(setup):
    ls, harvests, reconciler = setup["ls"], setup["harvests"], setup["reconciler"]
    ls.annotate(setup["task"], brush_result(_mask(3), LABELS))
    reconciler.run()
    for annotation_id in list(ls.annotations):
        ls.delete(annotation_id)
    del ls.projects[setup["project"]]
    report = reconciler.run()
    assert report.retracted == 1 and harvests.count_labels() == 0


def test_served_projects_are_those_that_called_this_backend(setup):
    ls, reconciler = setup["ls"], setup["reconciler"]
    elsewhere = ls.add_project()  # the minerals config, connected to another backend
    noted = ls.add_project(backend_version=None)
    setup["harvests"].note_project(noted, "annotation")
    assert reconciler.served_projects() == [setup["project"], noted]
    annotation = ls.annotate(ls.add_task(elsewhere), brush_result(_mask(3), LABELS))
    report = reconciler.run()
    assert elsewhere not in report.projects and annotation not in {r.annotation_id for r in setup["harvests"].records()}


def test_reconciler_stops_on_an_outage_and_the_worker_backs_off(setup):
    ls, worker = setup["ls"], setup["worker"]
    ls.down = True
    assert worker.reconcile() is False
    assert worker.step() is False  # paused
    ls.down = False
    time.sleep(0.25)
    assert worker.reconcile() is True


# -- the lease --------------------------------------------------------------------------


def test_one_worker_holds_the_lease(setup):
    engine = setup["events"].engine
    first, second = WorkerLease(engine, ttl=0.2), WorkerLease(engine, ttl=0.2)
    assert first.acquire() and first.acquire()
    assert not second.acquire()
    time.sleep(0.3)  # the first stopped renewing
    assert second.acquire() and not first.acquire()
    second.release()
    assert first.acquire()


def test_lease_of_a_dead_process_on_this_host_is_taken_over_at_once(setup):
    engine = setup["events"].engine
    dead = WorkerLease(engine, ttl=600)
    assert dead.acquire()
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE worker_lease SET pid = 2147483646")  # a pid that does not exist
    assert WorkerLease(engine, ttl=600).acquire()


def test_run_loop_reconciles_at_start_handles_events_and_releases_the_lease(setup):
    ls, events, harvests, worker = setup["ls"], setup["events"], setup["harvests"], setup["worker"]
    missed = ls.annotate(setup["task"], brush_result(_mask(3), LABELS))  # its webhook never arrived
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while harvests.current(missed) is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert harvests.current(missed) is not None
        assert not WorkerLease(events.engine).acquire()  # held by the running worker
        events.record({"action": "START_TRAINING", "project": {"id": setup["project"]}})
        while events.counts()["done"] < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert events.counts()["done"] == 1
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert WorkerLease(events.engine).acquire()  # released on stop


def test_worker_command_needs_an_api_key(tmp_path):
    settings = Settings(data_dir=tmp_path, label_studio_api_key=None)
    result = CliRunner().invoke(main, ["worker"], obj={"settings": settings})
    assert result.exit_code == 1
    assert "scraiber: error: the harvest worker needs LABEL_STUDIO_API_KEY" in result.output
