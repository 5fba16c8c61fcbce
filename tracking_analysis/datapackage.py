"""The Frictionless Data Package of an export: every file a resource with its size and SHA-256.

:func:`write_datapackage` lists every file under the package folder (except
``datapackage.json`` itself) as a resource with ``bytes`` and ``hash`` (``sha256:...``); the
CSV tables get their Table Schema. ``frictionless validate datapackage.json`` then checks the
tables against their schemas *and* every file against its size and hash, so a truncated or
altered copy is caught (:func:`validate_package` runs the same check from Python and also
reports files that are not in the package).

:func:`read_labels` is the way back: the package's labels as arrays, keyed by annotation id.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ml_backend.masks import read_palette_png

DESCRIPTOR = "datapackage.json"
_FORMATS = {
    ".png": ("png", "image/png"), ".tif": ("tif", "image/tiff"), ".tiff": ("tiff", "image/tiff"),
    ".csv": ("csv", "text/csv"), ".json": ("json", "application/json"), ".md": ("md", "text/markdown"),
    ".cff": ("cff", "application/x-yaml"), ".yaml": ("yaml", "application/x-yaml"), ".xml": ("xml", "application/xml"),
    ".txt": ("txt", "text/plain"), ".py": ("py", "text/x-python"), ".safetensors": ("safetensors", "application/octet-stream"),
    ".parquet": ("parquet", "application/vnd.apache.parquet"),
}  # fmt: skip
_BY_NAME = {"MLmodel": ("yaml", "application/x-yaml")}
_NAME = re.compile(r"[^a-z0-9._-]+")


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(2**20):
            digest.update(block)
    return digest.hexdigest()


def media_type(path: str | Path) -> tuple[str, str]:
    """(Frictionless ``format``, IANA media type) of a file name."""
    path = Path(path)
    return _BY_NAME.get(path.name) or _FORMATS.get(path.suffix.lower(), ("bin", "application/octet-stream"))


def resource_name(relative: str) -> str:
    """A Frictionless resource name (lowercase letters, digits, ``._-``) for a package path."""
    return _NAME.sub("-", relative.lower()).strip("-")


def package_files(root: Path) -> list[str]:
    """Every file under ``root`` (POSIX paths relative to it, sorted), ``datapackage.json`` excluded."""
    files = [p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()]
    return sorted(f for f in files if f != DESCRIPTOR)


def file_resource(root: Path, relative: str, description: str = "", schema: dict | None = None) -> dict[str, Any]:
    """The resource of one package file: name, path, format, media type, bytes, sha256 hash (and schema)."""
    path = root / relative
    fmt, mediatype = media_type(relative)
    resource: dict[str, Any] = {
        "name": resource_name(relative),
        "path": relative,
        "format": fmt,
        "mediatype": mediatype,
        "bytes": path.stat().st_size,
        "hash": f"sha256:{sha256_of(path)}",
    }
    if description:
        resource["description"] = description
    if schema is not None:
        resource.update(profile="tabular-data-resource", encoding="utf-8", schema=schema)
    return resource


def write_datapackage(
    root: Path, descriptor: dict[str, Any], schemas: dict[str, dict], descriptions: dict[str, str]
) -> Path:
    """Write ``datapackage.json``: ``descriptor`` plus one resource per file under ``root``.

    Args:
        root: The package folder (all files written).
        descriptor: Package properties (name, title, licences, contributors, ...).
        schemas: Package path -> Table Schema of the CSV tables.
        descriptions: Package path -> description; a path missing here is described by
            its folder's entry (``"labels/"``), if any.

    Raises:
        ValueError: if two paths map to the same resource name.
    """
    resources, seen = [], set()
    for relative in package_files(root):
        folder = relative.rsplit("/", 1)[0] + "/" if "/" in relative else ""
        resource = file_resource(
            root, relative, descriptions.get(relative) or descriptions.get(folder, ""), schemas.get(relative)
        )
        if resource["name"] in seen:
            raise ValueError(f"two package files map to the resource name {resource['name']!r}; rename one")
        seen.add(resource["name"])
        resources.append(resource)
    path = root / DESCRIPTOR
    path.write_text(
        json.dumps({**descriptor, "resources": resources}, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return path


def validate_package(root: str | Path) -> list[str]:
    """Problems of a package folder: what ``frictionless validate`` finds (schemas, sizes, hashes),
    and files present but not listed as resources. Empty when the package is intact."""
    from frictionless import validate

    root = Path(root)
    descriptor = root / DESCRIPTOR
    if not descriptor.is_file():
        return [f"{root}: no {DESCRIPTOR}"]
    report = validate(str(descriptor))
    problems = [f"{task.name}: {error.type}: {error.message}" for task in report.tasks for error in task.errors]
    problems += [f"package: {error.type}: {error.message}" for error in report.errors]
    listed = {r.get("path") for r in json.loads(descriptor.read_text(encoding="utf-8")).get("resources", [])}
    problems += [
        f"{extra}: file is not a resource of the package" for extra in package_files(root) if extra not in listed
    ]
    return problems


@dataclass(frozen=True)
class PackagedLabel:
    """One label read back from a package.

    Attributes:
        row: Its row of ``data/labels.csv`` (strings, as in the file).
        label: uint8 class indices (255 = unlabelled).
        confidence: float32 confidence in [0, 1] (stored x 255).
        prediction: uint8 class map of the pre-annotation the expert started from, or None.
    """

    row: dict[str, str]
    label: np.ndarray
    confidence: np.ndarray
    prediction: np.ndarray | None


def read_labels(root: str | Path) -> dict[int, PackagedLabel]:
    """Every label of a package as arrays, keyed by Label Studio annotation id.

    Raises:
        ValueError: if a mask is not an indexed PNG or its shape differs from the row's.
    """
    root = Path(root)
    with (root / "data" / "labels.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    labels = {}
    for row in rows:
        label = read_palette_png(root / row["label_path"])
        with Image.open(root / row["confidence_path"]) as image:
            confidence = np.asarray(image, dtype=np.float32) / 255.0
        prediction = read_palette_png(root / row["prediction_path"]) if row["prediction_path"] else None
        shape = (int(row["height"]), int(row["width"]))
        if label.shape != shape or confidence.shape != shape:
            raise ValueError(
                f"annotation {row['annotation_id']}: arrays {label.shape}/{confidence.shape}, table says {shape}"
            )
        labels[int(row["annotation_id"])] = PackagedLabel(row, label, confidence, prediction)
    return labels
