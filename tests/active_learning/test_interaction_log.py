"""The interaction log: refinement tracking rows with pseudonymised annotators."""

from __future__ import annotations

from sqlalchemy.exc import OperationalError

from active_learning.interaction_log import InteractionLog
from active_learning.pseudonyms import pseudonym
from ml_backend.refine import Interaction

KEY = b"k" * 32


def interaction(user: str | None, task: int = 5) -> Interaction:
    return Interaction(
        task_id=task, project_id=2, user=user, keypoints=3, negative_keypoints=1, strokes=0,
        classes=("Olivine", "Plagioclase"), latency_ms=412.5, cached=True, changed_fraction=0.125,
        height=512, width=768, model_version="unsupervised-abc+interactive",
    )  # fmt: skip


def test_rows_round_trip_with_pseudonyms_only(tmp_path):
    log = InteractionLog.from_url(f"sqlite:///{tmp_path / 'events.sqlite'}", KEY)
    log.record(interaction("42"))
    log.record(interaction(None, task=6))
    first, second = log.rows()
    assert first["annotator"] == pseudonym("42", KEY) and "42" not in first["annotator"]
    assert second["annotator"] is None
    assert {k: first[k] for k in ("project_id", "task_id", "keypoints", "negative_keypoints", "strokes", "classes")} == {
        "project_id": 2, "task_id": 5, "keypoints": 3, "negative_keypoints": 1, "strokes": 0,
        "classes": ["Olivine", "Plagioclase"],
    }  # fmt: skip
    assert (first["latency_ms"], first["cached"], first["changed_fraction"], first["height"], first["width"]) == (
        412.5, True, 0.125, 512, 768,
    )  # fmt: skip
    assert log.rows(project_id=3) == []


def test_a_database_error_does_not_fail_the_refinement(tmp_path, caplog, monkeypatch):
    log = InteractionLog.from_url(f"sqlite:///{tmp_path / 'events.sqlite'}", KEY)

    def broken():
        raise OperationalError("INSERT", {}, Exception("database is locked"))

    monkeypatch.setattr(log.engine, "begin", broken)
    log.record(interaction("42"))
    assert "interaction of task 5 not logged" in caplog.text
