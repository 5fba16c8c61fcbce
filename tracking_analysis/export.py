"""Implicit labels of a project as an open-data package (Frictionless Data Package layout).

``scraiber export --project ID --out DIR`` writes::

    DIR/datapackage.json      name, title, licence, contributors (pseudonyms), resources + schemas
    DIR/README.md             what the labels are, how they were made, licence, provenance
    DIR/classes.csv           index, name, colour of the catalogue classes
    DIR/labels.csv            one row per implicit label: task, annotation, image reference,
                              annotator pseudonym, model version, lead time, pixel size, edit figures, files
    DIR/labels/task-T_annotation-A_label.png       uint8 class index, 255 = unlabelled
    DIR/labels/task-T_annotation-A_confidence.png  uint8 confidence x 255 (0 = unlabelled)

Images are referenced (their Label Studio URL), not copied: they may be large or not the
exporter's to publish. Labels are computed from the snapshot with the harvester's arithmetic
(:mod:`tracking_analysis.records`).
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
from PIL import Image

from active_learning.corrections import ConfidenceModel
from active_learning.harvest_log import LABEL
from label_config import Catalogue
from tracking_analysis.records import harvest_snapshot
from tracking_analysis.snapshot import Snapshot

LABEL_FIELDS = [
    ("task_id", "integer", "Label Studio task id"),
    ("annotation_id", "integer", "Label Studio annotation id"),
    ("image", "string", "Reference (URL or path) of the BSE image in Label Studio"),
    ("annotator", "string", "Pseudonym of the expert (HMAC of the Label Studio user id; not reversible)"),
    ("model_version", "string", "Model whose pre-annotation the expert corrected (empty: none)"),
    ("created_at", "datetime", "When the annotation was submitted"),
    ("lead_time_s", "number", "Seconds the expert spent (Label Studio lead_time)"),
    ("pixel_size_um", "number", "Pixel size in micrometres (empty: unknown)"),
    ("labelled_pixels", "integer", "Pixels with a label"),
    ("edited_pixels", "integer", "Pixels the expert changed relative to the pre-annotation"),
    ("accepted_unchanged", "boolean", "The pre-annotation was submitted without any change"),
    ("mean_confidence", "number", "Mean confidence of the labelled pixels"),
    ("label_path", "string", "PNG of uint8 class indices (see classes.csv), 255 = unlabelled"),
    ("confidence_path", "string", "PNG of uint8 confidence x 255, 0 = unlabelled"),
]


def _schema(fields: list[tuple[str, str, str]]) -> dict:
    return {"fields": [{"name": n, "type": t, "description": d} for n, t, d in fields]}


def export_package(
    snapshot: Snapshot,
    catalogue: Catalogue,
    out: str | Path,
    licence: str = "CC-BY-4.0",
    title: str | None = None,
    confidence: ConfidenceModel = ConfidenceModel(),
) -> Path:
    """Write the package (module docstring) into ``out``; returns the path of ``datapackage.json``.

    Raises:
        ValueError: if the snapshot's classes are not the catalogue's, or ``out`` is a non-empty
            folder without a ``datapackage.json`` (refusing to mix with other files).
    """
    if tuple(snapshot.classes) != tuple(catalogue.names):
        raise ValueError(f"snapshot classes {list(snapshot.classes)} differ from the catalogue's {list(catalogue.names)}")
    out = Path(out)
    if out.exists() and any(out.iterdir()) and not (out / "datapackage.json").exists():
        raise ValueError(f"{out} is not empty and holds no datapackage.json; choose a new or empty folder")
    (out / "labels").mkdir(parents=True, exist_ok=True)
    rows, annotators = [], set()
    for item in harvest_snapshot(snapshot, confidence):
        record = item.record
        if record.kind != LABEL:
            continue
        stem = f"labels/task-{record.task_id}_annotation-{record.annotation_id}"
        Image.fromarray(item.label).save(out / f"{stem}_label.png", optimize=True)
        scaled = np.round(np.clip(item.confidence, 0.0, 1.0) * 255.0).astype(np.uint8)
        Image.fromarray(scaled).save(out / f"{stem}_confidence.png", optimize=True)
        task = snapshot.task(record.task_id)
        if record.annotator:
            annotators.add(record.annotator)
        stats = record.stats
        rows.append(
            {
                "task_id": record.task_id,
                "annotation_id": record.annotation_id,
                "image": task.image or "",
                "annotator": record.annotator or "",
                "model_version": record.model_version or "",
                "created_at": record.created_at or "",
                "lead_time_s": "" if record.lead_time is None else record.lead_time,
                "pixel_size_um": "" if task.pixel_size_um is None else task.pixel_size_um,
                "labelled_pixels": stats["labelled_pixels"],
                "edited_pixels": stats["edited_pixels"],
                "accepted_unchanged": str(bool(stats["accepted_unchanged"])).lower(),
                "mean_confidence": round(float(stats["mean_confidence"]), 6),
                "label_path": f"{stem}_label.png",
                "confidence_path": f"{stem}_confidence.png",
            }
        )
    with (out / "labels.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=[name for name, *_ in LABEL_FIELDS])
        writer.writeheader()
        writer.writerows(rows)
    with (out / "classes.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", "name", "colour"])
        for index, mineral in enumerate(catalogue.classes):
            writer.writerow([index, mineral.name, mineral.color])
    title = title or f"scrAiber implicit mineral labels: {snapshot.title}"
    package = {
        "profile": "data-package",
        "name": f"scraiber-implicit-labels-project-{snapshot.project_id}",
        "title": title,
        "description": "Mineral class masks of BSE images of rock thin sections, harvested from experts' corrections of "
        "model pre-annotations in Label Studio (implicit labels), with a per-pixel confidence.",
        "licenses": [{"name": licence, "path": f"https://spdx.org/licenses/{licence}.html", "title": licence}],
        "created": snapshot.captured_at,
        "contributors": [{"title": who, "role": "contributor"} for who in sorted(annotators)],
        "sources": [{"title": f"Label Studio project {snapshot.project_id}: {snapshot.title}"}],
        "scraiber": {"confidence_model": asdict(confidence), "ignore_index": 255, "labels": len(rows)},
        "resources": [
            {"name": "labels", "path": "labels.csv", "format": "csv", "mediatype": "text/csv", "schema": _schema(LABEL_FIELDS)},
            {
                "name": "classes",
                "path": "classes.csv",
                "format": "csv",
                "mediatype": "text/csv",
                "schema": _schema([("index", "integer", "Class index in the label PNGs"), ("name", "string", "Mineral"), ("colour", "string", "Display colour")]),
            },
        ],
    }
    path = out / "datapackage.json"
    path.write_text(json.dumps(package, indent=2) + "\n", encoding="utf-8")
    (out / "README.md").write_text(_readme(package, snapshot, confidence), encoding="utf-8")
    return path


def _readme(package: dict, snapshot: Snapshot, confidence: ConfidenceModel) -> str:
    return f"""# {package["title"]}

{package["description"]}

- Licence: {package["licenses"][0]["name"]} ({package["licenses"][0]["path"]})
- Source: Label Studio project {snapshot.project_id} ("{snapshot.title}"), records captured {snapshot.captured_at}
- Labels: {package["scraiber"]["labels"]} (table `labels.csv`, files in `labels/`), classes in `classes.csv`
- Annotators: {len(package["contributors"])}, named only by pseudonyms (HMAC-SHA256 of the Label Studio user id
  under a key kept by the data owner: stable per person, not reversible)

## How the labels were made

An expert corrected a model's pre-annotation (or painted from scratch) in Label Studio and submitted it.
The label is the submitted mask: one mineral per pixel, 255 where nothing was painted (unlabelled, not
"background"). The confidence (stored x 255) is 1 where the expert changed the pre-annotation, decays as
exp(-d / {confidence.length_scale_px:g} px) with the distance d to the nearest change, and far from any change
is {confidence.untouched:g} x an attention factor (1 if the expert changed anything, else rising from
{confidence.hasty_floor:g} for an instant submission to 1 after {confidence.review_seconds:g} s). These
parameters are judgement, not measurement.

Images are referenced by their Label Studio URL (column `image`), not included.
"""
