"""Harvest records as pandas tables: one row per annotation, and one per annotation and class.

The records are :class:`~active_learning.harvest_log.HarvestRecord` (from a snapshot via
:func:`tracking_analysis.records.harvest_snapshot`, or from the harvest log). The columns
of :func:`annotation_frame`:

==================  =============================================================================
annotation_id ...   ``annotation_id``, ``project_id``, ``task_id``, ``kind`` (label/skip/empty)
annotator           pseudonym, ``"(unknown)"`` when missing
model_version       of the prediction the expert started from, ``"(no prediction)"`` when none
skipped             the task was skipped (cancelled annotation)
has_prediction      submitted (not skipped) and started from a prediction
accepted            has_prediction and not a single pixel changed
lead_time           seconds Label Studio recorded (NaN when unknown)
submitted_ts        epoch seconds of the version (``updated_at``); ``started_ts`` = minus lead time
day                 UTC date of ``submitted_ts`` (YYYY-MM-DD)
*_px                pixels: ``pixels`` (image), ``predicted_px``, ``labelled_px``, ``edited_px``,
                    ``touched_px`` (predicted or painted), ``kept_px`` (predicted and kept)
pixel_size_um       of the task when known (NaN otherwise); ``edited_mm2`` the edited area
==================  =============================================================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from active_learning.harvest_log import SKIP, HarvestRecord, timestamp

UNKNOWN_ANNOTATOR = "(unknown)"
NO_PREDICTION = "(no prediction)"
COUNTS = ("kept", "added", "removed", "relabelled_out", "relabelled_in", "predicted", "final")
"""Per-class pixel counts of :meth:`active_learning.corrections.Correction.class_counts`."""


def _kept(stats: Mapping) -> int:
    return int(sum(c["kept"] for c in (stats.get("per_class") or {}).values()))


def annotation_frame(
    records: Sequence[HarvestRecord], pixel_sizes: Mapping[int, float | None] | None = None
) -> pd.DataFrame:
    """One row per record (see the module docstring for the columns), in record order.

    Args:
        records: Harvest records.
        pixel_sizes: Task id -> pixel size in µm (tasks missing or None: unknown).
    """
    pixel_sizes = pixel_sizes or {}
    rows = []
    for r in records:
        stats = r.stats or {}
        skipped = r.kind == SKIP or r.was_cancelled
        has_prediction = not skipped and r.prediction_id is not None
        submitted_ts = timestamp(r.updated_at)
        lead = float(r.lead_time) if r.lead_time is not None else np.nan
        size = pixel_sizes.get(r.task_id)
        edited = int(stats.get("edited_pixels", 0))
        rows.append(
            {
                "annotation_id": r.annotation_id,
                "project_id": r.project_id,
                "task_id": r.task_id,
                "kind": r.kind,
                "annotator": r.annotator or UNKNOWN_ANNOTATOR,
                "model_version": r.model_version or NO_PREDICTION,
                "skipped": skipped,
                "has_prediction": has_prediction,
                "accepted": has_prediction and bool(stats) and edited == 0,
                "lead_time": lead,
                "submitted_ts": submitted_ts,
                "started_ts": submitted_ts - (0.0 if np.isnan(lead) else lead),
                "day": datetime.fromtimestamp(submitted_ts, UTC).strftime("%Y-%m-%d"),
                "pixels": int(stats.get("pixels", 0)),
                "predicted_px": int(stats.get("predicted_pixels", 0)),
                "labelled_px": int(stats.get("labelled_pixels", 0)),
                "edited_px": edited,
                "touched_px": _touched(stats),
                "kept_px": _kept(stats),
                "pixel_size_um": float(size) if size else np.nan,
                "edited_mm2": edited * float(size) ** 2 / 1e6 if size else np.nan,
            }
        )
    columns = [
        "annotation_id", "project_id", "task_id", "kind", "annotator", "model_version", "skipped", "has_prediction",
        "accepted", "lead_time", "submitted_ts", "started_ts", "day", "pixels", "predicted_px", "labelled_px",
        "edited_px", "touched_px", "kept_px", "pixel_size_um", "edited_mm2",
    ]  # fmt: skip
    types = {
        "skipped": bool,
        "has_prediction": bool,
        "accepted": bool,
        "lead_time": float,
        "submitted_ts": float,
        "started_ts": float,
    }
    return pd.DataFrame(rows, columns=columns).astype(types)


def _touched(stats: Mapping) -> int:
    confusion = stats.get("confusion")
    if not confusion:
        return 0
    matrix = np.asarray(confusion, dtype=np.int64)
    return int(matrix.sum() - matrix[-1, -1])


def class_frame(records: Sequence[HarvestRecord], annotations: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per (record with a prediction and statistics, class): the per-class pixel counts.

    Columns: ``annotation_id``, ``class`` and :data:`COUNTS`, plus every column of
    ``annotations`` (an :func:`annotation_frame`, possibly with sessions) for grouping.
    """
    rows = []
    for r in records:
        if r.prediction_id is None or not r.stats or r.kind == SKIP:
            continue
        for name, counts in r.stats["per_class"].items():
            rows.append({"annotation_id": r.annotation_id, "class": name, **{k: int(counts[k]) for k in COUNTS}})
    frame = pd.DataFrame(rows, columns=["annotation_id", "class", *COUNTS])
    if annotations is not None:
        frame = frame.merge(annotations, on="annotation_id", how="left", validate="many_to_one")
    return frame
