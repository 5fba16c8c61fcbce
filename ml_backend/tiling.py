"""Tiled prediction over large images: overlapping windows, smooth blending, no seams.

A prediction function maps one 2-D tile (or a batch of equal tiles) to per-class
probabilities. :func:`predict_tiled` runs it window by window and blends overlapping
windows with raised-cosine weights, so neighbouring tiles meet without seams. A
``halo`` of real image context (mirrored at the image border, like
``scipy.ndimage``'s default ``mode="reflect"``) is added around each window and cut
off again, so a function whose output at a pixel depends only on a neighbourhood
smaller than the halo gives exactly what it would give on the whole image.

Memory: blending buffers cover one row of tiles (``tile`` rows of the image width), not
the whole image; only the output array is image-sized. With ``reduce`` (e.g. argmax)
the image-sized output can be a small dtype.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from tqdm.auto import tqdm

if TYPE_CHECKING:
    from ml_backend.mosaic.reader import MosaicReader

TileFn = Callable[[np.ndarray], np.ndarray]
ReduceFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Window:
    """One tile: the image rows ``y0:y1`` and columns ``x0:x1``."""

    y0: int
    y1: int
    x0: int
    x1: int

    @property
    def slices(self) -> tuple[slice, slice]:
        """Index into the image: ``image[window.slices]``."""
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the tile."""
        return self.y1 - self.y0, self.x1 - self.x0


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    return starts + [length - tile]


def _check(tile: int, overlap: int, halo: int = 0) -> None:
    if tile < 1:
        raise ValueError(f"tile size must be a positive number of pixels, got {tile}")
    if not 0 <= overlap < tile:
        raise ValueError(f"tile overlap must satisfy 0 <= overlap < tile ({tile}), got {overlap}")
    if halo < 0:
        raise ValueError(f"tile halo must be >= 0, got {halo}")


def tile_windows(shape: tuple[int, int], tile: int, overlap: int) -> list[Window]:
    """Windows of at most ``tile`` x ``tile`` covering ``shape``, neighbours sharing ``overlap`` px.

    The last window of each row and column is aligned with the image edge (it may
    overlap its neighbour by more). An image no larger than ``tile`` is one window.
    Windows are listed row by row, top to bottom, left to right.

    Raises:
        ValueError: for a non-positive tile size or ``overlap`` outside ``[0, tile)``.
    """
    _check(tile, overlap)
    height, width = shape
    return [
        Window(y, min(y + tile, height), x, min(x + tile, width))
        for y in _starts(height, tile, overlap)
        for x in _starts(width, tile, overlap)
    ]


def _ramp(length: int, overlap: int, at_start: bool, at_end: bool) -> np.ndarray:
    """1-D blending weight: 1 inside, a raised-cosine ramp over ``overlap`` px at inner edges."""
    weight = np.ones(length, dtype=np.float32)
    n = min(overlap, length)
    if n == 0:
        return weight
    rise = (0.5 - 0.5 * np.cos(np.pi * (np.arange(n, dtype=np.float64) + 0.5) / n)).astype(np.float32)
    if not at_start:
        weight[:n] = np.minimum(weight[:n], rise)
    if not at_end:
        weight[length - n :] = np.minimum(weight[length - n :], rise[::-1])
    return weight


def blend_weights(window: Window, shape: tuple[int, int], overlap: int) -> np.ndarray:
    """(h, w) float32 blending weights of ``window``; no ramp along the image border.

    Two neighbours overlapping by exactly ``overlap`` px have weights summing to 1.
    """
    height, width = shape
    wy = _ramp(window.y1 - window.y0, overlap, window.y0 == 0, window.y1 == height)
    wx = _ramp(window.x1 - window.x0, overlap, window.x0 == 0, window.x1 == width)
    return wy[:, None] * wx[None, :]


def extract_with_halo(image: np.ndarray | MosaicReader, window: Window, halo: int) -> np.ndarray:
    """The window plus ``halo`` px of context on every side, mirrored beyond the image border.

    Mirroring is ``numpy.pad(mode="symmetric")``, the same as ``scipy.ndimage``'s
    ``mode="reflect"``, so filters see what they would see on the whole image.
    """
    if halo == 0:
        return image[window.slices]
    height, width = image.shape[-2:]
    y0, y1 = max(window.y0 - halo, 0), min(window.y1 + halo, height)
    x0, x1 = max(window.x0 - halo, 0), min(window.x1 + halo, width)
    block = image[..., y0:y1, x0:x1]
    pad = ((y0 - (window.y0 - halo), (window.y1 + halo) - y1), (x0 - (window.x0 - halo), (window.x1 + halo) - x1))
    if pad == ((0, 0), (0, 0)):
        return block
    return np.pad(block, ((0, 0),) * (block.ndim - 2) + pad, mode="symmetric")


def _rows(windows: list[Window]) -> Iterator[list[Window]]:
    row: list[Window] = []
    for window in windows:
        if row and window.y0 != row[0].y0:
            yield row
            row = []
        row.append(window)
    if row:
        yield row


def _run(fn: TileFn, tiles: list[np.ndarray], n_classes: int, batch_size: int | None) -> list[np.ndarray]:
    if batch_size is None:
        return [np.asarray(fn(tile), dtype=np.float32) for tile in tiles]
    out: list[np.ndarray] = []
    for start in range(0, len(tiles), batch_size):
        batch = np.stack(tiles[start : start + batch_size])
        result = np.asarray(fn(batch), dtype=np.float32)
        if result.ndim != 4 or result.shape[0] != len(batch):
            raise ValueError(
                f"batched tile function returned shape {result.shape}, expected ({len(batch)}, {n_classes}, h, w)"
            )
        out.extend(result)
    return out


def predict_tiled(
    fn: TileFn,
    image: np.ndarray,
    n_classes: int,
    tile: int = 1024,
    overlap: int = 64,
    halo: int = 0,
    progress: bool = False,
    batch_size: int | None = None,
    reduce: ReduceFn | None = None,
) -> np.ndarray:
    """Run ``fn`` over overlapping tiles of ``image`` and blend the results without seams.

    Args:
        fn: Maps a 2-D tile (``batch_size=None``) to ``(n_classes, h, w)`` probabilities,
            or a ``(B, h, w)`` batch of equal tiles to ``(B, n_classes, h, w)``. Tiles are
            the raw image (any dtype) with ``halo`` px of context on each side.
        image: 2-D image.
        n_classes: Number of output channels of ``fn``.
        tile: Tile side in pixels; an image no larger than this is one tile.
        overlap: Pixels shared by neighbouring tiles, blended with raised-cosine weights.
        halo: Context pixels added around each tile and cropped from ``fn``'s output.
        progress: Show a tqdm bar (stderr) when there is more than one tile.
        batch_size: Tiles per call of a batched ``fn``; ``None`` for a per-tile ``fn``.
        reduce: Maps blended ``(n_classes, h, W)`` blocks to the stored output (e.g.
            argmax to uint8 ``(h, W)``); ``None`` stores the float32 probabilities.

    Returns:
        ``(n_classes, H, W)`` float32 blended probabilities, or the ``reduce``d array.

    Raises:
        ValueError: for a non-2-D image, bad tiling parameters or a ``fn`` output of the
            wrong shape.
    """
    if image.ndim != 2 or 0 in image.shape:
        raise ValueError(f"expected a non-empty 2-D image, got shape {image.shape}")
    _check(tile, overlap, halo)
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 or None, got {batch_size}")
    shape = image.shape
    height, width = shape
    windows = tile_windows(shape, tile, overlap)
    rows = list(_rows(windows))
    finish = reduce or (lambda block: block)
    out: np.ndarray | None = None
    # blending buffers for one row of tiles: image rows row.y0 .. row.y0 + tile
    band = min(tile, height)
    acc = np.zeros((n_classes, band, width), dtype=np.float32)
    wsum = np.zeros((band, width), dtype=np.float32)
    bar = tqdm(total=len(windows), desc="tiles", unit="tile", disable=not progress or len(windows) == 1)
    try:
        for index, row in enumerate(rows):
            y0 = row[0].y0
            tiles = [extract_with_halo(image, w, halo) for w in row]
            for window, probs in zip(row, _run(fn, tiles, n_classes, batch_size)):
                h, w = window.shape
                if probs.shape != (n_classes, h + 2 * halo, w + 2 * halo):
                    raise ValueError(
                        f"tile function returned shape {probs.shape}, expected {(n_classes, h + 2 * halo, w + 2 * halo)}"
                    )
                weight = blend_weights(window, shape, overlap)
                acc[:, :h, window.x0 : window.x1] += probs[:, halo : halo + h, halo : halo + w] * weight
                wsum[:h, window.x0 : window.x1] += weight
                bar.update(1)
            done_y = rows[index + 1][0].y0 if index + 1 < len(rows) else height
            n_done, pending = done_y - y0, row[0].y1 - done_y
            acc[:, :n_done] /= wsum[:n_done]
            block = finish(acc[:, :n_done])
            if out is None:
                out = np.empty(block.shape[:-2] + shape, dtype=block.dtype)
            out[..., y0:done_y, :] = block
            if pending > 0:  # rows the next row of tiles overlaps: move them to the top
                acc[:, :pending] = acc[:, n_done : n_done + pending]
                wsum[:pending] = wsum[n_done : n_done + pending]
            acc[:, max(pending, 0) :] = 0.0
            wsum[max(pending, 0) :] = 0.0
    finally:
        bar.close()
    assert out is not None  # at least one row of tiles always exists
    return out
