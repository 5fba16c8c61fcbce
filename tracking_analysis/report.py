"""The tracking report: every indicator of a project as JSON, and as one self-contained HTML page.

:func:`build_report` computes the numbers from a :class:`~tracking_analysis.snapshot.Snapshot`
(plus optional ground truth and learning-curve table); :func:`render_html` lays them out with
the Jinja2 templates in ``templates/`` (autoescaped: titles, pseudonyms and mineral names come from
users) and the figures embedded as PNG data URIs (no external files, scripts or fonts), so the page
can be mailed or archived as it is. ``--format json`` writes the dict of :func:`build_report`
(NaN as null).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

import numpy as np
import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from active_learning.corrections import ConfidenceModel
from active_learning.harvest_log import LABEL
from tracking_analysis import plots
from tracking_analysis.agreement import agreement, agreement_by_class, latest_maps, mean_agreement
from tracking_analysis.frame import annotation_frame, class_frame
from tracking_analysis.indicators import DEFINITIONS, class_edits, confusion, confusion_pairs, summary
from tracking_analysis.learning_curve import curves, implicit_vs_explicit
from tracking_analysis.quality import empty_counts, quality_counts, quality_summary
from tracking_analysis.questionnaire import DEFAULT_WINDOW_SECONDS, answers_frame, joined
from tracking_analysis.questionnaire import summary as questionnaire_summary
from tracking_analysis.records import Harvested, harvest_snapshot, records_of
from tracking_analysis.sessions import DEFAULT_GAP_SECONDS, assign_sessions, session_table
from tracking_analysis.snapshot import Snapshot
from tracking_analysis.truth import TruthLookup

FORMAT, VERSION = "scraiber-tracking-report", 1


def _clean(value: Any) -> Any:
    """JSON-ready: NaN -> None, numpy scalars -> Python, tuples -> lists, recursively."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _rows(frame: pd.DataFrame) -> list[dict]:
    return _clean(frame.to_dict(orient="records"))


def _quality(snapshot: Snapshot, harvested: Sequence[Harvested], truth: TruthLookup) -> dict:
    n = len(snapshot.classes)
    counts = empty_counts(n)
    tasks, missing, labels = set(), [], 0
    for item in harvested:
        if item.record.kind != LABEL:
            continue
        labels += 1
        # harvest_annotation gives every LABEL record its label and confidence
        assert item.label is not None and item.confidence is not None
        task = snapshot.task(item.record.task_id)
        try:
            true = truth.classes({"id": task.id, "data": {"image": task.image or "", "truth": task.truth}}, "image")
        except OSError as exc:
            missing.append(f"task {task.id}: {exc}")
            continue
        if true.shape != item.label.shape:
            missing.append(f"task {task.id}: truth {true.shape} and label {item.label.shape} differ in shape")
            continue
        counts = counts + quality_counts(item.label, item.confidence, true, n, predicted=item.predicted)
        tasks.add(task.id)
    return {
        **quality_summary(counts, list(snapshot.classes)),
        "tasks": len(tasks),
        "labels": labels,
        "not_compared": missing,
    }


def build_report(
    snapshot: Snapshot,
    truth: TruthLookup | None = None,
    learning_curve: pd.DataFrame | None = None,
    session_gap: float = DEFAULT_GAP_SECONDS,
    calibration: dict[str, Any] | None = None,
    answer_window: float = DEFAULT_WINDOW_SECONDS,
    confidence: ConfidenceModel = ConfidenceModel(),
) -> dict[str, Any]:
    """All indicators of a snapshot as a JSON-ready dict (NaN as None).

    Args:
        snapshot: The project's records.
        truth: Ground truth of (some of) its tasks, for the implicit-label quality section.
        learning_curve: A validated learning-curve table (:mod:`tracking_analysis.learning_curve`).
        calibration: A confidence-calibration result (``calibration.json`` of ``scraiber bench active-learning``).
        session_gap: Seconds of inactivity that end a session.
        answer_window: Seconds after a session within which a questionnaire answer refers to it.
        confidence: The confidence model of the implicit labels.
    """
    harvested = harvest_snapshot(snapshot, confidence)
    records = records_of(harvested)
    pixel_sizes = {t.id: t.pixel_size_um for t in snapshot.tasks}
    frame = assign_sessions(annotation_frame(records, pixel_sizes), session_gap)
    classes = class_frame(records, frame)
    labels, matrix = confusion(records)
    sessions = session_table(frame)
    by_session = summary(frame, classes, "session")

    maps = latest_maps(
        [
            (h.record.task_id, h.record.annotator, h.record.annotation_id, h.label)
            for h in harvested
            if h.record.kind == LABEL and h.record.annotator and h.label is not None  # LABEL records have a label
        ]
    )
    pairs = agreement(maps, snapshot.classes)
    multi = sorted(task for task, by in maps.items() if len(by) > 1)

    tasks = []
    for task in snapshot.tasks:
        rows = frame[frame["task_id"] == task.id]
        tasks.append(
            {
                "task_id": task.id,
                "annotations": int(len(rows)),
                "skipped": int(rows["skipped"].sum()),
                "annotators": int(rows["annotator"].nunique()),
                "accepted": int(rows["accepted"].sum()),
                "lead_time_mean": float(rows.loc[~rows["skipped"], "lead_time"].mean())
                if (~rows["skipped"]).any()
                else float("nan"),
                "drafts": task.drafts,
                "pixel_size_um": task.pixel_size_um,
            }
        )

    answers = answers_frame(snapshot.questionnaire)
    report = {
        "format": FORMAT,
        "version": VERSION,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "project": {"id": snapshot.project_id, "title": snapshot.title, "captured_at": snapshot.captured_at},
        "settings": {
            "session_gap_seconds": session_gap,
            "answer_window_seconds": answer_window,
            "confidence_model": vars(confidence),
        },
        "definitions": DEFINITIONS,
        "overall": _rows(summary(frame, classes))[0],
        "by_model_version": _rows(summary(frame, classes, "model_version")),
        "by_annotator": _rows(summary(frame, classes, "annotator")),
        "by_session": _rows(by_session),
        "by_day": _rows(summary(frame, classes, "day")),
        "sessions": _rows(sessions),
        "tasks": _clean(tasks),
        "class_edits": _rows(class_edits(classes)),
        "confusion": {"labels": labels, "matrix": matrix.tolist()},
        "confusion_pairs": _rows(confusion_pairs(labels, matrix, top=10)),
        "agreement": {
            "tasks": multi,
            "pairs": _rows(pairs),
            "by_class": _rows(agreement_by_class(pairs)) if len(pairs) else [],
            "mean_iou": _clean(mean_agreement(pairs)),
        },
        "quality": _clean(_quality(snapshot, harvested, truth)) if truth is not None else None,
        "learning_curve": None,
        "calibration": _clean(calibration) if calibration is not None else None,
        "questionnaire": {
            "summary": _clean(questionnaire_summary(answers)),
            "by_session": _rows(joined(answers, sessions, by_session, answer_window))
            if len(answers) and len(sessions)
            else [],
        },
    }
    if learning_curve is not None:
        report["learning_curve"] = {
            "curves": _rows(curves(learning_curve)),
            "implicit_vs_explicit": _rows(implicit_vs_explicit(learning_curve)),
        }
    return report


def to_json(report: dict[str, Any]) -> str:
    """The report as indented JSON (strict: no NaN)."""
    return json.dumps(report, indent=1, allow_nan=False) + "\n"


# --- HTML ---------------------------------------------------------------------------------

INDICATOR_COLUMNS = (
    "annotations", "skip_rate", "acceptance_rate", "pixel_acceptance", "edit_fraction", "mean_edit_iou",
    "lead_time_mean", "lead_time_median", "seconds_per_kpx", "seconds_per_mm2",
)  # fmt: skip


def _fmt(value: Any, digits: int = 3) -> str:
    """The ``fmt`` filter: None as a dash, floats to ``digits`` decimals, lists comma-separated."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) < 1e5 else f"{value:.3g}"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


@cache
def _environment() -> Environment:
    """The templates of ``tracking_analysis/templates``; every value is escaped unless it is :class:`Markup`."""
    environment = Environment(
        loader=PackageLoader("tracking_analysis", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["fmt"] = _fmt
    environment.globals.update(definitions=DEFINITIONS, indicator_columns=INDICATOR_COLUMNS)
    return environment


def _image(png: bytes) -> Markup:
    """A PNG as a data URI, safe as it is (base64 has nothing to escape)."""
    return Markup(plots.data_uri(png))


def _nan(value: float | None) -> float:
    return float("nan") if value is None else value


def _session_label(key: str) -> str:
    """``u-0123456789abcdef/p3/2026-11-27T10:17Z`` -> ``u-012345… 11-27 10:17Z``."""
    annotator, _, start = key.split("/", 2)
    return f"{annotator[:8]}… {start[5:10]} {start[11:]}"


def _over(rows: Sequence[dict], key: str, xlabel: str, label: Callable[[str], str] = str) -> Markup | None:
    """Acceptance rate and seconds per task per group (None: no annotations)."""
    if not rows:
        return None
    return _image(
        plots.acceptance_and_time(
            [label(r[key]) for r in rows],
            [_nan(r["acceptance_rate"]) for r in rows],
            [_nan(r["lead_time_mean"]) for r in rows],
            xlabel,
        )
    )


def _figures(report: dict[str, Any]) -> dict[str, Markup | None]:
    """The report's figures as data URIs (None where there is nothing to plot)."""
    edits, conf, agree = report["class_edits"], report["confusion"], report["agreement"]
    quality, curve, calibration = report["quality"], report["learning_curve"], report.get("calibration")
    return {
        "model_version": _over(report["by_model_version"], "model_version", "model version"),
        "session": _over(report["by_session"], "session", "session (annotator, start)", _session_label),
        "class_edits": _image(
            plots.class_bars(
                [r["class"] for r in edits],
                {
                    "IoU prediction vs final": [_nan(r["iou"]) for r in edits],
                    "pixel acceptance": [_nan(r["pixel_acceptance"]) for r in edits],
                },
                "share",
            )
        )
        if edits
        else None,
        "confusion": _image(plots.confusion_heatmap(conf["labels"], np.asarray(conf["matrix"])))
        if conf["labels"]
        else None,
        "agreement": _image(
            plots.class_bars(
                [r["class"] for r in agree["by_class"]], {"agreement IoU": [r["iou"] for r in agree["by_class"]]}, "IoU"
            )
        )
        if agree["by_class"]
        else None,
        "quality": _image(plots.reliability(quality["reliability"]))
        if quality is not None and quality["compared_pixels"]
        else None,
        "learning_curve": _image(plots.learning_curves(curve["curves"])) if curve is not None else None,
        "calibration": _image(plots.reliability(calibration["reliability"])) if calibration is not None else None,
    }


def _tables(report: dict[str, Any]) -> dict[str, Any]:
    """Rows for the tables of what the report holds as mappings: questionnaire ratings and choices, quality."""
    overview, quality = report["questionnaire"]["summary"], report["quality"]
    return {
        "ratings": [
            {"question": k, "answered": v["answered"], "mean (1-5)": v["mean"], **v["distribution"]}
            for k, v in overview["ratings"].items()
        ],
        "choices": {
            name: [{"answer": k, "count": v} for k, v in counts.items()] for name, counts in overview["choices"].items()
        },
        "class_iou": [{"class": k, "iou": v} for k, v in quality["class_iou"].items()] if quality is not None else [],
        "reliability": [b for b in quality["reliability"] if b["pixels"]] if quality is not None else [],
    }


def render_html(report: dict[str, Any]) -> str:
    """The report as one self-contained HTML page (figures as PNG data URIs), from ``templates/report.html.j2``."""
    template = _environment().get_template("report.html.j2")
    return template.render(report=report, figures=_figures(report), tables=_tables(report))
