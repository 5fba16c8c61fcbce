"""Cutting a whole-section mosaic into Label Studio tasks that remember where each tile sits.

Every task's data holds the tile image URL (under the key of the project's ``<Image>``)
and where the tile came from, so annotations and predictions can be stitched back::

    {"image": URL,
     "tile": {"x": 960, "y": 0, "width": 1024, "height": 1024, "overlap": 64, "row": 0, "col": 1},
     "pixel_size_um": 1.0,
     "mosaic": {"name": "section.tif", "sha256": "...", "width": 32768, "height": 30000}}

Tiles are PNG (browsers do not show TIFF) in the mosaic's own bit depth (16-bit stays
16-bit), read window by window from the mosaic, so a gigapixel section is never held.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import cast
from urllib.parse import quote

import imagecodecs
from tqdm.auto import tqdm

from active_learning.sections.targets import ImportTarget, TileTarget, UploadTarget
from active_learning.settings_protocols import IngestSettings
from active_learning.store import LocalArtefactStore, open_store
from label_config.catalogue import Catalogue
from ml_backend.label_map import control_target
from ml_backend.label_studio import LabelStudioClient, LabelStudioError
from ml_backend.mosaic.reader import MosaicReader
from ml_backend.tiling import tile_windows

STORAGES = ("upload", "local-files", "s3")


@dataclass(frozen=True)
class IngestResult:
    """What an ingest created: task ids (in tile order) and the mosaic's identity."""

    task_ids: list[int]
    mosaic: dict


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in chunks."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def project_label_config(client: LabelStudioClient, project_id: int) -> str:
    """The labelling config of a project; a missing project is a one-line ``ValueError``."""
    try:
        return client.get_project(project_id)["label_config"]
    except LabelStudioError as exc:
        if exc.status_code == 404:
            raise ValueError(f"Label Studio project {project_id} not found at {client.url}") from None
        raise


def local_files_target(document_root: Path, folder: str) -> ImportTarget:
    """Tiles under ``document_root/folder``, served by Label Studio as local files.

    The folder is connected to the project as local-files storage (unless a storage
    already covers it): Label Studio serves ``/data/local-files/?d=...`` only below one.
    """
    folder = folder.strip("/")
    if not folder or ".." in Path(folder).parts:
        raise ValueError(f"local-files folder must be a relative path inside LOCAL_FILES_DOCUMENT_ROOT, got {folder!r}")
    root = Path(document_root).resolve() / folder

    def connect(client: LabelStudioClient, project_id: int) -> None:
        connected = [Path(storage["path"]) for storage in client.local_storages(project_id) if storage.get("path")]
        if not any(path == root or path in root.parents for path in connected):
            client.create_local_storage(project_id, root, title=f"scraiber {folder}")

    root.mkdir(parents=True, exist_ok=True)
    return ImportTarget(
        LocalArtefactStore(root), lambda key: "/data/local-files/?d=" + quote(f"{folder}/{key}"), connect
    )


def make_target(
    storage: str, settings: IngestSettings, local_folder: str = "scraiber-sections", s3_uri: str | None = None
) -> TileTarget:
    """The tile target for ``storage`` (one of :data:`STORAGES`), configured from ``settings``.

    Raises:
        ValueError: for an unknown storage, local-files without ``LOCAL_FILES_DOCUMENT_ROOT``
            or s3 without an ``s3://bucket/prefix`` URI.
    """
    if storage == "upload":
        return UploadTarget()
    if storage == "local-files":
        if settings.local_files_document_root is None:
            raise ValueError(
                "local-files storage needs LOCAL_FILES_DOCUMENT_ROOT (the same folder Label Studio serves)"
            )
        return local_files_target(settings.local_files_document_root, local_folder)
    if storage == "s3":
        if not s3_uri or not s3_uri.startswith("s3://"):
            raise ValueError("s3 storage needs --s3-uri s3://BUCKET/PREFIX for the tiles")
        store = open_store(s3_uri, settings)
        return ImportTarget(store, store.uri)
    raise ValueError(f"unknown tile storage {storage!r}; valid storages: {', '.join(STORAGES)}")


def ingest_mosaic(
    reader: MosaicReader,
    client: LabelStudioClient,
    project_id: int,
    target: TileTarget,
    catalogue: Catalogue,
    tile: int = 1024,
    overlap: int = 64,
    progress: bool = False,
) -> IngestResult:
    """Cut the mosaic into overlapping tiles and create one Label Studio task per tile.

    Args:
        reader: The open mosaic (its pixel size, if known, goes into every task).
        client: Label Studio client.
        project_id: The project; its config decides the task data key of the image.
        target: Where tiles are stored (:func:`make_target`).
        catalogue: Classes, to find the project's brush control and image.
        tile: Tile side in px (the last row and column are aligned with the mosaic edge).
        overlap: Px shared by neighbouring tiles.
        progress: Show a progress bar over tiles.

    Raises:
        ValueError: for bad tile/overlap, a missing project or a config without an image.
    """
    windows = tile_windows(reader.shape, tile, overlap)
    value_key = control_target(project_label_config(client, project_id), catalogue).value_key
    if reader.dtype.kind != "u" or reader.dtype.itemsize > 2:
        raise ValueError(f"{reader.path}: tiles are written as 8/16-bit PNG; the mosaic is {reader.dtype}")
    sha = file_sha256(reader.path)
    height, width = reader.shape
    mosaic = {"name": reader.path.name, "sha256": sha, "width": width, "height": height}
    xs = sorted({w.x0 for w in windows})
    ys = sorted({w.y0 for w in windows})
    stem = reader.path.stem
    tasks = []
    for window in tqdm(windows, desc="tiles", unit="tile", disable=not progress):
        key = f"{stem}-{sha[:12]}/{stem}_y{window.y0:06d}_x{window.x0:06d}.png"
        # without ``out=`` png_encode returns bytes; its stub says ``bytes | bytearray``
        png = cast(bytes, imagecodecs.png_encode(reader.read(window.y0, window.y1, window.x0, window.x1)))
        url = target.put(key, png)
        h, w = window.shape
        geometry = {"x": window.x0, "y": window.y0, "width": w, "height": h, "overlap": overlap}
        data = {
            "tile": {**geometry, "row": ys.index(window.y0), "col": xs.index(window.x0)},
            "pixel_size_um": reader.pixel_size_um,
            "mosaic": mosaic,
        }
        tasks.append({"data": {value_key: url, **data} if url is not None else data})
    return IngestResult(target.create_tasks(client, project_id, value_key, tasks), mosaic)
