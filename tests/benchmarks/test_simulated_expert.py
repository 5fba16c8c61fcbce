"""The simulated expert: corrections on tiny class maps (exact), truth lookup, and against a real Label Studio."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from benchmarks.simulated_expert import (
    ExpertConfig,
    SimulatedExpert,
    correct,
    mean_iou,
)
from label_config import load_catalogue
from label_config.catalogue import IGNORE_INDEX
from label_config.generate import CONFIG_DIR
from ml_backend.label_map import control_target
from ml_backend.predictor import brush_results
from ml_backend.regions import regions_to_class_map
from ml_backend.synthetic import generate_section, write_section
from tracking_analysis.truth import TruthLookup

CATALOGUE = load_catalogue()
NO_NOISE = dict(time_noise=0.0, overhead_seconds=10.0, seconds_per_region=2.0, seconds_per_kpx=1000.0)


def field() -> tuple[np.ndarray, np.ndarray]:
    """Truth: class 1 everywhere, a 6x6 block of class 2 and a 3x3 block of class 3. The
    prediction misses both blocks and has one wrong pixel on a boundary."""
    truth = np.ones((20, 20), np.uint8)
    truth[2:8, 2:8] = 2
    truth[12:15, 12:15] = 3
    start = np.ones_like(truth)
    start[2:8, 8] = 2  # just outside the 6x6 block: within 1 px of its boundary
    return truth, start


def test_largest_error_first_within_budget():
    truth, start = field()
    config = ExpertConfig(min_region=1, boundary_tolerance=0, budget_seconds=10 + 2 + 36 + 2 + 9, **NO_NOISE)
    done = correct(start, truth, config, np.random.default_rng(0))
    # seconds_per_kpx=1000: 1 s per pixel. Regions: 36 px (class 2), 9 px (class 3), 6 px (class 1 column)
    assert (done.regions, done.pixels, done.out_of_budget, done.seconds) == (2, 45, 1, 59.0)
    assert (done.classes[truth == 2] == 2).all() and (done.classes[truth == 3] == 3).all()
    assert (done.classes[2:8, 8] == 2).all()  # the wrong column is left: out of budget
    tight = correct(
        start,
        truth,
        ExpertConfig(min_region=1, boundary_tolerance=0, budget_seconds=47, **NO_NOISE),
        np.random.default_rng(0),
    )
    assert (tight.regions, tight.out_of_budget) == (0, 3)  # the largest region does not fit: the expert stops
    assert (tight.classes == start).all()


def test_boundary_tolerance_and_minimum_region():
    truth, start = field()
    tolerant = correct(
        start,
        truth,
        ExpertConfig(min_region=1, boundary_tolerance=1, budget_seconds=1e6, **NO_NOISE),
        np.random.default_rng(0),
    )
    assert (tolerant.classes[2:8, 8] == 2).all()  # error touching the true boundary: left as predicted
    assert (tolerant.regions, tolerant.pixels) == (2, 16 + 1)  # block interiors without their outer ring
    assert (tolerant.classes[3:7, 3:7] == 2).all() and tolerant.classes[13, 13] == 3
    big_only = correct(
        start,
        truth,
        ExpertConfig(min_region=10, boundary_tolerance=0, budget_seconds=1e6, **NO_NOISE),
        np.random.default_rng(0),
    )
    assert big_only.regions == 1 and (big_only.classes[truth == 3] == 1).all()


def test_explicit_mode_paints_the_truth_from_scratch():
    truth, start = field()
    done = correct(
        start,
        truth,
        ExpertConfig(mode="explicit", min_region=1, budget_seconds=1e6, **NO_NOISE),
        np.random.default_rng(0),
    )
    assert (done.classes == truth).all() and done.regions == 3 and done.pixels == 400
    partial = correct(
        start,
        truth,
        ExpertConfig(mode="explicit", min_region=1, budget_seconds=10 + 2 + 355, **NO_NOISE),
        np.random.default_rng(0),
    )
    assert partial.regions == 1 and (partial.classes[truth == 3] == IGNORE_INDEX).all()


def test_config_is_validated():
    with pytest.raises(ValueError, match="valid modes: correct, explicit"):
        ExpertConfig(mode="lazy")
    with pytest.raises(ValueError, match="skip_probability"):
        ExpertConfig(skip_probability=2)


def test_prediction_round_trip_and_mean_iou():
    truth, start = field()
    target = control_target((CONFIG_DIR / "minerals.xml").read_text(), CATALOGUE)
    probs = np.zeros((len(CATALOGUE), 20, 20), np.float32)
    np.put_along_axis(probs, start[None].astype(np.int64), 1.0, axis=0)
    classes, _ = regions_to_class_map(brush_results(probs, target), (20, 20), CATALOGUE)
    assert (classes == start).all()
    assert mean_iou(truth, truth) == 1.0
    assert mean_iou(start, truth) == pytest.approx(349 / 400 / 3)  # class 1 only: 349 shared of 400 px


def test_truth_lookup_order_and_containment(tmp_path):
    Image.fromarray(np.full((4, 5), 2, np.uint8)).save(tmp_path / "a_classes.png")
    Image.fromarray(np.full((4, 5), 3, np.uint8)).save(tmp_path / "field-7_classes.png")
    (tmp_path / "map.json").write_text(json.dumps({"12": "a", "other.png": "field-7_classes.png"}))
    lookup = TruthLookup(tmp_path, tmp_path / "map.json")
    assert lookup.classes({"id": 1, "data": {"truth": "a", "image": "x.png"}})[0, 0] == 2
    assert lookup.key({"id": 12, "data": {"image": "/data/upload/3/zz.png"}}) == "a"
    assert lookup.key({"id": 2, "data": {"image": "/data/upload/3/other.png"}}) == "field-7_classes.png"
    assert lookup.key({"id": 2, "data": {"image": "/data/upload/3/1a2b3c4d-field-7.png"}}) == "field-7"
    assert lookup.key({"id": 2, "data": {"image": "/data/local-files/?d=sections%2Ffield-7.tif"}}) == "field-7"
    assert lookup.classes({"id": 2, "data": {"image": "/data/upload/3/1a2b3c4d-field-7.png"}}).shape == (4, 5)
    with pytest.raises(OSError, match="outside"):
        lookup.classes({"id": 3, "data": {"truth": "../../etc/passwd.png"}})
    with pytest.raises(OSError, match="no ground truth for task 4"):
        lookup.classes({"id": 4, "data": {"truth": "missing"}})
    assert lookup.has({"id": 2, "data": {"image": "/data/upload/3/1a2b3c4d-field-7.png"}})
    assert not lookup.has({"id": 4, "data": {"truth": "missing"}})
    assert not lookup.has({"id": 3, "data": {"truth": "../../etc/passwd.png"}})


SEEDS_AND_SCORES = ((201, 0.2), (202, 0.6), (203, 0.4))


@pytest.fixture(scope="module")
def fields(tmp_path_factory):
    """Three small synthetic fields: PNG images to upload, truth written by write_section, and a
    prediction per field that calls plagioclase groundmass and paints a wrong disc."""
    folder = tmp_path_factory.mktemp("expert")
    out = []
    for seed, score in SEEDS_AND_SCORES:
        section = generate_section(192, seed=seed)
        write_section(section, folder / "truth", f"field-{seed}")
        image = folder / f"field-{seed}.png"
        Image.fromarray(section.image).save(image)
        predicted = np.where(
            section.classes == CATALOGUE.index_of("Plagioclase"), CATALOGUE.index_of("Groundmass"), section.classes
        )
        yy, xx = np.mgrid[:192, :192]
        predicted[(yy - 60) ** 2 + (xx - 120) ** 2 < 400] = CATALOGUE.index_of("Olivine")
        out.append((image, section.classes, predicted.astype(np.uint8), score))
    return folder, out


def _project(label_studio, fields, title):
    folder, items = fields
    client = label_studio.client
    config = (CONFIG_DIR / "minerals.xml").read_text()
    project = client.create_project(title, config)
    task_ids = client.upload_files(project["id"], [image for image, *_ in items])
    target = control_target(config, CATALOGUE)
    prediction_ids = {}
    for task_id, (_, _, predicted, score) in zip(task_ids, items):
        probs = np.zeros((len(CATALOGUE), *predicted.shape), np.float32)
        np.put_along_axis(probs, predicted[None].astype(np.int64), 1.0, axis=0)
        answer = client.create_prediction(task_id, brush_results(probs, target), score, "sim-test-1")
        prediction_ids[task_id] = answer["id"]
    return project["id"], task_ids, prediction_ids


def _submitted(client, task_ids):
    out = {}
    for task_id in task_ids:
        (annotation,) = client.annotations(task_id)
        out[task_id] = annotation
    return out


@pytest.mark.slow
def test_simulated_expert_against_label_studio(label_studio, fields):
    folder, items = fields
    client = label_studio.client
    truth = TruthLookup(folder / "truth")
    runs = []
    for title in ("Simulated expert A", "Simulated expert B"):
        project_id, task_ids, prediction_ids = _project(label_studio, fields, title)
        expert = SimulatedExpert(client, project_id, truth, ExpertConfig(seed=5, budget_seconds=60))
        submissions = expert.run()
        assert expert.next_task() is None
        runs.append((task_ids, prediction_ids, submissions, _submitted(client, task_ids)))

    task_ids, prediction_ids, submissions, annotations = runs[0]
    by_score = [task_ids[i] for i in np.argsort([-score for *_, score in items])]
    assert [s.task_id for s in submissions] == by_score  # highest prediction score first
    for (_, truth_map, predicted, _), task_id in zip(items, task_ids):
        annotation = annotations[task_id]
        submission = next(s for s in submissions if s.task_id == task_id)
        assert annotation["parent_prediction"] == prediction_ids[task_id] == submission.prediction_id
        assert annotation["lead_time"] == pytest.approx(submission.lead_time) and 10 < annotation["lead_time"] <= 60
        assert not annotation["was_cancelled"]
        submitted, _ = regions_to_class_map(annotation["result"], truth_map.shape, CATALOGUE)
        assert mean_iou(submitted, truth_map) > mean_iou(predicted, truth_map) + 0.05
        assert submission.iou_after == pytest.approx(mean_iou(submitted, truth_map))
    print({s.task_id: (round(s.iou_before, 3), round(s.iou_after, 3), s.lead_time, s.regions) for s in submissions})

    # the same seed on an identical project submits exactly the same
    other_ids, _, other_submissions, other_annotations = runs[1]
    for a, b in zip(task_ids, other_ids):
        assert annotations[a]["result"] == other_annotations[b]["result"]
        assert annotations[a]["lead_time"] == other_annotations[b]["lead_time"]
    assert [s.lead_time for s in submissions] == [s.lead_time for s in other_submissions]


@pytest.mark.slow
def test_simulated_expert_skips_with_probability_one(label_studio, fields):
    folder, _ = fields
    project_id, task_ids, prediction_ids = _project(label_studio, fields, "Simulated expert skips")
    expert = SimulatedExpert(
        label_studio.client, project_id, TruthLookup(folder / "truth"), ExpertConfig(skip_probability=1.0)
    )
    submissions = expert.run(max_tasks=2)
    assert [s.skipped for s in submissions] == [True, True]
    for submission in submissions:
        assert label_studio.client.annotations(submission.task_id) == []  # Label Studio lists only submitted ones
        annotation = label_studio.client.get_annotation(submission.annotation_id)
        assert annotation["task"] == submission.task_id
        assert annotation["was_cancelled"] is True and annotation["result"] == []
        assert annotation["parent_prediction"] == prediction_ids[submission.task_id]
    remaining = expert.next_task()
    assert remaining is not None and remaining[0]["id"] not in {s.task_id for s in submissions}


@pytest.mark.slow
def test_tasks_without_ground_truth_are_left_to_people(label_studio, fields, tmp_path):
    """The demo project holds a real field (no truth) among synthetic ones: the expert corrects the others."""
    folder, _ = fields
    project_id, task_ids, _ = _project(label_studio, fields, "Simulated expert, partial truth")
    partial = tmp_path / "truth"
    partial.mkdir()
    for seed, _ in SEEDS_AND_SCORES[:2]:
        (partial / f"field-{seed}_classes.png").write_bytes(
            (folder / "truth" / f"field-{seed}_classes.png").read_bytes()
        )
    expert = SimulatedExpert(
        label_studio.client, project_id, TruthLookup(partial), ExpertConfig(seed=1, budget_seconds=20)
    )
    submissions = expert.run()
    assert sorted(s.task_id for s in submissions) == sorted(task_ids[:2]) and expert.next_task() is None
    assert label_studio.client.annotations(task_ids[2]) == []
