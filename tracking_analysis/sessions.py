"""Labelling sessions: an annotator's uninterrupted work on one project.

A **session** is a maximal run of one annotator's annotations (skips included) on one
project, in submission order, in which each annotation was started (submission time minus
Label Studio's ``lead_time``) at most ``gap`` seconds (default 30 min) after the previous one
was submitted. This is the usual gap rule of web analytics; it needs no login/logout events,
which Label Studio Community does not record. A session's key is
``"<annotator>/p<project>/<UTC start, ISO to the minute>"``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd

DEFAULT_GAP_SECONDS = 1800.0


def _iso_minute(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%MZ")


def assign_sessions(frame: pd.DataFrame, gap: float = DEFAULT_GAP_SECONDS) -> pd.DataFrame:
    """A copy of an annotation frame with a ``session`` column (see the module docstring).

    Raises:
        ValueError: if ``gap`` is not positive.
    """
    if not gap > 0:
        raise ValueError(f"the session gap must be a positive number of seconds, got {gap}")
    out = frame.copy()
    out["session"] = pd.Series(dtype=object)
    for (annotator, project), group in out.groupby(["annotator", "project_id"], sort=True):
        group = group.sort_values(["submitted_ts", "annotation_id"])
        previous_end = -np.inf
        key = ""
        for index, row in group.iterrows():
            if row["started_ts"] - previous_end > gap:
                key = f"{annotator}/p{project}/{_iso_minute(row['started_ts'])}"
            out.at[index, "session"] = key
            previous_end = max(previous_end, row["submitted_ts"])
    return out


def session_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per session of a frame with a ``session`` column.

    Columns: ``session``, ``annotator``, ``project_id``, ``start_ts``, ``end_ts`` (first start,
    last submission), ``annotations``, ``skipped``, ``work_seconds`` (sum of lead times).
    """
    rows = []
    for key, group in frame.groupby("session", sort=False):
        rows.append(
            {
                "session": key,
                "annotator": group["annotator"].iloc[0],
                "project_id": int(group["project_id"].iloc[0]),
                "start_ts": float(group["started_ts"].min()),
                "end_ts": float(group["submitted_ts"].max()),
                "annotations": int(len(group)),
                "skipped": int(group["skipped"].sum()),
                "work_seconds": float(group["lead_time"].sum(min_count=1))
                if group["lead_time"].notna().any()
                else np.nan,
            }
        )
    columns = ["session", "annotator", "project_id", "start_ts", "end_ts", "annotations", "skipped", "work_seconds"]
    return pd.DataFrame(rows, columns=columns).sort_values(["start_ts", "session"]).reset_index(drop=True)
