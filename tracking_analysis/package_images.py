"""The BSE images of an export: fetched, checked against the labels, copied or referenced.

An image is fetched by its task's reference (a Label Studio upload path, local-files or S3
URL) through the backend's :class:`~ml_backend.image_source.ImageSource`, or found in a
local folder by file name (:func:`folder_fetcher`). It then goes into the package

* as the file Label Studio holds, byte for byte, when it is a grey PNG or TIFF (a TIFF keeps
  its SEM metadata tags; they are also extracted to JSON);
* as a lossless grey PNG of the decoded pixels (8- or 16-bit as decoded) when it is RGB;
* or, with an URL template, not at all: the table then gives the stable URL, the SHA-256
  and the shape of the file behind it.

Its pixel size comes from the SEM metadata (Thermo Fisher/FEI, Zeiss), else from the task
data (``pixel_size_um``), else it is unknown; the source is recorded.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np
import tifffile
from PIL import Image

from ml_backend.bse_io import BSEImage, RGBConversionWarning, decode_bse

#: Where a pixel size came from, as the package states it.
PIXEL_SIZE_SOURCES = {
    "fei": "SEM metadata (Thermo Fisher/FEI TIFF tags)",
    "zeiss": "SEM metadata (Zeiss TIFF tags)",
    "user": "Label Studio task data (pixel_size_um)",
    "unknown": "unknown",
}
_UPLOAD_PREFIX = re.compile(r"^[0-9a-f]{8}-")
Fetcher = Callable[[str], bytes]


def reference_name(reference: str) -> str:
    """The file name behind a task's image reference (upload path, local-files or S3 URL)."""
    parts = urlsplit(reference)
    if "d" in parse_qs(parts.query):
        return PurePosixPath(unquote(parse_qs(parts.query)["d"][0])).name
    if "fileuri" in parse_qs(parts.query):
        return PurePosixPath(unquote(parse_qs(parts.query)["fileuri"][0])).name
    return PurePosixPath(unquote(parts.path)).name


def folder_fetcher(folder: str | Path) -> Fetcher:
    """Find a task's image in ``folder`` by file name, with or without Label Studio's upload
    prefix (``1a2b3c4d-field.png`` is found as ``field.png`` too).

    Raises (when called):
        FileNotFoundError: naming the reference and the names tried.
    """
    folder = Path(folder)

    def fetch(reference: str) -> bytes:
        name = reference_name(reference)
        tried = [name, _UPLOAD_PREFIX.sub("", name)]
        for candidate in dict.fromkeys(tried):
            path = folder / candidate
            if path.is_file():
                return path.read_bytes()
        raise FileNotFoundError(f"image {reference!r}: none of {sorted(set(tried))} is in {folder}")

    return fetch


@dataclass(frozen=True)
class PackagedImage:
    """A task's image as the package records it.

    Attributes:
        task_id: The task.
        path: Package path of the file (None when referenced by ``url``).
        url: Stable URL of the file (None when in the package).
        sha256, size: Of the file (in the package, or behind ``url``).
        original_sha256: SHA-256 of the file as fetched (equal to ``sha256`` unless converted).
        height, width, dtype: Of the decoded grey pixels.
        pixel_size_um: Pixel size, or None.
        pixel_size_source: Key of :data:`PIXEL_SIZE_SOURCES`.
        sem_metadata_path: Package path of the extracted SEM metadata (JSON), or None.
        pixels: The decoded grey image (not written; for crystal tables).
    """

    task_id: int
    path: str | None
    url: str | None
    sha256: str
    size: int
    original_sha256: str
    height: int
    width: int
    dtype: str
    pixel_size_um: float | None
    pixel_size_source: str
    sem_metadata_path: str | None
    pixels: np.ndarray


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def sem_metadata(data: bytes) -> dict[str, Any] | None:
    """The SEM metadata a TIFF carries (Thermo Fisher/FEI and Zeiss tags), JSON-ready, or None."""
    if data[:4] not in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return None
    with tifffile.TiffFile(io.BytesIO(data)) as tif:
        found = {"fei": tif.fei_metadata, "zeiss": tif.sem_metadata}
    found = {name: _json_safe(meta) for name, meta in found.items() if meta}
    return found or None


def _grey_png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    if pixels.dtype == np.uint16:
        Image.fromarray(pixels, mode="I;16").save(buffer, format="PNG")
    else:
        Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def package_image(
    task_id: int,
    data: bytes,
    reference: str,
    out: Path,
    pixel_size_um: float | None = None,
    url_template: str | None = None,
    max_pixels: int = 2**30,
) -> PackagedImage:
    """Decode a fetched image, write it (and its SEM metadata) under ``out/images/`` or reference it.

    Args:
        task_id: The task (file names ``images/task-<id>.<ext>``).
        data: The bytes fetched.
        reference: The task's image reference (for messages and the URL template's ``{name}``).
        out: The package folder.
        pixel_size_um: The task data's pixel size (used when the file carries none).
        url_template: Reference the image instead of copying it: a format string with
            ``{task_id}``, ``{name}`` (file name without upload prefix) and ``{sha256}``.
        max_pixels: Decompression-bomb limit.

    Raises:
        BSEReadError: if the bytes are not a usable image.
        ValueError: for a template with unknown fields.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RGBConversionWarning)
        bse: BSEImage = decode_bse(data, reference_name(reference), pixel_size_um, max_pixels)
    converted = any(issubclass(w.category, RGBConversionWarning) for w in caught)
    original = hashlib.sha256(data).hexdigest()
    metadata = sem_metadata(data)
    stored = _grey_png(bse.pixels) if converted else data  # the pixels the labels were drawn on
    suffix = "png" if stored[:8] == b"\x89PNG\r\n\x1a\n" else "tif"
    path, url, meta_path = None, None, None
    if metadata is not None or not url_template:
        (out / "images").mkdir(parents=True, exist_ok=True)
    if metadata is not None:
        meta_path = f"images/task-{task_id}_sem.json"
        (out / meta_path).write_text(json.dumps(metadata, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if url_template:
        name = _UPLOAD_PREFIX.sub("", reference_name(reference))
        try:
            url = url_template.format(task_id=task_id, name=name, sha256=original)
        except (KeyError, IndexError) as exc:
            raise ValueError(
                f"--image-url-template {url_template!r}: unknown field {exc}; use {{task_id}}, {{name}}, {{sha256}}"
            ) from None
        stored = data
    else:
        path = f"images/task-{task_id}.{suffix}"
        (out / path).write_bytes(stored)
    return PackagedImage(
        task_id=task_id, path=path, url=url, sha256=hashlib.sha256(stored).hexdigest(), size=len(stored),
        original_sha256=original, height=bse.shape[0], width=bse.shape[1], dtype=str(bse.pixels.dtype),
        pixel_size_um=bse.pixel_size_um, pixel_size_source=bse.pixel_size_source, sem_metadata_path=meta_path,
        pixels=bse.pixels,
    )  # fmt: skip
