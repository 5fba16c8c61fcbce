"""Class masks of whole sections: a tiled, compressed (Big)TIFF written band by band, plus sidecar.

The mask arrives as horizontal bands of rows, top to bottom; only the rows of one tile
row (``tile`` rows of the image width) wait in memory before their tiles are encoded, so
a gigapixel mask is written without ever being held. The JSON sidecar is the same as for
PNG masks (:mod:`ml_backend.masks`): ``MASK.json`` with the class table, ignore index,
pixel size, shape and the producer's entries.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from label_config.catalogue import IGNORE_INDEX, Catalogue

TIFF_SUFFIXES = (".tif", ".tiff")
BIGTIFF_PIXELS = 2**30  # masks of a gigapixel or more are written as BigTIFF
# tiles tifffile takes from the band iterator per round of threaded compression; without a
# bound its thread pool pulls every tile first, i.e. the whole mask (measured: +170 MiB RSS
# on a 16k x 16k section)
ENCODE_BUFFER_BYTES = 16 * 2**20


def check_mask_path(path: str | Path) -> Path:
    """``path`` as a Path if it names a TIFF.

    Raises:
        ValueError: for another suffix.
    """
    path = Path(path)
    if path.suffix.lower() not in TIFF_SUFFIXES:
        raise ValueError(f"{path}: a whole-section mask is written as a tiled TIFF; give a path ending in .tif")
    return path


def _tiles(bands: Iterable[np.ndarray], shape: tuple[int, int], tile: int) -> Iterator[np.ndarray]:
    """Regroup row bands of an image into ``tile`` x ``tile`` tiles, row-major (tifffile pads edges).

    Rows are copied into one new buffer per row of tiles (never reused: tifffile may still
    hold tiles of earlier rows while it compresses), so nothing is concatenated.
    """
    height, width = shape
    done = 0  # rows handed out as tiles
    row = np.empty((min(tile, height), width), dtype=np.uint8)
    filled = 0
    for band in bands:
        if band.ndim != 2 or band.shape[1] != width or band.dtype != np.uint8:
            raise ValueError(f"mask band must be uint8 (rows, {width}), got {band.dtype} {band.shape}")
        start = 0
        while start < band.shape[0]:
            if done + filled == height:
                raise ValueError(f"mask bands cover more than the mask's {height} rows")
            take = min(len(row) - filled, band.shape[0] - start)
            row[filled : filled + take] = band[start : start + take]
            filled, start = filled + take, start + take
            if filled == len(row):
                yield from (row[:, x : x + tile] for x in range(0, width, tile))
                done += filled
                row, filled = np.empty((min(tile, height - done), width), dtype=np.uint8), 0
    if done != height:
        raise ValueError(f"mask bands cover {done + filled} rows, the mask has {height}")


def write_mask_tiff(
    path: str | Path,
    shape: tuple[int, int],
    bands: Iterable[np.ndarray],
    catalogue: Catalogue,
    pixel_size_um: float | None,
    extra: dict[str, Any] | None = None,
    tile: int = 256,
) -> tuple[Path, Path]:
    """Write a uint8 class mask as a tiled, zlib-compressed TIFF and its JSON sidecar.

    Args:
        path: Output ``.tif``/``.tiff``; parent folders are created.
        shape: (height, width) of the mask.
        bands: uint8 row bands of the full width, top to bottom, covering ``height`` rows.
        catalogue: The classes the indices refer to (255 = no label).
        pixel_size_um: Pixel size in micrometres (also stored as TIFF resolution), or None.
        extra: More JSON-serialisable sidecar entries (method, model_version, source...).
        tile: TIFF tile side (a multiple of 16).

    Returns:
        The paths of the TIFF and of the sidecar.

    Raises:
        ValueError: for another suffix, a bad tile size, reserved or non-JSON ``extra``
            entries, or bands that do not match ``shape``.
    """
    path = check_mask_path(path)
    if tile < 16 or tile % 16:
        raise ValueError(f"TIFF tile size must be a positive multiple of 16, got {tile}")
    sidecar = {
        "classes": {str(i): name for i, name in enumerate(catalogue.names)},
        "ignore_index": IGNORE_INDEX,
        "pixel_size_um": None if pixel_size_um is None else float(pixel_size_um),
        "shape": [int(n) for n in shape],
    }
    clash = sorted(set(extra or {}) & set(sidecar))
    if clash:
        raise ValueError(f"sidecar entries {clash} are reserved; rename them")
    text = json.dumps({**sidecar, **(extra or {})}, indent=2)  # fails before writing if extra is not JSON
    resolution: dict[str, Any] = {}
    if pixel_size_um:
        per_cm = 1e4 / float(pixel_size_um)
        resolution = {"resolution": (per_cm, per_cm), "resolutionunit": "CENTIMETER"}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")  # a failed or interrupted run leaves no half mask
    bands = iter(bands)
    try:
        tifffile.imwrite(
            partial,
            _tiles(bands, shape, tile),
            shape=tuple(shape),
            dtype=np.uint8,
            tile=(tile, tile),
            compression="zlib",
            photometric="minisblack",
            bigtiff=shape[0] * shape[1] >= BIGTIFF_PIXELS,
            buffersize=ENCODE_BUFFER_BYTES,
            metadata=None,
            **resolution,
        )
        if next(bands, None) is not None:
            raise ValueError(f"mask bands cover more than the mask's {shape[0]} rows")
    except BaseException:  # noqa: BLE001 - removes the partial file, then re-raises
        partial.unlink(missing_ok=True)
        raise
    partial.replace(path)
    side = path.with_suffix(
        ".json"
    )  # ml_backend.masks.sidecar_path's rule; masks needs imagecodecs, the GPU path lacks it
    side.write_text(text + "\n", encoding="utf-8")
    return path, side
