"""The tracking report: every indicator of a project as JSON, and as one self-contained HTML page.

:func:`build_report` computes the numbers from a :class:`~tracking_analysis.snapshot.Snapshot`
(plus optional ground truth and learning-curve table); :func:`render_html` lays them out with
the figures embedded as PNG data URIs (no external files, scripts or fonts), so the page
can be mailed or archived as it is. ``--format json`` writes the dict of :func:`build_report`
(NaN as null).
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from active_learning.corrections import ConfidenceModel
from active_learning.harvest_log import LABEL
from active_learning.simulated_expert import TruthLookup
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
            if h.record.kind == LABEL and h.record.annotator
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

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;max-width:1100px;margin:1.5em auto;padding:0 1em;color:#222}
div.wrap{overflow-x:auto}
h1{font-size:1.5em}h2{font-size:1.2em;border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;font-size:.8em;margin:.6em 0}th,td{border:1px solid #ddd;padding:.25em .5em;text-align:right}
th{background:#f3f3f3}td.t,th.t{text-align:left}p.note{color:#555;font-size:.9em}img{max-width:100%;display:block;margin:.5em 0}
dl{font-size:.9em}dt{font-weight:600;margin-top:.4em}dd{margin-left:1.2em;color:#444}
"""


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) < 1e5 else f"{value:.3g}"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value)


def _table(rows: Sequence[dict], columns: Sequence[str], text_columns: Sequence[str] = ()) -> str:
    if not rows:
        return '<p class="note">No data.</p>'
    head = "".join(
        f'<th class="{"t" if c in text_columns else ""}">{html.escape(c.replace("_", " "))}</th>' for c in columns
    )
    body = "".join(
        "<tr>"
        + "".join(f'<td class="{"t" if c in text_columns else ""}">{html.escape(_fmt(r.get(c)))}</td>' for c in columns)
        + "</tr>"
        for r in rows
    )
    return f'<div class="wrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _img(png: bytes, alt: str) -> str:
    return f'<img src="{plots.data_uri(png)}" alt="{html.escape(alt)}">'


def _explain(*names: str) -> str:
    items = "".join(f"<dt>{html.escape(n)}</dt><dd>{html.escape(DEFINITIONS[n])}</dd>" for n in names)
    return f"<dl>{items}</dl>"


def _section(title: str, body: str) -> str:
    return f"<section><h2>{html.escape(title)}</h2>{body}</section>"


INDICATOR_COLUMNS = (
    "annotations", "skip_rate", "acceptance_rate", "pixel_acceptance", "edit_fraction", "mean_edit_iou",
    "lead_time_mean", "lead_time_median", "seconds_per_kpx", "seconds_per_mm2",
)  # fmt: skip


def _session_label(key: str) -> str:
    """``u-0123456789abcdef/p3/2026-11-27T10:17Z`` -> ``u-012345… 11-27 10:17Z``."""
    annotator, _, start = key.split("/", 2)
    return f"{annotator[:8]}… {start[5:10]} {start[11:]}"


def _over(rows: Sequence[dict], key: str, xlabel: str, label: Callable[[str], str] = str) -> str:
    if not rows:
        return '<p class="note">No annotations yet.</p>'
    png = plots.acceptance_and_time(
        [label(r[key]) for r in rows],
        [r["acceptance_rate"] if r["acceptance_rate"] is not None else float("nan") for r in rows],
        [r["lead_time_mean"] if r["lead_time_mean"] is not None else float("nan") for r in rows],
        xlabel,
    )
    return _img(png, f"acceptance rate and seconds per task by {xlabel}") + _table(
        rows, [key, *INDICATOR_COLUMNS], [key]
    )


def render_html(report: dict[str, Any]) -> str:
    """The report as one self-contained HTML page (figures as PNG data URIs)."""
    project = report["project"]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>scrAiber tracking report: {html.escape(project['title'])}</title><style>{_CSS}</style></head><body>",
        f"<h1>scrAiber tracking report: {html.escape(project['title'])} (project {project['id']})</h1>",
        f"<p class='note'>Label Studio records captured {html.escape(project['captured_at'] or '?')}; report generated "
        f"{html.escape(report['generated_at'])}. Annotators appear as pseudonyms. Ratios pool all pixels or tasks of a group.</p>",
    ]
    overall = report["overall"]
    parts.append(_section("Summary", _table([overall], INDICATOR_COLUMNS) + _explain(*INDICATOR_COLUMNS)))
    parts.append(
        _section(
            "Acceptance and time across model versions",
            "<p class='note'>Does a new model version save the experts work? Versions in order of first use.</p>"
            + _over(report["by_model_version"], "model_version", "model version"),
        )
    )
    parts.append(
        _section(
            "Over time: sessions",
            "<p class='note'>A session is one annotator's run of work on this project without a break of more than "
            f"{report['settings']['session_gap_seconds'] / 60:.0f} minutes.</p>"
            + _over(report["by_session"], "session", "session (annotator, start)", _session_label),
        )
    )
    parts.append(
        _section("Per annotator", _table(report["by_annotator"], ["annotator", *INDICATOR_COLUMNS], ["annotator"]))
    )
    edits = report["class_edits"]
    edit_body = '<p class="note">No corrected pre-annotations yet.</p>'
    if edits:
        edit_body = _img(
            plots.class_bars(
                [r["class"] for r in edits],
                {
                    "IoU prediction vs final": [r["iou"] if r["iou"] is not None else float("nan") for r in edits],
                    "pixel acceptance": [
                        r["pixel_acceptance"] if r["pixel_acceptance"] is not None else float("nan") for r in edits
                    ],
                },
                "share",
            ),
            "edit IoU per mineral",
        )
        edit_body += _table(
            edits,
            [
                "class",
                "predicted",
                "final",
                "kept",
                "added",
                "removed",
                "relabelled_out",
                "relabelled_in",
                "iou",
                "pixel_acceptance",
            ],
            ["class"],
        )
    parts.append(_section("Corrections per mineral", edit_body + _explain("mean_edit_iou", "pixel_acceptance")))
    conf = report["confusion"]
    conf_body = '<p class="note">No corrected pre-annotations yet.</p>'
    if conf["labels"]:
        conf_body = _img(
            plots.confusion_heatmap(conf["labels"], np.asarray(conf["matrix"])), "confusion heatmap: proposed to kept"
        )
        conf_body += "<h3>Most frequent corrections</h3>" + _table(
            report["confusion_pairs"], ["proposed", "kept", "pixels", "share"], ["proposed", "kept"]
        )
    parts.append(_section("Confusion: proposed by the model, kept by the expert", conf_body + _explain("confusion")))
    agree = report["agreement"]
    agree_body = '<p class="note">No task was labelled by more than one annotator.</p>'
    if agree["by_class"]:
        agree_body = (
            f"<p>Tasks seen by several annotators: {len(agree['tasks'])}; mean agreement IoU over minerals: "
            f"<b>{_fmt(agree['mean_iou'])}</b>.</p>"
            + _img(
                plots.class_bars(
                    [r["class"] for r in agree["by_class"]],
                    {"agreement IoU": [r["iou"] for r in agree["by_class"]]},
                    "IoU",
                ),
                "agreement per mineral",
            )
            + _table(agree["by_class"], ["class", "intersection", "union", "iou", "pairs"], ["class"])
        )
    parts.append(_section("Agreement between annotators", agree_body + _explain("agreement_iou")))
    quality = report["quality"]
    if quality is None:
        quality_body = '<p class="note">No ground truth given (<code>--truth DIR</code> with <code>*_classes.png</code> masks).</p>'
    else:
        quality_body = (
            f"<p>Implicit labels compared: {quality['labels']} on {quality['tasks']} task(s), {quality['compared_pixels']} pixels. "
            f"Pixel accuracy <b>{_fmt(quality['pixel_accuracy'])}</b> (the starting prediction on the same pixels: "
            f"{_fmt(quality['prediction_accuracy'])}); mean IoU {_fmt(quality['mean_iou'])}; coverage {_fmt(quality['coverage'])}; "
            f"expected calibration error <b>{_fmt(quality['ece'])}</b>.</p>"
        )
        if quality["compared_pixels"]:
            quality_body += _img(
                plots.reliability(quality["reliability"]), "calibration curve of the implicit-label confidence"
            )
        quality_body += _table(
            [{"class": k, "iou": v} for k, v in quality["class_iou"].items()], ["class", "iou"], ["class"]
        )
        quality_body += _table(
            [b for b in quality["reliability"] if b["pixels"]], ["low", "high", "pixels", "confidence", "accuracy"]
        )
        if quality["not_compared"]:
            quality_body += "<p class='note'>Not compared: " + html.escape("; ".join(quality["not_compared"])) + "</p>"
    parts.append(
        _section(
            "Implicit-label quality against ground truth",
            quality_body + _explain("pixel_accuracy", "label_iou", "coverage", "ece"),
        )
    )
    curve = report["learning_curve"]
    if curve is None:
        curve_body = '<p class="note">No learning-curve table given (<code>--learning-curve FILE</code>, e.g. from <code>scraiber bench active-learning</code>).</p>'
    else:
        curve_body = (
            "<p class='note'>Validation mIoU after retraining on the labels of n tiles; solid = implicit labels (harvested corrections), "
            "dashed = explicit labels (labelled from scratch). Ratio = implicit / explicit at the same budget.</p>"
            + _img(plots.learning_curves(curve["curves"]), "learning curves: implicit vs explicit labels")
            + _table(
                curve["implicit_vs_explicit"],
                ["strategy", "n_labelled_tiles", "implicit", "explicit", "ratio"],
                ["strategy"],
            )
        )
    parts.append(_section("Learning curve: implicit vs explicit labels", curve_body))
    calibration = report.get("calibration")
    if calibration is not None:
        parts.append(_section("Confidence calibration (benchmark)", (
            f"<p>Confidence fitted on expert {html.escape(str(calibration['fitted_on']))}'s audits, measured on expert "
            f"{html.escape(str(calibration['measured_on']))}: adaptive ECE <b>{_fmt(calibration['ece'])}</b> "
            f"(hand-set confidence: {_fmt(calibration['ece_hand_set'])}).</p>"
            + _img(plots.reliability(calibration["reliability"]), "reliability diagram of the calibrated confidence")
        )))  # fmt: skip
    parts.append(_section("Questionnaire", _questionnaire_html(report["questionnaire"])))
    parts.append(
        _section(
            "Tasks",
            _table(
                report["tasks"],
                [
                    "task_id",
                    "annotations",
                    "skipped",
                    "annotators",
                    "accepted",
                    "lead_time_mean",
                    "drafts",
                    "pixel_size_um",
                ],
            )
            + _explain("drafts"),
        )
    )
    parts.append("</body></html>")
    return "\n".join(parts)


def _questionnaire_html(section: dict) -> str:
    overview = section["summary"]
    if not overview["answers"]:
        return '<p class="note">No answers yet (project "scrAiber session questionnaire", created by <code>scraiber up</code>).</p>'
    ratings = [
        {"question": k, "answered": v["answered"], "mean (1-5)": v["mean"], **v["distribution"]}
        for k, v in overview["ratings"].items()
    ]
    body = f"<p>Answers: {overview['answers']}.</p>" + _table(
        ratings, ["question", "answered", "mean (1-5)", "1", "2", "3", "4", "5"], ["question"]
    )
    for name, counts in overview["choices"].items():
        body += f"<h3>{html.escape(name.replace('_', ' '))}</h3>" + _table(
            [{"answer": k, "count": v} for k, v in counts.items()], ["answer", "count"], ["answer"]
        )
    if overview["comments"]:
        body += "<h3>Comments</h3><ul>" + "".join(f"<li>{html.escape(c)}</li>" for c in overview["comments"]) + "</ul>"
    body += "<h3>Answers beside the indicators of the same session</h3>" + _table(
        section["by_session"],
        [
            "session",
            "usefulness",
            "trust",
            "effort",
            "hardest",
            "most_time",
            "acceptance_rate",
            "lead_time_mean",
            "mean_edit_iou",
            "skip_rate",
        ],
        ["session", "hardest", "most_time"],
    )
    return body
