"""Implicit labels of a project as an open-data package a repository accepts and others can reuse.

``scraiber export --project ID --out DIR`` (or ``--snapshot FILE``) writes::

    DIR/README.md                    what the labels mean, how they were made, splits, files, how to load them
    DIR/datapackage.json             Frictionless Data Package: every other file a resource with bytes + sha256
    DIR/ro-crate-metadata.json       RO-Crate 1.1 (rocrate library): creators, licence, every file with its sha256
    DIR/datacite.json, datacite.xml  DataCite Metadata Schema 4.5 (validated against its JSON schema)
    DIR/.zenodo.json                 Zenodo deposition metadata (scraiber publish --zenodo)
    DIR/CITATION.cff                 Citation File Format 1.2.0
    DIR/data/classes.csv             class index, name, colour (the palette of the masks), expected BSE brightness
    DIR/data/tasks.csv               one row per image: split, file or URL, sha256, shape, dtype, pixel size and its source, IGSN
    DIR/data/labels.csv              one row per label: full provenance (see LABEL_FIELDS)
    DIR/data/modes.csv               modal composition of each label (pixels, % of labelled pixels, mm²)
    DIR/images/task-T.png|.tif       the BSE image as Label Studio holds it (+ task-T_sem.json: SEM metadata)
    DIR/labels/task-T_annotation-A_label.png       indexed PNG, catalogue palette, 255 = unlabelled (transparent)
    DIR/labels/task-T_annotation-A_confidence.png  uint8 confidence x 255 (0 = unlabelled)
    DIR/labels/task-T_annotation-A_prediction.png  the pre-annotation the expert started from (indexed PNG)
    DIR/crystals/annotation-A/*.csv, summary.json  ``scraiber crystals`` tables of the label (--crystals)
    DIR/coco/minerals.json, crystals.json          COCO segmentation (--coco)
    DIR/model/, MODEL_CARD.md, model_card.json     the MLflow model and its card (--with-model)

``--zip`` also writes ``DIR.zip`` (the package at the archive's root). Labels are computed
from the snapshot with the harvester's own arithmetic (:mod:`tracking_analysis.records`).
Tasks are split by task (all labels of an image on one side): the validation tasks the
retraining cycles hold out stay ``test``; of the others, every fourth task to be labelled
(the 2nd, 6th, 10th...) is ``validation``, the rest ``train``.
"""

from __future__ import annotations

import csv
import json
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from active_learning.corrections import ConfidenceModel
from active_learning.harvest_log import LABEL
from label_config import Catalogue
from label_config.catalogue import IGNORE_INDEX
from ml_backend.masks import palette_png
from tracking_analysis.datapackage import DESCRIPTOR, media_type, package_files, sha256_of, write_datapackage
from tracking_analysis.dataset_metadata import (
    DEFAULT_KEYWORDS,
    CrateFile,
    Creator,
    DatasetMetadata,
    RelatedIdentifier,
    check_licence,
    citation_cff,
    datacite,
    datacite_xml,
    write_ro_crate,
    zenodo_metadata,
)
from tracking_analysis.model_card import ModelLookup
from tracking_analysis.package_images import PIXEL_SIZE_SOURCES, Fetcher, PackagedImage, package_image
from tracking_analysis.records import Harvested, harvest_snapshot
from tracking_analysis.snapshot import Snapshot

VALIDATION_EVERY = 4  # of the tasks not held out, the 2nd, 6th, 10th... labelled are validation
METADATA_FILES = (
    "README.md",
    "CITATION.cff",
    "datacite.json",
    "datacite.xml",
    ".zenodo.json",
    "ro-crate-metadata.json",
)

LABEL_FIELDS = [
    ("annotation_id", "integer", "Label Studio annotation id (the label's id)"),
    ("task_id", "integer", "Label Studio task id (row of tasks.csv)"),
    ("updated_at", "datetime", "Version of the annotation exported (Label Studio updated_at)"),
    ("split", "string", "train, validation or test (held-out tasks of the retraining cycles are test)"),
    (
        "label_kind",
        "string",
        "implicit: the expert corrected a model's pre-annotation; explicit: painted with no pre-annotation",
    ),
    ("annotator", "string", "Pseudonym of the expert (HMAC of the Label Studio user id; not reversible)"),
    ("created_at", "datetime", "When the annotation was submitted"),
    ("lead_time_s", "number", "Seconds the expert spent (Label Studio lead_time; empty: not recorded)"),
    ("prediction_id", "integer", "Label Studio prediction the expert started from (empty: none)"),
    (
        "prediction_rule",
        "string",
        "How that prediction was found: parent_prediction, served_version, latest_before, none",
    ),
    ("prediction_score", "number", "Score (uncertainty) of that prediction, as Label Studio stored it"),
    ("model_version", "string", "model_version of that prediction"),
    (
        "model_kind",
        "string",
        "mlflow-registered, shipped-fcn, clustering, unknown (+fast-learner: refined per project)",
    ),
    ("model_uri", "string", "MLflow model URI of a registered model (models:/NAME/VERSION)"),
    ("model_run_id", "string", "MLflow run that logged the model (empty: registry not reachable at export)"),
    ("prediction_path", "string", "Indexed PNG of the pre-annotation (catalogue indices, 255 = nothing predicted)"),
    ("height", "integer", "Label height in pixels (= image height)"),
    ("width", "integer", "Label width in pixels (= image width)"),
    ("pixel_size_um", "number", "Pixel size in micrometres (empty: unknown)"),
    ("pixel_size_source", "string", "Where the pixel size came from (SEM metadata, Label Studio task data, unknown)"),
    ("labelled_pixels", "integer", "Pixels with a label"),
    ("edited_pixels", "integer", "Pixels the expert changed relative to the pre-annotation"),
    ("accepted_unchanged", "boolean", "The pre-annotation was submitted without any change"),
    ("mean_confidence", "number", "Mean confidence of the labelled pixels"),
    ("label_path", "string", "Indexed PNG of the label (catalogue indices and palette, 255 = unlabelled)"),
    ("confidence_path", "string", "PNG of uint8 confidence x 255, 0 = unlabelled"),
    ("image_path", "string", "The BSE image in the package (empty: referenced by image_url)"),
    ("image_url", "string", "Stable URL of the BSE image when it is not in the package"),
    ("image_sha256", "string", "SHA-256 of the image file (in the package or behind image_url)"),
    ("scraiber_version", "string", "scrAiber version that exported the label"),
]
TASK_FIELDS = [
    ("task_id", "integer", "Label Studio task id"),
    ("split", "string", "train, validation or test"),
    ("image_path", "string", "The BSE image in the package (empty: referenced by image_url)"),
    ("image_url", "string", "Stable URL of the image (with --image-url-template)"),
    ("sha256", "string", "SHA-256 of the image file"),
    ("bytes", "integer", "Size of the image file"),
    (
        "original_sha256",
        "string",
        "SHA-256 of the file as Label Studio held it (differs only for RGB files stored as grey)",
    ),
    ("width", "integer", "Image width in pixels"),
    ("height", "integer", "Image height in pixels"),
    ("dtype", "string", "Pixel type of the grey image (uint8, uint16, float32)"),
    ("pixel_size_um", "number", "Pixel size in micrometres (empty: unknown)"),
    ("pixel_size_source", "string", "Where the pixel size came from"),
    ("sem_metadata_path", "string", "SEM metadata extracted from the TIFF tags (JSON), if any"),
    ("source_reference", "string", "The image reference in Label Studio (task data; internal to that server)"),
    ("igsn", "string", "IGSN of the physical sample (task data igsn)"),
    ("sample", "string", "Sample name (task data sample)"),
]
CLASS_FIELDS = [
    ("index", "integer", "Class index in the masks"),
    ("name", "string", "Mineral (catalogue name)"),
    ("colour", "string", "Display colour (the masks' palette entry)"),
    ("mean_z", "number", "Mean atomic number of the phase (expected BSE brightness rises with it)"),
    ("synonyms", "string", "Other names accepted for the class (semicolon-separated)"),
    ("description", "string", "What the class covers"),
]
MODE_FIELDS = [
    ("annotation_id", "integer", "The label"),
    ("class_index", "integer", "Class index"),
    ("class_name", "string", "Mineral"),
    ("pixels", "integer", "Labelled pixels of the class"),
    ("percent", "number", "Share of the label's labelled pixels, %"),
    ("area_mm2", "number", "Area in mm² (empty: pixel size unknown)"),
]
DESCRIPTIONS = {
    "README.md": "What the labels are, how they were made, the files, how to load them",
    "CITATION.cff": "How to cite the dataset (Citation File Format 1.2.0)",
    "datacite.json": "DataCite Metadata Schema 4.5 (JSON)",
    "datacite.xml": "DataCite Metadata Schema 4.5 (XML)",
    ".zenodo.json": "Zenodo deposition metadata",
    "ro-crate-metadata.json": "RO-Crate 1.1 metadata",
    "data/classes.csv": "Mineral classes, their colours (palette) and expected brightness",
    "data/tasks.csv": "One row per BSE image: split, file, checksum, shape, pixel size, sample",
    "data/labels.csv": "One row per label: provenance, statistics, files",
    "data/modes.csv": "Modal composition of each label",
    "images/": "BSE images (as Label Studio held them) and their SEM metadata",
    "labels/": "Labels (indexed PNG), confidences (x 255) and pre-annotations (indexed PNG)",
    "crystals/": "Crystal tables of each label (scraiber crystals)",
    "coco/": "COCO segmentation JSON (RLE): minerals (semantic) and crystals (instances)",
    "model/": "The model as an MLflow Model (pyfunc, safetensors weights)",
    "MODEL_CARD.md": "Model card",
    "model_card.json": "Model card (JSON)",
}


@dataclass(frozen=True)
class ExportOptions:
    """What the package says about itself and what goes in.

    Attributes:
        licence: SPDX identifier (:data:`tracking_analysis.dataset_metadata.LICENCES`).
        title: Title (default from the project).
        version: Dataset version.
        creators: Creators (annotators only by pseudonym unless they are among them).
        keywords: Added to :data:`DEFAULT_KEYWORDS`.
        related: Publications (DOIs), samples (IGSN), URLs; the tasks' IGSNs are added.
        publisher: Publisher named in DataCite (the repository).
        image_url_template: Reference images by URL instead of copying them (``{task_id}``, ``{name}``, ``{sha256}``).
        coco: Also write COCO JSON.
        crystals: Also write crystal tables (``scraiber crystals``) per label.
        zip: Also write ``<out>.zip``.
        confidence: Confidence model the labels are computed with.
        created: Creation date-time (ISO; default: now).
    """

    licence: str = "CC-BY-4.0"
    title: str | None = None
    version: str = "1.0.0"
    creators: tuple[Creator, ...] = ()
    keywords: tuple[str, ...] = ()
    related: tuple[RelatedIdentifier, ...] = ()
    publisher: str = "Zenodo"
    image_url_template: str | None = None
    coco: bool = False
    crystals: bool = False
    zip: bool = False
    confidence: ConfidenceModel = field(default_factory=ConfidenceModel)
    created: str | None = None


def scraiber_version() -> str:
    """The installed scrAiber version."""
    try:
        return version("scraiber")
    except PackageNotFoundError:
        return "unknown"


def assign_splits(labelled_tasks: list[int]) -> dict[int, str]:
    """Task -> split, for tasks in the order of their first label (see the module docstring)."""
    from active_learning.harvest_log import HarvestRecord
    from active_learning.retrain import held_out_tasks

    records = [HarvestRecord(0, "", 0, task, LABEL) for task in labelled_tasks]
    held = held_out_tasks(records)
    splits, others = {}, 0
    for task in labelled_tasks:
        if task in held:
            splits[task] = "test"
        else:
            splits[task] = "validation" if others % VALIDATION_EVERY == 1 else "train"
            others += 1
    return splits


def _prepare(out: Path) -> None:
    """An empty folder, or an earlier package's folder emptied of that package's files."""
    if not out.exists() or not any(out.iterdir()):
        out.mkdir(parents=True, exist_ok=True)
        return
    descriptor = out / DESCRIPTOR
    if not descriptor.is_file():
        raise ValueError(f"{out} is not empty and holds no datapackage.json; choose a new or empty folder")
    listed = {r.get("path") for r in json.loads(descriptor.read_text(encoding="utf-8")).get("resources", [])}
    stale = [f for f in package_files(out) if f not in listed and f not in METADATA_FILES]
    if stale:
        raise ValueError(
            f"{out} holds files that are not part of the earlier package ({stale[:3]}); choose a new folder"
        )
    shutil.rmtree(out)
    out.mkdir(parents=True)


def _write_csv(path: Path, fields: list[tuple[str, str, str]], rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=[name for name, *_ in fields])
        writer.writeheader()
        writer.writerows({k: "" if v is None else v for k, v in row.items()} for row in rows)


def _schema(fields: list[tuple[str, str, str]]) -> dict:
    return {"fields": [{"name": n, "type": t, "description": d} for n, t, d in fields]}


def modes(
    annotation_id: int, label: np.ndarray, catalogue: Catalogue, pixel_size_um: float | None
) -> list[dict[str, Any]]:
    """Rows of ``modes.csv``: pixels, % of the labelled pixels and mm² of each class present."""
    counts = np.bincount(label[label != IGNORE_INDEX].ravel(), minlength=len(catalogue))[: len(catalogue)]
    total = int(counts.sum())
    return [
        {"annotation_id": annotation_id, "class_index": index, "class_name": catalogue.names[index], "pixels": int(n),
         "percent": round(100.0 * n / total, 4),
         "area_mm2": None if pixel_size_um is None else round(float(n) * (pixel_size_um / 1000.0) ** 2, 8)}
        for index, n in enumerate(counts) if n
    ]  # fmt: skip


def _crystal_tables(image: PackagedImage, item: Harvested, catalogue: Catalogue, out: Path) -> None:
    from ml_backend.crystals.analysis import analyse_crystals
    from ml_backend.crystals.config import CrystalConfig
    from ml_backend.crystals.report import write_report

    record = item.record
    assert item.label is not None  # export() passes LABEL harvests only, which carry their label
    config = CrystalConfig()
    analysis = analyse_crystals(image.pixels, item.label, image.pixel_size_um, catalogue, config)
    target = out / "crystals" / f"annotation-{record.annotation_id}"
    target.mkdir(parents=True, exist_ok=True)
    source = {"image": image.path or image.url, "mask": f"labels/task-{record.task_id}_annotation-{record.annotation_id}_label.png",
              "pixel_size_source": PIXEL_SIZE_SOURCES[image.pixel_size_source]}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="scraiber-crystals-") as tmp:
        written = write_report(analysis, tmp, config, source)
        for path in written.values():
            if path.suffix in (".csv", ".json"):  # tables; plots and Parquet copies stay out
                shutil.copyfile(path, target / path.name)


def export_package(
    snapshot: Snapshot,
    catalogue: Catalogue,
    out: str | Path,
    options: ExportOptions = ExportOptions(),
    images: Fetcher | None = None,
    models: ModelLookup | None = None,
    with_model: Callable[[Path], dict[str, Any]] | None = None,
    max_pixels: int = 2**30,
) -> Path:
    """Write the package (module docstring) into ``out``; returns the path of ``datapackage.json``.

    Args:
        snapshot: The project's records.
        catalogue: Its classes.
        out: A new or empty folder, or the folder of an earlier package (replaced).
        options: Metadata and optional parts.
        images: Returns the bytes of a task's image reference (Label Studio, a folder).
        models: Turns model versions into MLflow provenance (default: without registry lookups).
        with_model: Writes the model and its card into the folder given (``--with-model``).
        max_pixels: Decompression-bomb limit for images.

    Raises:
        ValueError: if the snapshot's classes are not the catalogue's, ``out`` holds other
            files, an image is missing, or an image's shape differs from its labels'.
    """
    if tuple(snapshot.classes) != tuple(catalogue.names):
        raise ValueError(
            f"snapshot classes {list(snapshot.classes)} differ from the catalogue's {list(catalogue.names)}"
        )
    check_licence(options.licence)
    out = Path(out)
    _prepare(out)
    models = models or ModelLookup(None)
    harvested = [h for h in harvest_snapshot(snapshot, options.confidence) if h.record.kind == LABEL]
    order = list(dict.fromkeys(h.record.task_id for h in harvested))
    splits = assign_splits(order)
    packaged = _images(snapshot, order, out, options, images, max_pixels)
    (out / "labels").mkdir(parents=True, exist_ok=True)
    created = options.created or datetime.now(UTC).isoformat(timespec="seconds")
    scores: dict[int | None, float | None] = {p.id: p.score for p in snapshot.predictions}
    rows, mode_rows, annotators = [], [], set()
    for item in harvested:
        record, image = item.record, packaged[item.record.task_id]
        # harvest_annotation gives every LABEL record its label and confidence
        assert item.label is not None and item.confidence is not None
        if (image.height, image.width) != item.label.shape:
            raise ValueError(
                f"task {record.task_id}: image is {image.height} x {image.width} px, its label {item.label.shape[0]} x {item.label.shape[1]}"
            )
        stem = f"labels/task-{record.task_id}_annotation-{record.annotation_id}"
        (out / f"{stem}_label.png").write_bytes(palette_png(item.label, catalogue))
        scaled = np.round(np.clip(item.confidence, 0.0, 1.0) * 255.0).astype(np.uint8)
        Image.fromarray(scaled).save(out / f"{stem}_confidence.png", optimize=True)
        if item.predicted is not None:
            (out / f"{stem}_prediction.png").write_bytes(palette_png(item.predicted, catalogue))
        if record.annotator:
            annotators.add(record.annotator)
        provenance = models(record.model_version)
        stats = record.stats
        rows.append({
            "annotation_id": record.annotation_id, "task_id": record.task_id, "updated_at": record.updated_at,
            "split": splits[record.task_id], "label_kind": "implicit" if record.prediction_id is not None else "explicit",
            "annotator": record.annotator, "created_at": record.created_at, "lead_time_s": record.lead_time,
            "prediction_id": record.prediction_id, "prediction_rule": record.prediction_rule,
            "prediction_score": scores.get(record.prediction_id), "model_version": record.model_version,
            "model_kind": provenance.kind, "model_uri": provenance.model_uri, "model_run_id": provenance.run_id,
            "prediction_path": f"{stem}_prediction.png" if item.predicted is not None else None,
            "height": image.height, "width": image.width, "pixel_size_um": image.pixel_size_um,
            "pixel_size_source": PIXEL_SIZE_SOURCES[image.pixel_size_source],
            "labelled_pixels": stats["labelled_pixels"], "edited_pixels": stats["edited_pixels"],
            "accepted_unchanged": str(bool(stats["accepted_unchanged"])).lower(),
            "mean_confidence": round(float(stats["mean_confidence"]), 6),
            "label_path": f"{stem}_label.png", "confidence_path": f"{stem}_confidence.png",
            "image_path": image.path, "image_url": image.url, "image_sha256": image.sha256,
            "scraiber_version": scraiber_version(),
        })  # fmt: skip
        mode_rows += modes(record.annotation_id, item.label, catalogue, image.pixel_size_um)
        if options.crystals:
            _crystal_tables(image, item, catalogue, out)
    _tables(out, catalogue, snapshot, packaged, splits, rows, mode_rows)
    if options.coco:
        _coco(out, harvested, packaged, splits, catalogue, options, created)
    if with_model is not None:
        with_model(out)
    meta = _metadata(snapshot, options, rows, packaged, annotators, created)
    _write_metadata(out, meta, snapshot, options, rows, packaged)
    descriptor = {
        "profile": "data-package",
        "name": meta.name,
        "title": meta.title,
        "description": meta.description,
        "version": meta.version,
        "created": created,
        "keywords": list(meta.keywords),
        "licenses": [{"name": meta.licence, "path": meta.licence_url, "title": meta.licence}],
        "contributors": _contributors(meta.creators, annotators),
        "sources": [{"title": f"Label Studio project {snapshot.project_id}: {snapshot.title}"}],
        "scraiber": {
            "version": scraiber_version(), "confidence_model": asdict(options.confidence), "ignore_index": IGNORE_INDEX,
            "labels": len(rows), "images": len(packaged),
            "splits": {s: sorted(t for t, v in splits.items() if v == s) for s in ("train", "validation", "test")},
            "related_identifiers": [asdict(r) for r in meta.related],
        },
    }  # fmt: skip
    path = write_datapackage(out, descriptor, _schemas(out), DESCRIPTIONS)
    if options.zip:
        write_zip(out, out.parent / f"{out.name}.zip")
    return path


def _images(
    snapshot: Snapshot, tasks: list[int], out: Path, options: ExportOptions, fetch: Fetcher | None, max_pixels: int
) -> dict[int, PackagedImage]:
    packaged = {}
    for task_id in tasks:
        task = snapshot.task(task_id)
        if not task.image:
            raise ValueError(f"task {task_id} has no image reference")
        if fetch is None:
            raise ValueError(f"task {task_id}: its image {task.image!r} cannot be fetched: give --images DIR (a folder "
                             "with the image files) or LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY")  # fmt: skip
        data = fetch(task.image)
        packaged[task_id] = package_image(
            task_id, data, task.image, out, task.pixel_size_um, options.image_url_template, max_pixels
        )
    return packaged


def _tables(out: Path, catalogue: Catalogue, snapshot: Snapshot, packaged: dict[int, PackagedImage],
            splits: dict[int, str], rows: list[dict], mode_rows: list[dict]) -> None:  # fmt: skip
    _write_csv(out / "data" / "labels.csv", LABEL_FIELDS, rows)
    _write_csv(out / "data" / "modes.csv", MODE_FIELDS, mode_rows)
    _write_csv(out / "data" / "classes.csv", CLASS_FIELDS, [
        {"index": i, "name": m.name, "colour": m.color, "mean_z": round(m.mean_z, 4), "synonyms": "; ".join(m.synonyms),
         "description": m.description} for i, m in enumerate(catalogue.classes)
    ])  # fmt: skip
    tasks = []
    for task_id, image in packaged.items():
        task = snapshot.task(task_id)
        tasks.append({
            "task_id": task_id, "split": splits[task_id], "image_path": image.path, "image_url": image.url,
            "sha256": image.sha256, "bytes": image.size, "original_sha256": image.original_sha256, "width": image.width,
            "height": image.height, "dtype": image.dtype, "pixel_size_um": image.pixel_size_um,
            "pixel_size_source": PIXEL_SIZE_SOURCES[image.pixel_size_source], "sem_metadata_path": image.sem_metadata_path,
            "source_reference": task.image, "igsn": task.igsn, "sample": task.sample,
        })  # fmt: skip
    _write_csv(out / "data" / "tasks.csv", TASK_FIELDS, tasks)


def _schemas(out: Path) -> dict[str, dict]:
    schemas = {
        "data/labels.csv": _schema(LABEL_FIELDS),
        "data/tasks.csv": _schema(TASK_FIELDS),
        "data/classes.csv": _schema(CLASS_FIELDS),
        "data/modes.csv": _schema(MODE_FIELDS),
    }
    for path in sorted(out.glob("crystals/*/*.csv")):
        schemas[path.relative_to(out).as_posix()] = infer_schema(path)
    return schemas


def infer_schema(path: Path) -> dict:
    """A Table Schema of a CSV from the types pandas reads in the whole file."""
    import pandas as pd

    frame = pd.read_csv(path)
    kinds = {"i": "integer", "u": "integer", "f": "number", "b": "boolean"}
    return {
        "fields": [{"name": str(name), "type": kinds.get(frame[name].dtype.kind, "string")} for name in frame.columns]
    }


def _coco(out: Path, harvested: list[Harvested], packaged: dict[int, PackagedImage], splits: dict[int, str],
          catalogue: Catalogue, options: ExportOptions, created: str) -> None:  # fmt: skip
    from tracking_analysis.coco import CocoImage, coco_crystals, coco_minerals

    images = []
    for h in harvested:
        file_name = packaged[h.record.task_id].path or packaged[h.record.task_id].url
        assert file_name is not None  # a packaged image has a package path or a URL
        assert h.label is not None  # export() passes LABEL harvests only, which carry their label
        images.append(CocoImage(h.record.annotation_id, h.record.task_id, file_name, h.label,
                                h.record.annotator or "", splits[h.record.task_id]))  # fmt: skip
    info = {"description": options.title or "scrAiber mineral labels", "version": options.version, "year": int(created[:4]),
            "contributor": "; ".join(c.name for c in options.creators), "date_created": created}  # fmt: skip
    licence = {"id": 1, "name": options.licence, "url": f"https://spdx.org/licenses/{options.licence}.html"}
    (out / "coco").mkdir(exist_ok=True)
    for name, data in (
        ("minerals", coco_minerals(images, catalogue, info, licence)),
        ("crystals", coco_crystals(images, catalogue, info, licence)),
    ):
        (out / "coco" / f"{name}.json").write_text(json.dumps(data) + "\n", encoding="utf-8")


def _contributors(creators: tuple[Creator, ...], annotators: set[str]) -> list[dict[str, str]]:
    named = {c.pseudonym: c for c in creators if c.pseudonym}
    people = [{"title": c.name, "role": "author", **({"path": c.orcid_url} if c.orcid_url else {}),
               **({"organization": c.affiliation} if c.affiliation else {})} for c in creators]  # fmt: skip
    people += [{"title": named[who].name if who in named else who, "role": "contributor"} for who in sorted(annotators)]
    return people


def _metadata(snapshot: Snapshot, options: ExportOptions, rows: list[dict], packaged: dict[int, PackagedImage],
              annotators: set[str], created: str) -> DatasetMetadata:  # fmt: skip
    implicit = sum(r["label_kind"] == "implicit" for r in rows)
    title = options.title or f"scrAiber mineral labels of BSE images: {snapshot.title}"
    description = (
        f"{len(rows)} mineral masks of {len(packaged)} back-scattered electron (BSE) images of rock thin sections, "
        f"made by {len(annotators)} expert(s) in Label Studio: {implicit} by correcting a model's pre-annotation "
        f"(implicit labels harvested from the corrections) and {len(rows) - implicit} painted without one. Each label "
        "comes with a per-pixel confidence, the pre-annotation it started from, the model that made it and the image, "
        "split into train, validation and test."
    )
    c = options.confidence
    methods = (
        "Labels were recomputed from Label Studio's records with the harvester of scrAiber "
        f"{scraiber_version()}. A label is the submitted mask (one mineral per pixel; unpainted pixels are unlabelled, "
        f"not background). Confidence is 1 where the expert changed the pre-annotation, decays as exp(-d / "
        f"{c.length_scale_px:g} px) with the distance to the nearest change, and far from any change is "
        f"{c.untouched:g} x an attention factor (1 if anything was changed, else rising from {c.hasty_floor:g} for an "
        f"instant submission to 1 after {c.review_seconds:g} s). These parameters are judgement, not measurement."
    )
    related = list(options.related)
    for task_id in packaged:
        igsn = snapshot.task(task_id).igsn
        if igsn and not any(r.scheme == "IGSN" and r.identifier == igsn.upper() for r in related):
            related.append(RelatedIdentifier.igsn(igsn))
    keywords = tuple(dict.fromkeys([*DEFAULT_KEYWORDS, *options.keywords]))
    return DatasetMetadata(
        name=f"scraiber-labels-project-{snapshot.project_id}", title=title, description=description,
        version=options.version, licence=options.licence, created=created, creators=options.creators,
        keywords=keywords, related=tuple(related), publisher=options.publisher, methods=methods,
    )  # fmt: skip


def _write_metadata(out: Path, meta: DatasetMetadata, snapshot: Snapshot, options: ExportOptions,
                    rows: list[dict], packaged: dict[int, PackagedImage]) -> None:  # fmt: skip
    (out / "README.md").write_text(render_readme(out, meta, snapshot, options, rows, packaged), encoding="utf-8")
    (out / "CITATION.cff").write_text(citation_cff(meta), encoding="utf-8")
    files = package_files(out)
    formats = sorted({media_type(f)[1] for f in files})
    sizes = [f"{len(files) + 4} files", f"{len(rows)} labels", f"{len(packaged)} images"]
    record = datacite(meta, formats, sizes)
    (out / "datacite.json").write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "datacite.xml").write_text(datacite_xml(record), encoding="utf-8")
    (out / ".zenodo.json").write_text(
        json.dumps(zenodo_metadata(meta), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    crate_files = []
    for relative in package_files(out):
        folder = relative.rsplit("/", 1)[0] + "/" if "/" in relative else ""
        path = out / relative
        crate_files.append(CrateFile(relative, Path(relative).name, media_type(relative)[1], path.stat().st_size,
                                     sha256_of(path), DESCRIPTIONS.get(relative) or DESCRIPTIONS.get(folder, "")))  # fmt: skip
    write_ro_crate(out, meta, crate_files)


def render_readme(out: Path, meta: DatasetMetadata, snapshot: Snapshot, options: ExportOptions, rows: list[dict],
                  packaged: dict[int, PackagedImage]) -> str:  # fmt: skip
    """The dataset's README.md (for the package being written in ``out``)."""
    splits = {s: sum(r["split"] == s for r in rows) for s in ("train", "validation", "test")}
    implicit = sum(r["label_kind"] == "implicit" for r in rows)
    creators = "\n".join(f"- {c.name}" + (f" (ORCID {c.orcid})" if c.orcid else "") + (f", {c.affiliation}" if c.affiliation else "")
                         for c in meta.creators) or "- not given (export with --creator \"Family, Given|ORCID|Affiliation\")"  # fmt: skip
    opted = [f"{c.pseudonym} is {c.name}" for c in meta.creators if c.pseudonym]
    where = ("referenced by URL (column `image_url` of `data/tasks.csv`) with the SHA-256 and shape of each file"
             if options.image_url_template else "byte for byte as Label Studio held them (grey PNG or TIFF with their SEM "
             "metadata tags; RGB files as lossless grey PNG); SEM metadata also as `images/task-T_sem.json`")  # fmt: skip
    present = {f.split("/", 1)[0] for f in package_files(out)}
    optional = [("crystals", "| `crystals/` | crystal tables of each label (`scraiber crystals`: crystals, modes, size distribution, zoning) |"),
                ("coco", "| `coco/` | COCO JSON with RLE masks: `minerals.json` (one annotation per mineral) and `crystals.json` (per crystal) |"),
                ("model", "| `model/`, `MODEL_CARD.md` | the model as an MLflow Model (pyfunc, safetensors weights) and its card |")]  # fmt: skip
    extra_rows = "".join(row + "\n" for folder, row in optional if folder in present)
    related = "\n".join(f"- {r.relation}: {r.scheme} {r.identifier}" for r in meta.related) or "- none given"
    c = options.confidence
    return f"""# {meta.title}

{meta.description}

- Version {meta.version}, created {meta.created}; licence {meta.licence} ({meta.licence_url})
- Source: Label Studio project {snapshot.project_id} ("{snapshot.title}"), records captured {snapshot.captured_at}
- {len(rows)} labels ({implicit} implicit, {len(rows) - implicit} explicit) of {len(packaged)} images;
  splits by image: {splits["train"]} train, {splits["validation"]} validation, {splits["test"]} test labels
- Made with scrAiber {scraiber_version()}; how to cite: `CITATION.cff`

## Creators

{creators}

Annotators appear only as pseudonyms (`u-` and 16 hex digits: an HMAC-SHA256 of the Label Studio user id under a
key kept by the data owner; stable per person, not reversible){"; " + ", ".join(opted) + " (opted in)" if opted else ""}.

## What the labels mean

- **Label** (`labels/*_label.png`): an indexed PNG whose pixel values are class indices (`data/classes.csv`; the
  palette shows the catalogue colours). 255 means *unlabelled* (transparent): the expert painted nothing there. It is
  not "background"; resin is the class Epoxy.
- **Implicit** labels (`label_kind`) come from an expert correcting a model's pre-annotation: what they kept, added,
  erased and relabelled. **Explicit** labels were painted with no pre-annotation.
- **Confidence** (`labels/*_confidence.png`, value / 255): 1 where the expert changed the pre-annotation; decays as
  exp(-d / {c.length_scale_px:g} px) with the distance d to the nearest change; far from any change
  {c.untouched:g} x an attention factor (1 if the expert changed anything, else rising from {c.hasty_floor:g} for an
  instant submission to 1 after {c.review_seconds:g} s of work). 0 where unlabelled. These parameters are judgement,
  not measurement, and not calibrated against re-labelled samples: use confidence to rank or weight pixels, not as a
  probability of being right.
- **Pre-annotation** (`labels/*_prediction.png`): what the model proposed (`model_version`, `model_uri`, `model_run_id`
  in `data/labels.csv`), so corrections can be studied or re-derived.
- **Pixel size** (`pixel_size_um`, `pixel_size_source`): from the SEM metadata of the image file, else from the task
  data in Label Studio, else unknown.

## How the labels were made

{meta.methods}

The prediction a correction started from is the annotation's `parent_prediction` in Label Studio, else the latest
prediction of the served model version before the annotation, else the latest before it (`prediction_rule`).

## Splits

By image, never by label (two experts' labels of one image stay together). `test`: the images scrAiber's retraining
cycles held out for validation (the 1st, 6th, 11th... image labelled in the project): no model of this project was
trained on them. Of the others, every fourth image labelled (2nd, 6th, ...) is `validation`, the rest `train`.

## Files

| path | what |
| --- | --- |
| `data/labels.csv` | one row per label with its provenance (schema in `datapackage.json`) |
| `data/tasks.csv` | one row per image: split, file or URL, SHA-256, shape, dtype, pixel size and its source, IGSN |
| `data/classes.csv` | class index, name, colour, mean atomic number |
| `data/modes.csv` | modal composition of each label |
| `images/` | the BSE images, {where} |
| `labels/` | label, confidence and pre-annotation per label |
{extra_rows}| `datapackage.json` | Frictionless Data Package: every file with its size and SHA-256 |
| `ro-crate-metadata.json`, `datacite.json`, `datacite.xml`, `.zenodo.json`, `CITATION.cff` | metadata for repositories |

Check the copy you have: `frictionless validate datapackage.json` (checks every file's size and SHA-256 and every
table against its schema).

## Loading

```python
import csv, numpy as np
from PIL import Image
rows = list(csv.DictReader(open("data/labels.csv")))
label = np.asarray(Image.open(rows[0]["label_path"]))          # uint8 class indices, 255 = unlabelled
confidence = np.asarray(Image.open(rows[0]["confidence_path"])) / 255.0
image = np.asarray(Image.open(rows[0]["image_path"]))          # the BSE image (PNG; TIFF: tifffile.imread)
```

or, with scrAiber installed, `tracking_analysis.datapackage.read_labels(".")`. COCO: `pycocotools.coco.COCO("coco/minerals.json")`.

## Related identifiers

{related}
"""


def write_zip(root: Path, archive: Path) -> Path:
    """Zip the package folder (files at the archive's root, sorted, fixed timestamps); returns ``archive``."""
    stamp = (1980, 1, 1, 0, 0, 0)
    tmp = archive.with_name(archive.name + ".part")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as handle:
        for relative in [*package_files(root), DESCRIPTOR]:
            info = zipfile.ZipInfo(relative, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            handle.writestr(info, (root / relative).read_bytes())
    tmp.replace(archive)
    return archive
