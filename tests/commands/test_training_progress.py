"""Retraining progress: run_training reports steps and validations, the cycle records phase, step,
ETA and validation in the database, and /status shows them while the cycle runs."""

from __future__ import annotations

import pytest

from active_learning.event_log import EventLog
from active_learning.retrain import CycleProgress
from active_learning.training import run_training
from active_learning.training_queue import TrainingQueue
from scraiber.commands.service import progress_printer
from scraiber.serve import status_counters
from tests.active_learning.test_training import tiny


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class _Served:
    version = "fcn-0123456789ab"
    champion = 3

    def __call__(self) -> _Served:
        return self


def _queue(tmp_path) -> tuple[EventLog, TrainingQueue]:
    events = EventLog.from_url(f"sqlite:///{tmp_path / 'events.sqlite'}")
    return events, TrainingQueue(events.engine)


def test_run_training_reports_every_step_and_each_validation(tmp_path):
    updates = []
    run_training(tiny(tmp_path, steps=4, val_every=2), progress=False, on_progress=updates.append)
    assert [u["step"] for u in updates] == [1, 2, 3, 4]
    assert all(u["steps"] == 4 and u["loss"] > 0 for u in updates)
    assert [("val_score" in u) for u in updates] == [False, True, False, True]


def test_cycle_progress_eta_and_status_while_training(tmp_path):
    events, queue = _queue(tmp_path)
    status = status_counters(events, _Served(), training=queue)
    assert status()["training"] is None and status()["registry_version"] == 3

    previous = queue.start_run("earlier")
    queue.finish_run(previous, "not-promoted", None)
    run = queue.start_run("START_TRAINING")
    clock, printed = _Clock(), []
    progress = CycleProgress(queue, run, observer=progress_printer(printed.append, clock=clock), every=2.0, clock=clock)
    progress.phase("validating the champion", steps=300)
    progress.phase("training", step=0, steps=300, champion_score=0.61)
    progress({"step": 1, "steps": 300, "loss": 0.9})  # the pace is measured from here
    clock.now += 10.0
    progress({"step": 11, "steps": 300, "loss": 0.7})  # 1 s per step: 289 s left
    clock.now += 1.0
    progress({"step": 12, "steps": 300, "loss": 0.69})  # within 2 s of the last record: not written
    training = status()["training"]
    assert (training["run"], training["status"], training["phase"]) == (run, "running", "training")
    assert (training["step"], training["steps"], training["loss"]) == (11, 300, pytest.approx(0.7))
    assert training["eta_s"] == pytest.approx(289.0)
    assert training["champion_score"] == pytest.approx(0.61) and training["val_score"] is None
    assert training["previous_s"] is not None and training["registered_as"] is None

    clock.now += 0.5
    progress({"step": 100, "steps": 300, "loss": 0.5, "val_score": 0.64, "best_score": 0.64})  # a validation: written
    assert status()["training"]["val_score"] == pytest.approx(0.64) and status()["training"]["step"] == 100
    assert printed[:2] == ["[retrain] validating the champion", "[retrain] training"]
    assert printed[-1].startswith("[retrain] step 100/300, loss 0.500, validation score 0.6400, about")

    queue.finish_run(run, "not-promoted", None)
    assert status()["training"]["status"] == "not-promoted"


def test_unknown_progress_fields_are_refused(tmp_path):
    _, queue = _queue(tmp_path)
    with pytest.raises(ValueError, match="unknown progress fields \\['speed'\\]"):
        queue.record_progress(queue.start_run("x"), "training", speed=3)
