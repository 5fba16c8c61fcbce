"""Interaction indicators: what experts accept, fix, skip and confuse, and how long it takes.

Pure functions over the tables of :mod:`tracking_analysis.frame`. Every ratio is pooled
(sums of counts divided by sums of counts over the group, not a mean of per-task ratios),
so a group's value does not depend on how its tasks are split, and a ratio whose
denominator is 0 is NaN (``None`` in JSON). Definitions (:data:`DEFINITIONS` holds the
one-line explanations for petrologists shown in the report):

* ``skip_rate``: skipped / all annotations (skips included).
* ``acceptance_rate``: submissions left exactly as predicted (not one pixel changed) /
  submissions that started from a prediction.
* ``pixel_acceptance``: pixels kept with the predicted mineral / pixels the prediction painted.
* ``edit_fraction``: pixels changed / pixels predicted or painted.
* ``edit_iou``: per class, IoU between the predicted and the final mask
  (kept / (predicted + final - kept)); ``mean_edit_iou`` averages the classes that occur.
* ``lead_time_mean`` / ``_median``: seconds per submitted task (Label Studio's ``lead_time``).
* ``seconds_per_kpx``: total lead time of the submissions that changed something / their
  changed pixels x 1000; ``seconds_per_mm2`` the same per mm² where the pixel size is known.
* confusion pairs: pixels predicted as one class (or nothing) and kept as another.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from active_learning.harvest_log import SKIP, HarvestRecord
from tracking_analysis.frame import COUNTS

NOTHING_LABEL = "(nothing)"

DEFINITIONS = {
    "annotations": "Annotations saved, skipped tasks included.",
    "skip_rate": "Share of tasks the expert skipped instead of labelling.",
    "acceptance_rate": "Share of pre-annotated tasks submitted exactly as predicted, not one pixel changed.",
    "pixel_acceptance": "Share of the pre-annotated pixels whose mineral the expert kept.",
    "edit_fraction": "Share of the pre-annotated or painted pixels the expert changed.",
    "mean_edit_iou": "Overlap (IoU) of predicted and final masks averaged over minerals: 1 = untouched, 0 = redrawn.",
    "lead_time_mean": "Mean seconds spent per submitted task (Label Studio's lead time).",
    "lead_time_median": "Median seconds per submitted task; robust to a task left open over lunch.",
    "seconds_per_kpx": "Seconds of work per 1000 pixels corrected, on tasks where something was corrected.",
    "seconds_per_mm2": "Seconds of work per mm² corrected, where the pixel size is known.",
    "confusion": "Pixels the model proposed as one mineral (rows) and the expert kept as another (columns).",
    "agreement_iou": "Overlap (IoU) of two experts' masks of the same mineral on the same task: 1 = identical.",
    "pixel_accuracy": "Share of implicitly labelled pixels whose mineral is right (against ground truth).",
    "label_iou": "Per mineral, overlap (IoU) of implicit label and ground truth on labelled pixels.",
    "coverage": "Share of ground-truth pixels that received an implicit label.",
    "ece": "Expected calibration error: mean gap between stated confidence and actual accuracy (0 = honest).",
    "drafts": "Drafts saved but not submitted: tasks the expert started and hesitated over.",
}


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator) / float(denominator) if denominator else float("nan")


def class_edits(classes: pd.DataFrame, by: str | Sequence[str] | None = None) -> pd.DataFrame:
    """Per (group, class) pixel counts and ``iou`` (prediction vs final) and ``pixel_acceptance``.

    Args:
        classes: A :func:`tracking_analysis.frame.class_frame` (with the grouping columns).
        by: Column(s) to group by; None: all records together.
    """
    keys = [by] if isinstance(by, str) else list(by or [])
    sums = classes.groupby([*keys, "class"], sort=False)[list(COUNTS)].sum().reset_index()
    union = sums["predicted"] + sums["final"] - sums["kept"]
    sums["iou"] = [_ratio(k, u) for k, u in zip(sums["kept"], union)]
    sums["pixel_acceptance"] = [_ratio(k, p) for k, p in zip(sums["kept"], sums["predicted"])]
    return sums


def _mean_edit_iou(classes: pd.DataFrame) -> float:
    if classes.empty:
        return float("nan")
    ious = class_edits(classes)["iou"].dropna()
    return float(ious.mean()) if len(ious) else float("nan")


def summary(frame: pd.DataFrame, classes: pd.DataFrame, by: str | Sequence[str] | None = None) -> pd.DataFrame:
    """The per-annotation indicators (module docstring) for each group of ``frame``.

    Args:
        frame: An annotation frame (:func:`tracking_analysis.frame.annotation_frame`).
        classes: Its class frame with the grouping columns.
        by: Column(s) to group by (``annotator``, ``model_version``, ``session``, ``day``,
            ``task_id``...); None: one row ``group = "all"``. Groups come in order of their
            first submission.
    """
    keys = [by] if isinstance(by, str) else list(by or [])
    if keys:
        ordered = frame.sort_values(["submitted_ts", "annotation_id"])
        groups = [(v if isinstance(v, tuple) else (v,), g) for v, g in ordered.groupby(keys, sort=False, dropna=False)]
    else:
        groups = [(("all",), frame)]
    rows = []
    for values, group in groups:
        submitted = group[~group["skipped"]]
        predicted = group[group["has_prediction"]]
        timed = submitted[submitted["lead_time"].notna()]
        edited = timed[timed["edited_px"] > 0]
        sized = edited[edited["edited_mm2"].notna()]
        mask = classes["annotation_id"].isin(group["annotation_id"])
        rows.append(
            {
                **(dict(zip(keys, values)) if keys else {"group": "all"}),
                "annotations": int(len(group)),
                "skipped": int(group["skipped"].sum()),
                "skip_rate": _ratio(group["skipped"].sum(), len(group)),
                "with_prediction": int(len(predicted)),
                "accepted": int(predicted["accepted"].sum()),
                "acceptance_rate": _ratio(predicted["accepted"].sum(), len(predicted)),
                "pixel_acceptance": _ratio(predicted["kept_px"].sum(), predicted["predicted_px"].sum()),
                "edit_fraction": _ratio(predicted["edited_px"].sum(), predicted["touched_px"].sum()),
                "mean_edit_iou": _mean_edit_iou(classes[mask]),
                "lead_time_mean": float(timed["lead_time"].mean()) if len(timed) else float("nan"),
                "lead_time_median": float(timed["lead_time"].median()) if len(timed) else float("nan"),
                "seconds_per_kpx": _ratio(edited["lead_time"].sum(), edited["edited_px"].sum() / 1000.0),
                "seconds_per_mm2": _ratio(sized["lead_time"].sum(), sized["edited_mm2"].sum()),
            }
        )
    return pd.DataFrame(rows)


def confusion(records: Sequence[HarvestRecord]) -> tuple[list[str], np.ndarray]:
    """Summed confusion matrix (predicted rows -> kept columns, last = nothing) of the records
    that started from a prediction; labels are the class names and ``"(nothing)"``.

    Raises:
        ValueError: if the records disagree about the classes.
    """
    names: list[str] | None = None
    total: np.ndarray | None = None
    for r in records:
        if r.prediction_id is None or not r.stats or r.kind == SKIP:
            continue
        if names is None:
            names = list(r.stats["classes"])
            total = np.zeros((len(names) + 1, len(names) + 1), np.int64)
        elif list(r.stats["classes"]) != names:
            raise ValueError(f"annotation {r.annotation_id} has classes {r.stats['classes']}, others {names}")
        assert total is not None  # set together with ``names``
        total += np.asarray(r.stats["confusion"], dtype=np.int64)
    if names is None:
        return [], np.zeros((0, 0), np.int64)
    assert total is not None
    return [*names, NOTHING_LABEL], total


def confusion_pairs(labels: Sequence[str], matrix: np.ndarray, top: int | None = None) -> pd.DataFrame:
    """Off-diagonal cells of a confusion matrix, largest first.

    Columns: ``proposed``, ``kept``, ``pixels``, ``share`` (of the pixels proposed as
    ``proposed``). Ties are broken by row, then column order.
    """
    found = []
    for i, proposed in enumerate(labels):
        row_total = int(matrix[i].sum())
        for j, kept in enumerate(labels):
            if i != j and matrix[i, j] > 0:
                found.append(
                    (
                        -int(matrix[i, j]),
                        i,
                        j,
                        {
                            "proposed": proposed,
                            "kept": kept,
                            "pixels": int(matrix[i, j]),
                            "share": _ratio(matrix[i, j], row_total),
                        },
                    )
                )
    frame = pd.DataFrame(
        [row for *_, row in sorted(found, key=lambda f: f[:3])], columns=["proposed", "kept", "pixels", "share"]
    )
    return frame.head(top) if top is not None else frame


def revisions(history: Sequence[HarvestRecord]) -> pd.DataFrame:
    """Versions per annotation in a harvest-log history (``include_superseded=True``).

    Columns: ``annotation_id``, ``task_id``, ``annotator``, ``versions`` (1 = never edited
    after the first submission). A returning expert signals doubt or a later correction.
    """
    rows: dict[int, dict] = {}
    for r in history:
        row = rows.setdefault(
            r.annotation_id,
            {"annotation_id": r.annotation_id, "task_id": r.task_id, "annotator": r.annotator, "versions": 0},
        )
        row["versions"] += 1
    return pd.DataFrame(list(rows.values()), columns=["annotation_id", "task_id", "annotator", "versions"])
