"""Snapshots (capture, JSON round trip) and snapshot harvesting, checked against the real Harvester."""

from __future__ import annotations

import json

import numpy as np
import pytest

from active_learning.harvest import Harvester
from active_learning.harvest_log import EMPTY, LABEL, SKIP, HarvestLog
from active_learning.store import LocalArtefactStore
from label_config import load_catalogue
from tests.active_learning.fake_label_studio import FakeLabelStudio, brush_result
from tracking_analysis.records import harvest_log_records, harvest_snapshot, records_of
from tracking_analysis.snapshot import Snapshot, capture, decode_map, encode_map

CATALOGUE = load_catalogue()
LABELS = {i: name for i, name in enumerate(CATALOGUE.names)}
KEY = b"snapshot-test-key-0123456789abcdef"


def test_class_map_png_round_trip():
    classes = np.array([[0, 1, 255], [5, 4, 3]], np.uint8)
    assert (decode_map(encode_map(classes)) == classes).all()
    with pytest.raises(ValueError, match="2-D uint8"):
        encode_map(classes.astype(np.int32))
    with pytest.raises(ValueError, match="not a base64 class-map PNG"):
        decode_map("bm90IGEgcG5n")


@pytest.fixture
def world(tmp_path):
    """A fake Label Studio project: a corrected task, an accepted task, a skip, an erased one, and one unpredicted."""
    ls = FakeLabelStudio()
    project = ls.add_project(backend_version="model-2")
    predicted = np.ones((8, 8), np.uint8)
    predicted[:3, :3] = 4  # olivine corner
    corrected = predicted.copy()
    corrected[:3, :3] = 2  # the expert calls it plagioclase
    corrected[7] = 255  # and erases the bottom row
    tasks = [ls.add_task(project) for _ in range(5)]
    ls.tasks[tasks[0]]["data"]["pixel_size_um"] = 2.5
    old = ls.add_prediction(tasks[0], brush_result(np.zeros((8, 8), np.uint8), LABELS), "model-1")
    first = ls.add_prediction(tasks[0], brush_result(predicted, LABELS), "model-2")
    second = ls.add_prediction(tasks[1], brush_result(predicted, LABELS), "model-2")
    third = ls.add_prediction(tasks[2], brush_result(predicted, LABELS), "model-2")
    fourth = ls.add_prediction(tasks[3], brush_result(predicted, LABELS), "model-2")
    ls.annotate(tasks[0], brush_result(corrected, LABELS), lead_time=42.0)  # found by served version
    ls.annotate(tasks[1], brush_result(predicted, LABELS), lead_time=3.0, parent_prediction=second, user=8)
    ls.annotate(tasks[2], [], lead_time=5.0, was_cancelled=True, parent_prediction=third)
    ls.annotate(tasks[3], [], lead_time=7.0, parent_prediction=fourth)  # everything erased
    ls.annotate(tasks[4], brush_result(corrected, LABELS), lead_time=None)  # painted from scratch
    return ls, project, tmp_path, (old, first, second, third, fourth)


def test_capture_and_harvest_agree_with_the_harvester(world):
    ls, project, tmp_path, (old, first, second, third, fourth) = world
    snapshot = capture(ls, project, CATALOGUE, KEY, questionnaire_title=None)
    assert [t.pixel_size_um for t in snapshot.tasks] == [2.5, None, None, None, None]
    assert [t.shape for t in snapshot.tasks] == [(8, 8)] * 4 + [(8, 8)]
    assert snapshot.served_versions == ("model-2",)
    assert [a.was_cancelled for a in snapshot.annotations] == [False, False, True, False, False]
    assert "petrologist@example.org" not in json.dumps(snapshot.to_dict())

    harvested = harvest_snapshot(snapshot)
    ours = records_of(harvested)
    assert [r.kind for r in ours] == [LABEL, LABEL, SKIP, EMPTY, LABEL]
    assert [r.prediction_id for r in ours] == [first, second, third, fourth, None]
    assert [r.prediction_rule for r in ours] == [
        "served_version",
        "parent_prediction",
        "parent_prediction",
        "parent_prediction",
        "none",
    ]
    assert ours[2].model_version == "model-2"  # a skip keeps the prediction it was shown
    assert ours[0].stats["per_class"]["Olivine"]["relabelled_out"] == 9 and ours[0].stats["edited_pixels"] == 17
    assert ours[1].stats["accepted_unchanged"] is True
    assert harvested[0].label is not None and harvested[0].confidence.dtype == np.float32
    assert (harvested[0].predicted[:3, :3] == 4).all() and harvested[2].label is None

    # the real harvester on the same Label Studio state writes the same records (skips aside)
    log = HarvestLog.from_url(f"sqlite:///{tmp_path / 'events.sqlite'}")
    harvester = Harvester(ls, LocalArtefactStore(tmp_path / "artefacts"), log, CATALOGUE, KEY)
    for annotation in snapshot.annotations:
        harvester.harvest(annotation.id)
    theirs = harvest_log_records(f"sqlite:///{tmp_path / 'events.sqlite'}", project)
    assert len(theirs) == len(ours)
    for a, b in zip(ours, theirs):
        same = ("annotation_id", "task_id", "kind", "annotator", "lead_time", "was_cancelled", "stats", "label_key")
        assert {k: getattr(a, k) for k in same} == {k: getattr(b, k) for k in same}
        if a.kind != SKIP:
            assert (a.prediction_id, a.prediction_rule, a.model_version) == (
                b.prediction_id,
                b.prediction_rule,
                b.model_version,
            )
    arrays = LocalArtefactStore(tmp_path / "artefacts").get_arrays(theirs[0].label_key)
    assert (arrays["label"] == harvested[0].label).all()
    assert np.allclose(arrays["confidence"], harvested[0].confidence, atol=1e-3)  # stored as float16


def test_snapshot_json_round_trip(world, tmp_path):
    ls, project, *_ = world
    snapshot = capture(ls, project, CATALOGUE, KEY, questionnaire_title=None)
    path = snapshot.save(tmp_path / "snap.json")
    again = Snapshot.load(path)
    assert again.to_dict() == snapshot.to_dict()
    assert records_of(harvest_snapshot(again)) == records_of(harvest_snapshot(snapshot))
    data = json.loads(path.read_text())
    with pytest.raises(ValueError, match="version 99"):
        Snapshot.from_dict({**data, "version": 99})
    with pytest.raises(ValueError, match="not a scrAiber tracking snapshot"):
        Snapshot.from_dict({"tasks": []})
    del data["tasks"]
    with pytest.raises(ValueError, match="missing or has a bad field: 'tasks'"):
        Snapshot.from_dict(data, "x.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(OSError, match="not valid JSON"):
        Snapshot.load(tmp_path / "broken.json")
