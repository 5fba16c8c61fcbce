"""Webhook storage cannot be abused: only the fields the harvest needs are stored (real SQLite)."""

from __future__ import annotations

import json

import pytest

from active_learning.event_log import MAX_EVENT_BYTES, MAX_IDS_PER_EVENT, EventLog, harvest_fields


@pytest.fixture
def log(tmp_path) -> EventLog:
    return EventLog.from_url(f"sqlite:///{tmp_path / 'events.sqlite'}")


def test_a_50_mb_webhook_stores_its_ids_only(log, tmp_path):
    regions = [{"value": {"rle": list(range(1000))}}] * 5000  # about 25 MB of JSON
    payload = {"action": "ANNOTATION_UPDATED", "annotation": {"id": 7, "updated_at": "2026-01-02T03:04:05Z",
               "result": regions, "task": 3}, "task": {"id": 3, "data": {"image": "x" * 10**6}},
               "project": {"id": 2, "label_config": "<View/>" * 10**5}}  # fmt: skip
    assert log.record(payload) is True
    [event] = log.list_events()
    assert event.payload == {"action": "ANNOTATION_UPDATED", "project": {"id": 2}, "task": {"id": 3},
                             "annotation": {"id": 7, "updated_at": "2026-01-02T03:04:05Z"}}  # fmt: skip
    assert log.record(payload) is False  # the same delivery again
    assert log.record({**payload, "annotation": {**payload["annotation"], "updated_at": "later"}}) is True


def test_a_bulk_delete_is_stored_in_parts(log):
    ids = list(range(1, 2 * MAX_IDS_PER_EVENT + 2))
    assert log.record({"action": "ANNOTATIONS_DELETED", "annotations": [{"id": i} for i in ids]}) is True
    parts = log.list_events()
    assert [len(e.payload["annotations"]) for e in parts] == [MAX_IDS_PER_EVENT, MAX_IDS_PER_EVENT, 1]
    assert [a["id"] for e in parts for a in e.payload["annotations"]] == ids
    assert all(len(json.dumps(e.payload)) <= MAX_EVENT_BYTES for e in parts)


@pytest.mark.parametrize(
    "payload",
    [
        {"action": "ANNOTATION_CREATED"},
        {"action": "ANNOTATION_CREATED", "annotation": {"id": "12a"}},
        {"action": "ANNOTATION_CREATED", "annotation": {"id": True}},
        {"action": "ANNOTATION_CREATED", "annotation": {"id": "\u0661\u0662"}},
        {"action": "ANNOTATION_CREATED", "annotation": {"id": 2**70}},
        {"action": "ANNOTATION_CREATED", "annotation": [1]},
        {"action": "ANNOTATIONS_DELETED", "annotations": []},
        {"action": "ANNOTATIONS_DELETED", "annotations": [{"id": 1}, {"id": "x"}]},
        {"action": ""},
        {"annotation": {"id": 1}},
    ],
)
def test_payloads_the_harvest_cannot_use_are_refused(log, payload):
    with pytest.raises(ValueError):
        log.record(payload)
    assert log.list_events() == []


def test_other_actions_keep_the_action_and_ids_only():
    assert harvest_fields({"action": "PROJECT_UPDATED", "project": {"id": "4", "title": "t" * 10**6}}) == [
        {"action": "PROJECT_UPDATED", "project": {"id": 4}}
    ]
    training = {"action": "START_TRAINING", "project": {"id": 4, "label_config": "<View/>"}, "requested_at": 5.0}
    assert harvest_fields(training) == [{"action": "START_TRAINING", "project": {"id": 4}, "requested_at": 5.0}]
