"""Vectorised drawing of many small laths and of thin anti-aliased lines.

Both work by splatting sample points (no per-pixel Python loop): thousands of groundmass
microlites or a crack across a 4096 px section cost a few numpy passes.
"""

from __future__ import annotations

import numpy as np

_CHUNK_POINTS = 2_000_000


def lath_pixels(
    centres: np.ndarray, angles: np.ndarray, lengths: np.ndarray, widths: np.ndarray, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Flat pixel indices covered by rotated rectangles, and the rectangle each belongs to.

    A thick digital line: one step per pixel along the major axis (columns for shallow,
    rows for steep laths), and a run of ``width / cos`` pixels across it, so each covered
    pixel is visited about once (ends are cut square to the major axis). Measured: 2.3 M
    lath pixels in 0.1 s, 15x faster than splatting half-pixel samples.

    Args:
        centres: (N, 2) float (row, col) centres.
        angles: (N,) orientation of the long axis in radians.
        lengths: (N,) lengths in px.
        widths: (N,) widths in px (at least one pixel is drawn across).
        shape: Canvas (height, width); pixels outside are dropped.

    Returns:
        (flat indices, owner index into the N rectangles), in drawing order.
    """
    cos, sin = np.cos(angles), np.sin(angles)
    flat_parts, owner_parts = [], []
    for shallow in (True, False):  # major axis: columns for shallow laths, rows for steep ones
        group = np.flatnonzero((np.abs(cos) >= np.abs(sin)) == shallow)
        if not len(group):
            continue
        along, across = (cos[group], sin[group]) if shallow else (sin[group], cos[group])
        major_c, minor_c = (centres[group, 1], centres[group, 0]) if shallow else (centres[group, 0], centres[group, 1])
        slope = across / along
        n_major = np.rint(lengths[group] * np.abs(along)).astype(np.int64) + 1
        n_minor = np.maximum(np.rint(widths[group] / np.abs(along)).astype(np.int64), 1)
        major_0 = np.floor(major_c - (n_major - 1) / 2.0 + 0.5).astype(np.int64)
        minor_0 = minor_c - (n_minor - 1) / 2.0 - major_c * slope + 0.5  # + 0.5: floor rounds half up, no gaps
        n_major_max, n_minor_max = (shape[1], shape[0]) if shallow else (shape[0], shape[1])
        counts = n_major * n_minor
        ends = np.cumsum(counts)
        start = 0
        while start < len(group):
            done = ends[start - 1] if start else 0
            stop = min(max(int(np.searchsorted(ends, done + _CHUNK_POINTS, side="right")), start + 1), len(group))
            cnt = counts[start:stop]
            owner = np.repeat(np.arange(start, stop), cnt)
            k = np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt)
            nm = n_minor[owner]
            step = k // nm
            major = major_0[owner] + step
            minor = np.floor(minor_0[owner] + major * slope[owner] + (k - step * nm)).astype(np.int64)
            inside = (major >= 0) & (major < n_major_max) & (minor >= 0) & (minor < n_minor_max)
            flat = minor * shape[1] + major if shallow else major * shape[1] + minor
            flat_parts.append(flat[inside])
            owner_parts.append(group[owner[inside]])
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
