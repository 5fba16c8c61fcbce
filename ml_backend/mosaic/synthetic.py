"""Large synthetic BSE mosaics written tile by tile, for whole-section tests and benchmarks.

Each TIFF tile is an independent synthetic section (:func:`ml_backend.synthetic.generate_section`
with seed ``seed + tile index``), so a mosaic of any size is produced holding one section
per worker at a time. Like a real mosaic stitched from SEM fields, every tile has its own
crystals and its own slow shading, and the acquisition (pixel size, detector gain, offset,
dose, noise, blur) is drawn once for the whole mosaic. Crystals do not continue across tile
borders: the seams are visible, which is acceptable for benchmarks and tests of the
streaming machinery, not for judging segmentation quality near the seams.

With ``unique=N`` only N sections are drawn and reused (rotated and mirrored) for the
other tiles: a gigapixel mosaic for a throughput benchmark in seconds instead of minutes.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import tifffile
from tqdm.auto import tqdm

from label_config.catalogue import Catalogue, load_catalogue
from ml_backend.synthetic import SynthConfig, generate_section

_ACQUISITION = ("pixel_size_um", "gain_dn", "offset_dn", "dose_electrons", "read_noise_dn", "blur_sigma_px")
_BIGTIFF_BYTES = 2**31


def mosaic_config(config: SynthConfig, seed: int) -> SynthConfig:
    """``config`` with the acquisition ranges fixed to one value drawn with ``seed`` (one session)."""
    rng = np.random.default_rng([seed, 0x6D6F73])
    fixed: dict[str, Any] = {
        name: (v, v) for name in _ACQUISITION for v in [float(rng.uniform(*getattr(config, name)))]
    }
    return replace(config, **fixed)


def _section(args: tuple[int, int, SynthConfig, Catalogue]) -> tuple[np.ndarray, np.ndarray]:
    tile, seed, config, catalogue = args
    section = generate_section(tile, seed, config, catalogue)
    return section.image, section.classes


def _oriented(image: np.ndarray, k: int) -> np.ndarray:
    """One of the 8 rotations/mirrors of a square tile."""
    out = np.rot90(image, k % 4)
    return np.ascontiguousarray(out[:, ::-1] if k % 8 >= 4 else out)


def write_synthetic_mosaic(
    path: str | Path,
    size: int | tuple[int, int],
    tile: int = 2048,
    seed: int = 0,
    config: SynthConfig | None = None,
    catalogue: Catalogue | None = None,
    truth_path: str | Path | None = None,
    unique: int | None = None,
    workers: int = 1,
    compression: str | None = None,
    progress: bool = False,
) -> float:
    """Write a synthetic uint16 mosaic as a tiled (Big)TIFF, one section per TIFF tile.

    Args:
        path: Output ``.tif``.
        size: Side in px, or (height, width); edge tiles are cropped sections.
        tile: Section and TIFF tile side (a multiple of 16, 32-16384).
        seed: Seed of the acquisition and of the first section (tile ``i`` uses ``seed + i``).
        config: Synthetic section ranges (acquisition ranges are fixed per mosaic).
        catalogue: Mineral catalogue (built-in by default).
        truth_path: Also write the true uint8 class mosaic here (tiled, zlib).
        unique: Draw only this many sections and reuse them rotated/mirrored.
        workers: Processes drawing sections.
        compression: TIFF compression of the image (``None`` or ``'zlib'``).
        progress: Show a tqdm bar.

    Returns:
        The pixel size in micrometres (stored as TIFF resolution in pixels per centimetre).

    Raises:
        ValueError: for a bad size, tile, unique or workers value.
    """
    height, width = (size, size) if isinstance(size, int) else size
    if tile % 16 or not 32 <= tile <= 16384:
        raise ValueError(f"mosaic tile must be a multiple of 16 between 32 and 16384 px, got {tile}")
    if min(height, width) < 1:
        raise ValueError(f"mosaic size must be positive, got {size}")
    if unique is not None and unique < 1 or workers < 1:
        raise ValueError(f"unique and workers must be at least 1, got {unique}, {workers}")
    config = mosaic_config(config or SynthConfig(), seed)
    catalogue = catalogue or load_catalogue()
    pixel_size = config.pixel_size_um[0]
    grid = [(y, x) for y in range(0, height, tile) for x in range(0, width, tile)]
    drawn = len(grid) if unique is None else min(unique, len(grid))
    jobs = [(tile, seed + i, config, catalogue) for i in range(drawn)]
    per_cm = 1e4 / pixel_size
    options: dict[str, Any] = {
        "shape": (height, width),
        "tile": (tile, tile),
        "photometric": "minisblack",
        "resolution": (per_cm, per_cm),
        "resolutionunit": "CENTIMETER",
        "metadata": None,
    }
    with tempfile.TemporaryDirectory(prefix="scraiber-mosaic-") as scratch, ProcessPoolExecutor(workers) as pool:
        sections = pool.map(_section, jobs) if workers > 1 else map(_section, jobs)
        drawn_truth: list[Path] = []

        def image_tiles() -> Iterator[np.ndarray]:
            cache: list[tuple[np.ndarray, np.ndarray]] = []
            for i, (y, x) in enumerate(tqdm(grid, desc="mosaic", unit="tile", disable=not progress)):
                if i < drawn:
                    image, classes = next(sections)
                    if unique is not None:
                        cache.append((image, classes))
                else:
                    image, classes = (_oriented(a, i // drawn) for a in cache[i % drawn])
                h, w = min(tile, height - y), min(tile, width - x)
                if truth_path is not None:
                    drawn_truth.append(Path(scratch) / f"{i}.npy")
                    np.save(drawn_truth[-1], classes[:h, :w])
                yield image[:h, :w]

        tifffile.imwrite(
            path,
            image_tiles(),
            dtype=np.uint16,
            bigtiff=height * width * 2 >= _BIGTIFF_BYTES,
            compression=compression,
            **options,
        )
        if truth_path is not None:
            tifffile.imwrite(
                truth_path,
                (np.load(p) for p in drawn_truth),
                dtype=np.uint8,
                bigtiff=height * width >= _BIGTIFF_BYTES,
                compression="zlib",
                **options,
            )
    return pixel_size
