"""Segmenting whole sections: streamed window by window for mosaics, in memory for fields.

:func:`segment_mosaic` never holds the section: it reads a sample once (grey-level
range, unsupervised clustering), then reads, predicts and blends overlapping windows
row by row (:mod:`ml_backend.mosaic.stream`) and writes the class mask as a tiled TIFF
band by band (:mod:`ml_backend.mosaic.writer`). :func:`segment_image` is the plain path
for images that fit in memory (PNG or TIFF, mask as PNG or TIFF).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import tifffile

from label_config.catalogue import Catalogue
from ml_backend.mosaic.methods import SectionModel, prepare_method
from ml_backend.mosaic.reader import TIFF_MAGIC, MosaicReader
from ml_backend.mosaic.stream import blend_bands, section_windows, window_scores
from ml_backend.mosaic.writer import TIFF_SUFFIXES, check_mask_path, write_mask_tiff
from ml_backend.tiling import extract_with_halo

SAMPLE_PIXELS = 16 * 2**20  # the whole section up to this size, else a grid of blocks
STREAM_ABOVE_PIXELS = 64 * 2**20


def should_stream(path: str | Path, above_pixels: int = STREAM_ABOVE_PIXELS) -> bool:
    """True for a TIFF that is tiled, a BigTIFF, or larger than ``above_pixels``."""
    path = Path(path)
    with path.open("rb") as handle:
        if handle.read(4) not in TIFF_MAGIC:
            return False
    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        return bool(tif.is_bigtiff or page.is_tiled or page.imagelength * page.imagewidth > above_pixels)


def prepare_section(
    reader: MosaicReader,
    method: str,
    catalogue: Catalogue,
    options: dict[str, Any] | None = None,
    sample_pixels: int = SAMPLE_PIXELS,
    device: str = "cpu",
) -> SectionModel:
    """Fit ``method`` once on a sample of the section (:meth:`MosaicReader.sample`)."""
    return prepare_method(method, catalogue, reader.sample(sample_pixels), device=device, **(options or {}))


def write_section_mask(
    reader: MosaicReader,
    model: SectionModel,
    out: str | Path,
    catalogue: Catalogue,
    method: str,
    progress: bool = False,
) -> tuple[Path, Path]:
    """Read, predict and blend the section window by window into a tiled TIFF mask with sidecar."""
    rows = section_windows(reader.shape, model.tile, model.overlap)
    scores = window_scores(partial(extract_with_halo, reader, halo=model.halo), model.predict, rows, model.halo)
    extra = {
        "method": method,
        "model_version": model.version,
        "source": reader.path.name,
        "streamed": True,
        "windows": {"tile": model.tile, "overlap": model.overlap, "halo": model.halo},
        **model.info,
    }
    bands = blend_bands(scores, rows, reader.shape, model.overlap, progress=progress)
    return write_mask_tiff(out, reader.shape, bands, catalogue, reader.pixel_size_um, extra)


def segment_mosaic(
    reader: MosaicReader,
    out: str | Path,
    method: str,
    catalogue: Catalogue,
    options: dict[str, Any] | None = None,
    sample_pixels: int = SAMPLE_PIXELS,
    device: str = "cpu",
    progress: bool = False,
) -> tuple[Path, Path]:
    """Segment a whole section window by window into a tiled TIFF mask with sidecar.

    Args:
        reader: The open mosaic.
        out: Output ``.tif``; ``out.json`` gets the sidecar.
        method: A name of :func:`ml_backend.mosaic.methods.method_names`.
        catalogue: The classes.
        options: Options of the method (e.g. ``n_clusters`` for unsupervised).
        sample_pixels: Size of the sample the method is fitted on.
        device: ``cpu``, ``auto`` or ``cuda[:N]`` (the FCN; unsupervised runs on the CPU).
        progress: Show a progress bar over windows.

    Returns:
        The paths of the mask and of its sidecar.
    """
    check_mask_path(out)  # before the fit, not after it
    model = prepare_section(reader, method, catalogue, options, sample_pixels, device)
    return write_section_mask(reader, model, out, catalogue, method, progress)


def segment_image(
    path: str | Path,
    out: str | Path,
    method: str,
    catalogue: Catalogue,
    pixel_size_um: float | None = None,
    options: dict[str, Any] | None = None,
    max_pixels: int = 2**30,
    progress: bool = False,
) -> tuple[Path, Path]:
    """Segment an image held in memory; the mask is a PNG or a tiled TIFF (by ``out``'s suffix)."""
    from ml_backend.bse_io import read_bse
    from ml_backend.masks import write_mask
    from ml_backend.segmenters import create_segmenter

    image = read_bse(path, pixel_size_um=pixel_size_um, max_pixels=max_pixels)
    segmenter = create_segmenter(method, catalogue, **(options or {}))
    mask = segmenter.segment(image.pixels, progress=progress)
    extra = {"method": method, "model_version": segmenter.version, "source": Path(path).name, "streamed": False}
    if Path(out).suffix.lower() in TIFF_SUFFIXES:
        return write_mask_tiff(out, mask.shape, [mask], catalogue, image.pixel_size_um, extra)
    return write_mask(out, mask, catalogue, image.pixel_size_um, extra)
