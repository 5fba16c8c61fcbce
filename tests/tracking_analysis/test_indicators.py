"""Indicators on hand-made harvest records: exact values worked out by hand in the comments."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from active_learning.corrections import NOTHING, compare
from active_learning.harvest_log import LABEL, SKIP, HarvestRecord
from tracking_analysis.frame import annotation_frame, class_frame
from tracking_analysis.indicators import class_edits, confusion, confusion_pairs, revisions, summary
from tracking_analysis.sessions import assign_sessions, session_table

NAMES = ["Epoxy", "Groundmass", "Olivine"]
E, G, O, N = 0, 1, 2, NOTHING  # noqa: E741 - the classes' initials


def record(annotation_id, task, annotator, version, predicted, final, lead, when, skip=False, prediction_id=1):
    """A record as the harvester writes it; ``when`` is the submission time (HH:MM:SS on 2026-01-05)."""
    stamp = f"2026-01-05T{when}Z"
    if skip:
        return HarvestRecord(
            annotation_id,
            stamp,
            7,
            task,
            SKIP,
            annotator,
            version,
            prediction_id,
            "parent_prediction",
            lead,
            True,
            stamp,
        )
    stats = compare(np.asarray(predicted, np.uint8), np.asarray(final, np.uint8), len(NAMES), lead).stats(NAMES)
    return HarvestRecord(
        annotation_id, stamp, 7, task, LABEL, annotator, version, prediction_id if version else None,
        "parent_prediction" if version else "none", lead, False, stamp, stats=stats,
    )  # fmt: skip


def full(value):
    return np.full((4, 4), value, np.uint8)


def records():
    top_row_olivine = full(G)
    top_row_olivine[0] = O  # 4 px relabelled G -> O
    half = full(G)
    half[:, :2] = E  # left half epoxy (8 px), right half groundmass (8 px)
    half_erased = half.copy()
    half_erased[:2, 2:] = N  # 4 groundmass px erased
    return [
        record(1, 1, "a", "v1", full(G), full(G), 10.0, "10:00:00"),  # accepted unchanged
        record(2, 2, "a", "v1", full(G), top_row_olivine, 40.0, "10:05:00"),
        record(3, 3, "b", "v2", half, half_erased, 20.0, "10:10:00"),
        record(4, 1, "b", "v2", None, None, 5.0, "10:11:00", skip=True),
        record(5, 2, "b", None, full(N), full(G), 30.0, "12:00:00"),  # no prediction: 16 px added
    ]


@pytest.fixture
def tables():
    frame = assign_sessions(annotation_frame(records(), pixel_sizes={2: 10.0, 3: None}))
    return frame, class_frame(records(), frame)


def test_annotation_frame_columns(tables):
    frame, _ = tables
    assert frame["accepted"].tolist() == [True, False, False, False, False]
    assert frame["has_prediction"].tolist() == [True, True, True, False, False]
    assert frame["skipped"].tolist() == [False, False, False, True, False]
    assert frame["edited_px"].tolist() == [0, 4, 4, 0, 16]
    assert frame["kept_px"].tolist() == [16, 12, 12, 0, 0]
    assert frame["touched_px"].tolist() == [16, 16, 16, 0, 16]
    assert frame["model_version"].tolist() == ["v1", "v1", "v2", "v2", "(no prediction)"]
    # task 2 has 10 µm pixels: 4 px = 400 µm² = 4e-4 mm²; 16 px = 1.6e-3 mm²
    assert frame["edited_mm2"].tolist()[1] == pytest.approx(4e-4, rel=1e-12)
    assert math.isnan(frame["edited_mm2"].tolist()[2])
    assert frame["day"].unique().tolist() == ["2026-01-05"]


def test_summary_per_annotator(tables):
    frame, classes = tables
    by = summary(frame, classes, "annotator").set_index("annotator")
    a, b = by.loc["a"], by.loc["b"]
    # a: 2 submissions from a prediction, 1 unchanged; kept 16 + 12 of 32 predicted px; 4 of 32 touched px edited
    assert (a["annotations"], a["skipped"], a["with_prediction"], a["accepted"]) == (2, 0, 2, 1)
    assert (a["acceptance_rate"], a["pixel_acceptance"], a["edit_fraction"]) == (0.5, 28 / 32, 4 / 32)
    # Groundmass IoU 28 / (32 + 28 - 28) = 0.875, Olivine 0 / 4 = 0, Epoxy absent: mean 0.4375
    assert a["mean_edit_iou"] == 0.4375
    assert (a["lead_time_mean"], a["lead_time_median"]) == (25.0, 25.0)
    # only annotation 2 edited: 40 s for 4 px -> 10000 s per 1000 px; 40 s / 4e-4 mm²
    assert a["seconds_per_kpx"] == 10000.0 and a["seconds_per_mm2"] == pytest.approx(1e5, rel=1e-12)
    # b: one skip of three; one submission from a prediction, changed: 4 of 8 groundmass px erased
    assert (b["annotations"], b["skipped"], b["with_prediction"], b["accepted"]) == (3, 1, 1, 0)
    assert (b["skip_rate"], b["acceptance_rate"], b["pixel_acceptance"], b["edit_fraction"]) == (1 / 3, 0.0, 0.75, 0.25)
    assert b["mean_edit_iou"] == 0.75  # Epoxy 8 / 8 = 1, Groundmass 4 / 8 = 0.5
    # timed submissions with edits: 20 s + 30 s for 4 + 16 px; pixel size known only for task 2 (16 px, 1.6e-3 mm²)
    assert (b["lead_time_mean"], b["seconds_per_kpx"]) == (25.0, 2500.0)
    assert b["seconds_per_mm2"] == pytest.approx(30 / 1.6e-3, rel=1e-12)


def test_summary_overall_and_by_model_version_in_order_of_first_use(tables):
    frame, classes = tables
    (overall,) = summary(frame, classes).to_dict(orient="records")
    assert overall["group"] == "all" and overall["annotations"] == 5
    assert (overall["skip_rate"], overall["acceptance_rate"]) == (0.2, 1 / 3)
    assert overall["pixel_acceptance"] == 40 / 48 and overall["lead_time_median"] == 25.0
    versions = summary(frame, classes, "model_version")
    assert versions["model_version"].tolist() == ["v1", "v2", "(no prediction)"]
    assert versions["skip_rate"].tolist() == [0.0, 0.5, 0.0]
    assert versions["acceptance_rate"].tolist()[:2] == [0.5, 0.0] and math.isnan(
        versions["acceptance_rate"].tolist()[2]
    )


def test_class_edits_per_class(tables):
    _, classes = tables
    edits = class_edits(classes).set_index("class")
    assert edits.loc["Groundmass", ["predicted", "final", "kept", "relabelled_out", "removed"]].tolist() == [
        40,
        32,
        32,
        4,
        4,
    ]
    assert edits.loc["Groundmass", "iou"] == 32 / 40 and edits.loc["Groundmass", "pixel_acceptance"] == 32 / 40
    assert edits.loc["Olivine", ["predicted", "final", "relabelled_in", "iou"]].tolist() == [0, 4, 4, 0.0]
    assert math.isnan(edits.loc["Olivine", "pixel_acceptance"])
    per_annotator = class_edits(classes, "annotator").set_index(["annotator", "class"])
    assert per_annotator.loc[("b", "Epoxy"), "iou"] == 1.0


def test_confusion_and_pairs():
    labels, matrix = confusion(records())
    assert labels == [*NAMES, "(nothing)"]
    expected = np.zeros((4, 4), np.int64)
    expected[E, E], expected[G, G], expected[G, O], expected[G, 3] = 8, 32, 4, 4
    assert (matrix == expected).all()  # annotation 5 started from no prediction: not a confusion
    pairs = confusion_pairs(labels, matrix)
    assert pairs.to_dict(orient="records") == [
        {"proposed": "Groundmass", "kept": "Olivine", "pixels": 4, "share": 0.1},
        {"proposed": "Groundmass", "kept": "(nothing)", "pixels": 4, "share": 0.1},
    ]
    assert len(confusion_pairs(labels, matrix, top=1)) == 1
    assert confusion([]) == ([], pytest.approx(np.zeros((0, 0))))


def test_sessions_split_on_a_gap():
    frame = assign_sessions(annotation_frame(records()))
    # a starts 10 s before 10:00:00; b's work at 12:00 starts 1 h 49 min after 10:11: a new session
    assert frame["session"].tolist() == [
        "a/p7/2026-01-05T09:59Z", "a/p7/2026-01-05T09:59Z",
        "b/p7/2026-01-05T10:09Z", "b/p7/2026-01-05T10:09Z", "b/p7/2026-01-05T11:59Z",
    ]  # fmt: skip
    table = session_table(frame)
    assert table["session"].tolist() == ["a/p7/2026-01-05T09:59Z", "b/p7/2026-01-05T10:09Z", "b/p7/2026-01-05T11:59Z"]
    assert table["annotations"].tolist() == [2, 2, 1] and table["skipped"].tolist() == [0, 1, 0]
    assert table["work_seconds"].tolist() == [50.0, 25.0, 30.0]
    assert table["end_ts"].iloc[0] - table["start_ts"].iloc[0] == 310.0  # 09:59:50 -> 10:05:00
    one = assign_sessions(annotation_frame(records()), gap=3 * 3600)
    assert one["session"].nunique() == 2
    with pytest.raises(ValueError, match="positive"):
        assign_sessions(frame, gap=0)


def test_revisions_count_versions():
    first = records()[1]
    second = HarvestRecord(**{**vars(first), "updated_at": "2026-01-05T11:00:00Z"})
    table = revisions([records()[0], first, second])
    assert table.to_dict(orient="records") == [
        {"annotation_id": 1, "task_id": 1, "annotator": "a", "versions": 1},
        {"annotation_id": 2, "task_id": 2, "annotator": "a", "versions": 2},
    ]


def test_empty_inputs_give_empty_tables():
    frame = assign_sessions(annotation_frame([]))
    classes = class_frame([], frame)
    assert isinstance(frame, pd.DataFrame) and frame.empty and classes.empty
    (overall,) = summary(frame, classes).to_dict(orient="records")
    assert overall["annotations"] == 0 and math.isnan(overall["acceptance_rate"])
