"""Harvesting against an in-memory Label Studio: labels, provenance, pseudonyms, idempotency."""

import json
import os
import stat

import numpy as np
import pytest

from active_learning.corrections import NOTHING, compare
from active_learning.harvest import (
    GONE,
    HARVESTED,
    NOT_SERVED,
    UNCHANGED,
    Harvester,
    choose_prediction,
    derive,
    label_keys,
)
from active_learning.harvest_log import EMPTY, LABEL, SKIP, HarvestLog, HarvestRecord
from active_learning.pseudonyms import KEY_FILE, load_or_create_key, pseudonym, resolve_key
from active_learning.store import LocalArtefactStore
from label_config import load_catalogue
from ml_backend.label_map import control_target
from tests.active_learning.fake_label_studio import EMAIL, MINERALS_XML, OTHER_XML, FakeLabelStudio, brush_result

KEY = b"k" * 32
CATALOGUE = load_catalogue()
LABELS = control_target(MINERALS_XML, CATALOGUE).labels
N = NOTHING


def _maps():
    predicted = np.full((8, 10), 1, np.uint8)  # groundmass everywhere
    predicted[2:5, 2:6] = 4  # an olivine
    final = predicted.copy()
    final[2:5, 2:6] = 3  # the expert says: clinopyroxene
    final[6:8, 0:3] = N  # and erases a corner
    final[0, 9] = 5  # adds an oxide pixel
    return predicted, final


@pytest.fixture
def world(tmp_path):
    ls = FakeLabelStudio()
    project = ls.add_project()
    task = ls.add_task(project)
    predicted, final = _maps()
    prediction = ls.add_prediction(task, brush_result(predicted, LABELS))
    harvests = HarvestLog.from_url(f"sqlite:///{tmp_path / 'events.sqlite'}")
    store = LocalArtefactStore(tmp_path / "artefacts")
    harvester = Harvester(ls, store, harvests, CATALOGUE, KEY)
    return {
        "ls": ls, "project": project, "task": task, "prediction": prediction, "predicted": predicted,
        "final": final, "harvests": harvests, "store": store, "harvester": harvester,
    }  # fmt: skip


def test_harvest_stores_label_confidence_and_provenance(world):
    ls, predicted, final = world["ls"], world["predicted"], world["final"]
    annotation = ls.annotate(
        world["task"], brush_result(final, LABELS), lead_time=42.5, parent_prediction=world["prediction"]
    )
    outcome = world["harvester"].harvest(annotation)
    assert outcome.status == HARVESTED
    record = outcome.record
    assert (record.kind, record.project_id, record.task_id, record.annotation_id) == (
        LABEL, world["project"], world["task"], annotation,
    )  # fmt: skip
    assert (record.prediction_id, record.prediction_rule, record.model_version) == (
        world["prediction"], "parent_prediction", "model-1",
    )  # fmt: skip
    assert record.lead_time == 42.5 and record.was_cancelled is False
    expected = compare(predicted, final, len(CATALOGUE), 42.5)
    assert record.stats["confusion"] == expected.confusion.tolist()
    assert record.stats["per_class"]["Olivine"] == {
        "kept": 0, "added": 0, "removed": 0, "relabelled_out": 12, "relabelled_in": 0, "predicted": 12, "final": 0,
    }  # fmt: skip
    assert record.stats["per_class"]["Groundmass"]["removed"] == 6
    assert record.stats["per_class"]["Fe-Ti oxide"]["added"] == 0  # painted over groundmass: relabelled
    assert record.stats["per_class"]["Fe-Ti oxide"]["relabelled_in"] == 1
    npz_key, json_key = label_keys(world["project"], world["task"], annotation)
    assert record.label_key == npz_key
    arrays = world["store"].get_arrays(npz_key)
    np.testing.assert_array_equal(arrays["label"], final)
    assert arrays["label"].dtype == np.uint8 and arrays["confidence"].dtype == np.float16
    np.testing.assert_array_equal(arrays["confidence"], expected.confidence.astype(np.float16))
    provenance = world["store"].get_json(json_key)
    assert provenance["image"] == f"/data/upload/{world['task']}.png"
    assert provenance["annotator"] == record.annotator == pseudonym(7, KEY)
    assert provenance["stats"] == record.stats
    assert world["harvests"].count_labels() == 1


def test_no_raw_user_id_or_email_is_stored(world):
    ls = world["ls"]
    annotation = ls.annotate(world["task"], brush_result(world["final"], LABELS), user=123457)
    record = world["harvester"].harvest(annotation).record
    _, json_key = label_keys(world["project"], world["task"], annotation)
    stored = json.dumps(world["store"].get_json(json_key)) + json.dumps(record.__dict__)
    assert "123457" not in stored and EMAIL not in stored
    assert record.annotator == pseudonym(123457, KEY) == pseudonym({"id": 123457, "email": EMAIL}, KEY)


def test_same_version_twice_is_a_no_op(world):
    annotation = world["ls"].annotate(world["task"], brush_result(world["final"], LABELS))
    first = world["harvester"].harvest(annotation)
    again = world["harvester"].harvest(annotation)
    assert (first.status, again.status) == (HARVESTED, UNCHANGED)
    assert again.record.id == first.record.id
    assert len(world["harvests"].records(include_superseded=True, include_retracted=True)) == 1


def test_update_replaces_the_label_and_keeps_the_history(world):
    ls, harvests = world["ls"], world["harvests"]
    annotation = ls.annotate(world["task"], brush_result(world["final"], LABELS), parent_prediction=world["prediction"])
    first = world["harvester"].harvest(annotation).record
    corrected = world["final"].copy()
    corrected[6:8, 0:3] = 0  # the corner was epoxy after all
    ls.update(annotation, brush_result(corrected, LABELS), lead_time=80.0)
    second = world["harvester"].harvest(annotation)
    assert second.status == HARVESTED and second.record.updated_at > first.updated_at
    np.testing.assert_array_equal(world["store"].get_arrays(first.label_key)["label"], corrected)
    assert [r.id for r in harvests.records()] == [second.record.id]
    history = harvests.records(include_superseded=True)
    assert [r.id for r in history] == [first.id, second.record.id]
    assert history[0].superseded_at is not None and history[1].active
    assert harvests.count_labels() == 1
    assert second.record.stats["per_class"]["Epoxy"]["added"] == 0  # erased from groundmass: relabelled
    assert second.record.stats["per_class"]["Epoxy"]["relabelled_in"] == 6


def test_an_older_version_arriving_late_does_not_replace_the_newer(world):
    harvests = world["harvests"]
    base = HarvestRecord(annotation_id=9, updated_at="2026-01-01T00:00:10Z", project_id=1, task_id=2, kind=EMPTY)
    newer = harvests.add(base)
    older = harvests.add(HarvestRecord(**{**base.__dict__, "updated_at": "2026-01-01T00:00:05Z"}))
    assert older.superseded_at is not None
    assert harvests.current(9).id == newer.id
    assert harvests.add(base) is None


def test_delete_retracts_the_label_but_keeps_the_record(world):
    ls, harvests, store = world["ls"], world["harvests"], world["store"]
    annotation = ls.annotate(world["task"], brush_result(world["final"], LABELS))
    record = world["harvester"].harvest(annotation).record
    assert world["harvester"].retract_if_gone(annotation) is False  # still in Label Studio: nothing happens
    assert harvests.count_labels() == 1
    ls.delete(annotation)
    assert world["harvester"].retract_if_gone(annotation) is True
    assert harvests.count_labels() == 0 and harvests.records() == []
    kept = harvests.records(include_retracted=True)
    assert [r.id for r in kept] == [record.id] and kept[0].retracted_at is not None and kept[0].stats == record.stats
    assert not store.exists(record.label_key)
    assert not store.exists(label_keys(world["project"], world["task"], annotation)[1])
    assert world["harvester"].retract_if_gone(annotation) is True  # idempotent
    assert world["harvester"].harvest(annotation).status == GONE
    assert len(harvests.records(include_retracted=True)) == 1


def test_a_skip_is_recorded_without_a_label(world):
    annotation = world["ls"].annotate(world["task"], [], lead_time=3.0, was_cancelled=True)
    record = world["harvester"].harvest(annotation).record
    assert (record.kind, record.was_cancelled, record.lead_time, record.label_key) == (SKIP, True, 3.0, None)
    assert world["harvests"].count_labels() == 0
    assert world["harvests"].records(kind=SKIP) == [record]
    assert world["store"].list("implicit-labels/") == []


def test_an_all_erased_submission_is_empty_with_its_statistics(world):
    annotation = world["ls"].annotate(world["task"], [], parent_prediction=world["prediction"])
    record = world["harvester"].harvest(annotation).record
    assert record.kind == EMPTY and record.label_key is None
    assert record.stats["per_class"]["Groundmass"]["removed"] == 68
    assert record.stats["per_class"]["Olivine"]["removed"] == 12
    assert world["store"].list("implicit-labels/") == []


def test_a_project_without_brush_labels_is_not_served(world):
    ls = world["ls"]
    other = ls.add_project(OTHER_XML)
    annotation = ls.annotate(ls.add_task(other), [])
    assert world["harvester"].harvest(annotation).status == NOT_SERVED
    assert world["harvests"].records(include_retracted=True) == []


# -- which prediction the expert started from -------------------------------------------


def _prediction(pid, created, version="v1"):
    return {"id": pid, "created_at": f"2026-01-01T00:00:{created:02d}Z", "model_version": version}


def test_choose_prediction_rules():
    predictions = [
        _prediction(1, 1, "v1"),
        _prediction(2, 3, "v2"),
        _prediction(3, 5, "other"),
        _prediction(4, 9, "v2"),
    ]
    annotation = {"created_at": "2026-01-01T00:00:06Z", "parent_prediction": 1}
    assert choose_prediction(annotation, predictions, ["v2"]) == (predictions[0], "parent_prediction")
    annotation["parent_prediction"] = 99  # not among the task's predictions
    assert choose_prediction(annotation, predictions, ["v2"]) == (predictions[1], "served_version")
    assert choose_prediction(annotation, predictions, ["v9"]) == (predictions[2], "latest_before")
    assert choose_prediction({"created_at": "2026-01-01T00:00:00Z"}, predictions) == (None, "none")


# -- pseudonyms -------------------------------------------------------------------------


def test_pseudonyms_are_stable_keyed_and_not_the_id():
    assert pseudonym(7, KEY) == pseudonym("7", KEY) == pseudonym({"id": 7}, KEY)
    assert pseudonym(7, KEY) != pseudonym(8, KEY)
    assert pseudonym(7, KEY) != pseudonym(7, b"another key of enough length!!!!")
    assert pseudonym(7, KEY).startswith("u-") and len(pseudonym(7, KEY)) == 18 and "7" != pseudonym(7, KEY)[2:]
    with pytest.raises(ValueError, match="user id"):
        pseudonym({"email": EMAIL}, KEY)


def test_random_key_is_created_once_per_data_dir_with_0600(tmp_path):
    first = load_or_create_key(tmp_path / "data")
    assert load_or_create_key(tmp_path / "data") == first
    assert stat.S_IMODE(os.stat(tmp_path / "data" / KEY_FILE).st_mode) == 0o600
    assert load_or_create_key(tmp_path / "other") != first
    assert resolve_key("configured-secret", tmp_path / "third") == b"configured-secret"
    assert not (tmp_path / "third" / KEY_FILE).exists()
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [KEY_FILE]  # no temporary files left


def test_a_stored_calibration_model_gives_the_confidence(world):
    from active_learning.calibration import CALIBRATION_KEY, HARVEST_FEATURES, CalibrationModel

    names = list(HARVEST_FEATURES)
    constant = CalibrationModel(tuple(names), np.zeros(len(names)), np.ones(len(names)), np.zeros(len(names)), 0.0,
                                knots_x=np.array([0.0, 1.0]), knots_y=np.array([0.77, 0.77]),
                                fitted_on={"pixels": 10})  # fmt: skip
    world["store"].put_json(CALIBRATION_KEY, constant.to_dict())
    annotation = world["ls"].annotate(world["task"], brush_result(world["final"], LABELS), lead_time=5.0,
                                      parent_prediction=world["prediction"])  # fmt: skip
    world["harvester"].harvest(annotation)
    npz_key, json_key = label_keys(world["project"], world["task"], annotation)
    confidence = world["store"].get_arrays(npz_key)["confidence"].astype(np.float32)
    labelled = world["final"] != NOTHING
    np.testing.assert_allclose(confidence[labelled], 0.77, atol=1e-3)
    assert (confidence[~labelled] == 0).all()
    assert world["store"].get_json(json_key)["confidence_calibration"] == {"pixels": 10}


def test_derive_is_the_harvest_arithmetic_on_two_class_maps():
    predicted, final = _maps()
    derived = derive(final, predicted, CATALOGUE.names, 30.0, unknown_labels=["Zz", "Aa", "Zz"])
    correction = compare(predicted, final, len(CATALOGUE), 30.0)
    assert derived.kind == LABEL and derived.predicted is predicted
    np.testing.assert_array_equal(derived.confidence, correction.confidence)
    assert derived.stats == {**correction.stats(CATALOGUE.names), "unknown_labels": ["Aa", "Zz"]}
    assert derive(None, None, CATALOGUE.names) is None  # no image size: nothing to compare
    erased = derive(None, predicted, CATALOGUE.names)  # nothing painted: all removed, no label
    assert erased.kind == EMPTY and erased.stats["per_class"]["Groundmass"]["removed"] == 68
    other_size = derive(final, predicted[:4], CATALOGUE.names)  # a prediction of another size is ignored
    assert other_size.predicted is None and other_size.stats["edited_pixels"] == (final != N).sum()
