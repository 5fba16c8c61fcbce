"""Vectorised drawing of many small laths and of thin anti-aliased lines.

Both work by splatting sample points (no per-pixel Python loop): thousands of groundmass
microlites or a crack across a 4096 px section cost a few numpy passes.
"""

from __future__ import annotations

import numpy as np

_STEP = 0.5  # sample spacing in px; <= 1/sqrt(2) leaves no holes in rotated rectangles
_CHUNK_POINTS = 4_000_000


def lath_pixels(
    centres: np.ndarray, angles: np.ndarray, lengths: np.ndarray, widths: np.ndarray, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Flat pixel indices covered by rotated rectangles, and the rectangle each belongs to.

    Args:
        centres: (N, 2) float (row, col) centres.
        angles: (N,) orientation of the long axis in radians.
        lengths: (N,) lengths in px.
        widths: (N,) widths in px (at least 1 px is drawn).
        shape: Canvas (height, width); pixels outside are dropped.

    Returns:
        (flat indices, owner index into the N rectangles), in drawing order.
    """
    n_len = np.maximum(np.ceil(lengths / _STEP).astype(np.int64), 1) + 1
    n_wid = np.maximum(np.ceil(np.maximum(widths, 1.0) / _STEP).astype(np.int64), 1)
    counts = n_len * n_wid
    flat_parts, owner_parts = [], []
    start = 0
    while start < len(counts):
        stop = start + max(1, int(np.searchsorted(np.cumsum(counts[start:]), _CHUNK_POINTS)))
        stop = min(stop, len(counts))
        cnt = counts[start:stop]
        owner = np.repeat(np.arange(start, stop), cnt)
        first = np.repeat(np.cumsum(cnt) - cnt, cnt)
        k = np.arange(cnt.sum()) - first
        nl, nw = n_len[owner], n_wid[owner]
        u = ((k // nw) / np.maximum(nl - 1, 1) - 0.5) * lengths[owner]
        v = ((k % nw + 0.5) / nw - 0.5) * np.maximum(widths[owner], 1.0)
        cos, sin = np.cos(angles[owner]), np.sin(angles[owner])
        rows = np.rint(centres[owner, 0] + u * sin + v * cos).astype(np.int64)
        cols = np.rint(centres[owner, 1] + u * cos - v * sin).astype(np.int64)
        inside = (rows >= 0) & (rows < shape[0]) & (cols >= 0) & (cols < shape[1])
        flat_parts.append(rows[inside] * shape[1] + cols[inside])
        owner_parts.append(owner[inside])
        start = stop
    if not flat_parts:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(flat_parts), np.concatenate(owner_parts)


def line_coverage(vertices: np.ndarray, width_px: float, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Area coverage of the pixels touched by a polyline of a given width (anti-aliased).

    Coverage of a pixel at distance d from the line is ``clip((w + 1) / 2 - d, 0, min(w, 1))``,
    a box-filter approximation that keeps sub-pixel lines faint.

    Returns:
        (unique flat indices, coverage in (0, 1]) of pixels inside the canvas.
    """
    seg = np.diff(vertices, axis=0)
    seg_len = np.hypot(seg[:, 0], seg[:, 1])
    n = np.maximum(np.ceil(seg_len / 0.35).astype(np.int64), 1)
    t = np.concatenate([np.arange(k) / k for k in n])
    which = np.repeat(np.arange(len(n)), n)
    points = vertices[which] + seg[which] * t[:, None]
    points = np.vstack((points, vertices[-1:]))
    reach = int(np.ceil(width_px / 2 + 1))
    off = np.arange(-reach, reach + 1)
    orow, ocol = np.meshgrid(off, off, indexing="ij")
    base = np.rint(points).astype(np.int64)
    rows = base[:, 0:1] + orow.ravel()[None, :]
    cols = base[:, 1:2] + ocol.ravel()[None, :]
    dist = np.hypot(rows - points[:, 0:1], cols - points[:, 1:2])
    cover = np.clip((width_px + 1.0) / 2.0 - dist, 0.0, min(width_px, 1.0))
    keep = (cover > 0) & (rows >= 0) & (rows < shape[0]) & (cols >= 0) & (cols < shape[1])
    flat, cover = rows[keep] * shape[1] + cols[keep], cover[keep]
    if flat.size == 0:
        return flat, cover.astype(np.float32)
    order = np.lexsort((cover, flat))
    flat, cover = flat[order], cover[order]
    last = np.r_[flat[1:] != flat[:-1], True]
    return flat[last], cover[last].astype(np.float32)
