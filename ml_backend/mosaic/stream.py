"""Blending overlapping window predictions of a whole section into class bands, in bounded memory.

Windows of ``tile`` px advance by a fixed stride ``tile - overlap`` (the last window of a
row or column is shorter), so every two neighbours share exactly ``overlap`` px and the
raised-cosine weights of :func:`ml_backend.tiling.blend_weights` sum to one there.
Windows are visited row by row; what is not final yet is carried forward:

* to the right, the part of a window that the next window overlaps;
* downwards, the ``overlap`` rows that the next row of windows overlaps.

Only the weighted class scores are accumulated: the class of a pixel is the argmax of
the blended scores, which dividing by the summed weights would not change. Memory is one
window of scores, ``n_classes x overlap`` floats per image column and one band of uint8
rows; nothing scales with the image area. The arithmetic works on numpy arrays and on
torch tensors alike, so on a GPU the blending stays on the device and only uint8 classes
come back.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ml_backend.tiling import Window, blend_weights

Array = Any  # numpy.ndarray or torch.Tensor (n_classes, h, w)


def _fixed_stride_starts(length: int, tile: int, overlap: int) -> list[int]:
    starts = [0]
    while starts[-1] + tile < length:
        starts.append(starts[-1] + tile - overlap)
    return starts


def section_windows(shape: tuple[int, int], tile: int, overlap: int) -> list[list[Window]]:
    """Rows of windows covering ``shape``: ``tile`` px, neighbours sharing exactly ``overlap`` px.

    Raises:
        ValueError: unless ``0 <= overlap < tile``.
    """
    if not 0 <= overlap < tile:
        raise ValueError(f"window overlap must satisfy 0 <= overlap < tile ({tile}), got {overlap}")
    height, width = shape
    xs = _fixed_stride_starts(width, tile, overlap)
    return [
        [Window(y, min(y + tile, height), x, min(x + tile, width)) for x in xs]
        for y in _fixed_stride_starts(height, tile, overlap)
    ]


def _classes(scores: Array) -> np.ndarray:
    """uint8 argmax over the class axis, as a numpy array (from the GPU if need be)."""
    best = scores.argmax(0)
    return best.astype(np.uint8) if isinstance(best, np.ndarray) else best.byte().cpu().numpy()


def _like(scores: Array, values: np.ndarray) -> Array:
    """``values`` as the same kind of array as ``scores`` (same device for torch)."""
    return values if isinstance(scores, np.ndarray) else scores.new_tensor(values)


def _zeros_like(scores: Array, shape: tuple[int, ...]) -> Array:
    return np.zeros(shape, dtype=scores.dtype) if isinstance(scores, np.ndarray) else scores.new_zeros(shape)


def blend_bands(
    scores: Iterable[Array],
    rows: list[list[Window]],
    shape: tuple[int, int],
    overlap: int,
    progress: bool = False,
) -> Iterator[np.ndarray]:
    """Blend per-window class scores into uint8 class bands, top to bottom.

    Args:
        scores: ``(C, h, w)`` class probabilities (numpy or torch) of each window of
            ``rows``, row by row, in order.
        rows: The windows, from :func:`section_windows` ``(shape, tile, overlap)``.
        shape: (height, width) of the section.
        overlap: Px shared by neighbouring windows.
        progress: Show a tqdm bar over windows (stderr).

    Yields:
        uint8 ``(rows, width)`` bands of class indices covering the section top to bottom.

    Raises:
        ValueError: a score array does not match its window, or ``scores`` ends early.
    """
    height, width = shape
    source = iter(scores)
    carry = None  # weighted scores of the rows the next row of windows overlaps
    weights: dict[tuple, Array] = {}  # by window size and image edges touched
    with tqdm(total=sum(map(len, rows)), desc="windows", unit="win", disable=not progress) as bar:
        for row in rows:
            y0, y1 = row[0].y0, row[0].y1
            final_y = y1 - overlap if y1 < height else height
            band = np.empty((final_y - y0, width), dtype=np.uint8)
            below = None
            right = None  # weighted scores of the columns the next window overlaps
            seen_x = 0  # columns up to which the carry from above has been added
            for window in row:
                probs = next(source, None)
                if probs is None:
                    raise ValueError(f"window scores ended before window {window}")
                if tuple(probs.shape[1:]) != window.shape:
                    raise ValueError(f"scores of shape {tuple(probs.shape)} for a window of {window.shape}")
                key = (window.shape, window.y0 == 0, window.y1 == height, window.x0 == 0, window.x1 == width)
                if key not in weights:
                    weights[key] = _like(probs, blend_weights(window, shape, overlap))
                acc = probs * weights[key]
                x0, x1 = window.x0, window.x1
                if carry is not None:
                    acc[:, : carry.shape[1], seen_x - x0 :] += carry[:, :, seen_x:x1]
                seen_x = x1
                if right is not None:
                    acc[:, :, : right.shape[2]] += right
                final_x = x1 - overlap if x1 < width else width
                split_y, split_x = final_y - y0, final_x - x0
                band[:, x0:final_x] = _classes(acc[:, :split_y, :split_x])
                if final_y < y1:
                    if below is None:
                        below = _zeros_like(acc, (acc.shape[0], y1 - final_y, width))
                    below[:, :, x0:final_x] = acc[:, split_y:, :split_x]
                right = acc[:, :, split_x:]
                bar.update(1)
            carry = below
            yield band


def prefetch(items: Iterable[Any], depth: int = 2) -> Iterator[Any]:
    """Iterate ``items`` produced ``depth`` ahead in a background thread (overlaps reading
    with computing; decoding and ``pread`` release the GIL). Errors surface in the consumer."""
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                buffer.put((item, None))
            buffer.put((done, None))
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, re-raised there
            buffer.put((done, exc))

    worker = threading.Thread(target=produce, name="scraiber-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item, error = buffer.get()
            if error is not None:
                raise error
            if item is done:
                return
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full buffer
            try:
                buffer.get(timeout=0.05)
            except queue.Empty:
                pass
        worker.join()


def window_scores(
    read: Callable[[Window], np.ndarray],
    predict: Callable[[np.ndarray], Array],
    rows: list[list[Window]],
    halo: int,
) -> Iterator[Array]:
    """Class scores of each window, in order: ``predict`` on the window read with ``halo`` px
    of context (by ``read``), the halo cropped off again.

    Reading and predicting run in a background thread a few windows ahead, so they overlap
    with the blending (on a GPU the network runs while the CPU reads the next window).
    """

    def scored(window: Window) -> Array:
        h, w = window.shape
        return predict(read(window))[:, halo : halo + h, halo : halo + w]

    return prefetch(scored(window) for row in rows for window in row)
