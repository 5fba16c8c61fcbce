"""The durable event log: idempotent recording, claiming, retries, crash recovery."""

import threading
import time
import uuid

import pytest
import sqlalchemy

from active_learning.event_log import EventLog, delivery_key


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def database_url(request, tmp_path) -> str:
    """A fresh event-log database: SQLite (the default) or a real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'events.sqlite'}"
    server = request.getfixturevalue("postgres_url")
    name = f"events_{uuid.uuid4().hex[:12]}"
    with sqlalchemy.create_engine(server, isolation_level="AUTOCOMMIT").connect() as connection:
        connection.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    return server.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture
def log(database_url) -> EventLog:
    return EventLog.from_url(database_url)


def _annotation(i: int, action: str = "ANNOTATION_CREATED") -> dict:
    return {"action": action, "annotation": {"id": i, "result": []}, "task": {"id": 100 + i}}


def test_duplicate_delivery_is_stored_once(log):
    assert log.record(_annotation(1)) is True
    assert log.record(_annotation(1)) is False
    assert log.record(_annotation(1, "ANNOTATION_UPDATED")) is True
    assert log.counts()["pending"] == 2


def test_delivery_key_ignores_key_order():
    assert delivery_key({"a": 1, "b": {"c": 2, "d": 3}}) == delivery_key({"b": {"d": 3, "c": 2}, "a": 1})


def test_unknown_actions_are_recorded_and_ignored(log):
    log.record({"action": "PROJECT_UPDATED", "project": {"id": 1}})
    assert log.counts()["ignored"] == 1
    assert log.claim() is None


def test_payload_without_action_is_refused(log):
    with pytest.raises(ValueError, match="action"):
        log.record({"annotation": {}})


def test_claims_oldest_first_and_completes(log):
    for i in range(3):
        log.record(_annotation(i))
    claimed = [log.claim() for _ in range(3)]
    assert [e.payload["annotation"]["id"] for e in claimed] == [0, 1, 2]
    assert log.claim() is None
    for event in claimed:
        log.complete(event.id)
    assert log.counts()["done"] == 3


def test_event_of_a_dead_worker_is_claimed_again(log):
    log.record(_annotation(1))
    first = log.claim()
    assert log.claim(stale_after=60) is None  # still owned by a live worker
    time.sleep(0.05)
    again = log.claim(stale_after=0.01)
    assert again.id == first.id and again.attempts == 2


def test_failures_retry_then_park(log):
    log.max_attempts = 2
    log.record(_annotation(1))
    log.fail(log.claim(), "Label Studio unreachable")
    assert log.counts()["pending"] == 1
    log.fail(log.claim(), "Label Studio unreachable")
    assert log.counts()["failed"] == 1
    assert log.claim() is None


def test_concurrent_workers_never_share_an_event(database_url):
    url = database_url
    writer = EventLog.from_url(url)
    for i in range(60):
        writer.record(_annotation(i))
    taken: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        log = EventLog.from_url(url)  # own engine, as another process would have
        while (event := log.claim()) is not None:
            with lock:
                taken.append(event.id)
            log.complete(event.id)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken) == list(range(1, 61))


def test_survives_reopening(database_url):
    url = database_url
    EventLog.from_url(url).record(_annotation(5))
    reopened = EventLog.from_url(url)
    assert [e.payload["annotation"]["id"] for e in reopened.list_events()] == [5]


def test_one_annotation_version_delivered_twice_with_other_details_is_one_event(log):
    version = {"id": 7, "updated_at": "2026-12-07T04:58:34.797963Z"}
    project_webhook = {
        "action": "ANNOTATION_CREATED",
        "annotation": {**version, "result": []},
        "task": {"id": 3},
        "project": 1,
    }
    backend_webhook = {**project_webhook, "project": {"id": 1, "title": "x"}, "annotation": {**version, "lead_time": 2}}
    assert log.record(project_webhook) and not log.record(backend_webhook)
    updated = {**project_webhook, "annotation": {"id": 7, "updated_at": "2026-12-07T05:00:00Z"}}
    assert log.record(updated)  # a new version of the annotation is a new event
    assert log.record({"action": "START_TRAINING", "project": {"id": 1}, "requested_at": 1.0})
    assert log.record({"action": "START_TRAINING", "project": {"id": 1}, "requested_at": 2.0})
    assert log.record({"action": "PROJECT_UPDATED", "project": {"id": 1, "model_version": "a"}})
    assert not log.record({"action": "PROJECT_UPDATED", "project": {"id": 1, "model_version": "b"}})
    unversioned = {"action": "ANNOTATION_UPDATED", "annotation": {"id": 7}, "project": {"id": 1}}
    assert log.record({**unversioned, "n": 1}) and log.record({**unversioned, "n": 2})  # may be two updates
    assert len(log.list_events()) == 7
