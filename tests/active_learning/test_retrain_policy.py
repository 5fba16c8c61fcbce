"""When a retraining cycle is due, and which tasks are held out for validation."""

from __future__ import annotations

import time

from active_learning.event_log import EventLog
from active_learning.harvest_log import LABEL, SKIP, HarvestLog, HarvestRecord
from active_learning.retrain import RetrainCycle, held_out_tasks
from active_learning.training_queue import TrainingQueue
from label_config import load_catalogue
from ml_backend.image_source import ImageSource
from scraiber.settings import Settings


def _cycle(tmp_path, **settings) -> RetrainCycle:
    config = Settings(SCRAIBER_DATA_DIR=tmp_path, **settings)
    engine = EventLog.from_url(config.resolved_event_log_url).engine
    return RetrainCycle(
        config, load_catalogue(), HarvestLog(engine), store=None, queue=TrainingQueue(engine), client=None,
        images=ImageSource(None), projects=list,
    )  # fmt: skip


def _label(cycle: RetrainCycle, annotation_id: int, kind: str = LABEL) -> None:
    cycle.harvests.add(
        HarvestRecord(annotation_id, f"2026-11-27T10:00:0{annotation_id}Z", 1, 100 + annotation_id, kind)
    )


def test_nothing_is_due_by_default(tmp_path):
    cycle = _cycle(tmp_path)
    _label(cycle, 1)
    assert cycle.due() is None


def test_start_training_request(tmp_path):
    cycle = _cycle(tmp_path)
    cycle.queue.request("START_TRAINING", 1, event_id=7)
    assert cycle.due() == "START_TRAINING"
    run = cycle.queue.start_run("START_TRAINING")
    assert [r.id for r in cycle.queue.take_requests(run)] == [1]
    assert cycle.due() is None
    off = _cycle(tmp_path / "off", SCRAIBER_RETRAIN_ON_START_TRAINING=False)
    off.queue.request("START_TRAINING", 1, event_id=8)
    assert off.due() is None


def test_every_n_new_labels_counts_labels_since_the_last_run(tmp_path):
    cycle = _cycle(tmp_path, SCRAIBER_RETRAIN_EVERY=2)
    _label(cycle, 1)
    _label(cycle, 2, SKIP)  # a skip is not a label
    assert cycle.due() is None
    _label(cycle, 3)
    assert cycle.due() == "2 new implicit labels"
    run = cycle.queue.start_run(cycle.due())
    cycle.queue.finish_run(run, "promoted", "scraiber-minerals-v2")
    assert cycle.due() is None
    time.sleep(0.01)
    _label(cycle, 4)
    _label(cycle, 5)
    assert cycle.due() == "2 new implicit labels"
    assert cycle.queue.count_runs() == 1
    assert cycle.queue.runs()[0]["status"] == "promoted"


def test_held_out_tasks_are_every_fifth_task_labelled_in_each_project():
    history = [HarvestRecord(i, "t", 1, 100 + i, LABEL) for i in range(12)]  # project 1: tasks 100..111
    history.insert(3, HarvestRecord(50, "t", 2, 500, LABEL))  # project 2's first task, between them
    history.insert(5, HarvestRecord(0, "t-edited", 1, 100, LABEL))  # an edit of task 100 takes no new place
    assert held_out_tasks(history) == {100, 105, 110, 500}
    assert held_out_tasks([]) == set()


def test_a_task_never_changes_sides(tmp_path):
    cycle = _cycle(tmp_path)
    for annotation in range(1, 7):  # tasks 101..106
        _label(cycle, annotation)

    def held() -> set[int]:
        return held_out_tasks(cycle.harvests.records(kind=LABEL, include_retracted=True, include_superseded=True))

    assert held() == {101, 106}
    cycle.harvests.retract(1)  # the first held-out annotation is deleted
    _label(cycle, 7)
    assert held() == {101, 106}  # task 107 does not move into its place, 102 stays a training task
