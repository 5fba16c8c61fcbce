"""Anisotropic grain-growth tessellation: grains nucleate, grow, and stop where they meet.

Each grain has a shape, the unit ball of a norm in its own rotated frame (an octagon from
rhomb to rectangle, a perturbed ellipse, or a skeletal cross), a nucleation time and a growth
duration. A pixel at normalised distance ``n <= 1`` from a grain's centre is reached at
``start + n * duration``; it belongs to the grain that reaches it first (Johnson-Mehl growth
with impingement) and to none when no grain's ball covers it. Grains growing at the same
time meet along straight boundaries, grains of different rates along curved ones, and an
early lath stays euhedral inside a late, slow grain (ophitic texture).

Every (pixel, grain) pair inside a grain's bounding box is enumerated without a per-grain
Python loop (rotated rectangles via :func:`~ml_backend.synthetic.strokes.lath_pixels` for
elongated grains, dense axis-aligned squares for compact ones); the first arrival per pixel
is a ``np.minimum.at`` over the pairs, done in chunks of grains so memory stays bounded.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ml_backend.synthetic.strokes import lath_pixels

OCTAGON, ROUND, SKELETAL = 0, 1, 2
HARMONICS = (2, 3, 4)
#: Columns of ``Grains.shape``: octagon chamfer; skeletal frame and arm lengths; ellipse harmonics, embayment.
CHAMFER, FRAME = 0, 0
ARMS = slice(1, 5)  # +along, -along, +across, -across arm length / half_length
HARMONIC_AMPLITUDES = slice(0, len(HARMONICS))
HARMONIC_PHASES = slice(len(HARMONICS), 2 * len(HARMONICS))
EMBAY_DEPTH, EMBAY_ANGLE, EMBAY_WIDTH = 2 * len(HARMONICS), 2 * len(HARMONICS) + 1, 2 * len(HARMONICS) + 2
SHAPE_COLUMNS = 2 * len(HARMONICS) + 3
_CHUNK_PAIRS = 500_000
_ELONGATED = 2.5  # grains longer than this times their width are enumerated as rotated rectangles
_SIDES = np.unique(np.ceil(1.2 ** np.arange(80)).astype(np.int64))  # bounding-square sizes


@dataclass
class Grains:
    """Grains as parallel arrays (one entry per grain; lengths in px, angles in radians).

    Attributes:
        row, col: Centre.
        angle: Direction of the long axis (0 = along columns).
        half_length, half_width: Half-axes of the unit ball (a >= b).
        kind: ``OCTAGON``, ``ROUND`` or ``SKELETAL``.
        shape: (n, ``SHAPE_COLUMNS``) kind-specific parameters: octagon chamfer ``c`` in [1, 2]
            (1 rhomb, 2 rectangle); skeletal frame inner edge (>= 1: a bare cross) and the
            length of its four arms; ellipse harmonic amplitudes and phases, and one embayment
            (depth, angle, width).
        start, duration: Nucleation time and growth duration.
    """

    row: np.ndarray
    col: np.ndarray
    angle: np.ndarray
    half_length: np.ndarray
    half_width: np.ndarray
    kind: np.ndarray
    shape: np.ndarray
    start: np.ndarray
    duration: np.ndarray

    def __len__(self) -> int:
        return len(self.row)

    @classmethod
    def concatenate(cls, parts: list[Grains]) -> Grains:
        """All grains of ``parts``, in order."""
        names = cls.__dataclass_fields__
        if not parts:
            empty: dict[str, np.ndarray] = {name: np.zeros(0) for name in names}
            empty["kind"] = np.zeros(0, np.int8)
            empty["shape"] = np.zeros((0, SHAPE_COLUMNS))
            return cls(**empty)
        return cls(**{name: np.concatenate([getattr(p, name) for p in parts]) for name in names})

    def reach(self) -> np.ndarray:
        """Largest radius of the unit ball relative to ``half_length`` (harmonics bulge ellipses)."""
        bulge = np.abs(self.shape[:, HARMONIC_AMPLITUDES]).sum(axis=1)
        return np.where(self.kind == ROUND, 1.0 + bulge, 1.0)


@dataclass
class Tessellation:
    """Which grain owns each pixel, and where the pixel lies in that grain's frame.

    Attributes:
        labels: (H, W) int32 grain index + 1; 0 where no grain reached (groundmass).
        along, across: (H, W) float32 coordinates in the owner's frame, in px (0 elsewhere).
        norm: (H, W) float32 normalised distance from the owner's centre (0 centre, 1 outline).
    """

    labels: np.ndarray
    along: np.ndarray
    across: np.ndarray
    norm: np.ndarray


def unit_norm(kind: int, grains: Grains, owner: np.ndarray, along: np.ndarray, across: np.ndarray) -> np.ndarray:
    """Normalised distance of points from the centres of grains ``owner``, all of ``kind``.

    ``along``, ``across`` are the points' coordinates (px) in each owner's frame; points with a
    value <= 1 lie inside the owner's unit ball.
    """
    a = grains.half_length.astype(np.float32)[owner]
    b = grains.half_width.astype(np.float32)[owner]
    params = grains.shape.astype(np.float32)

    def column(k: int) -> np.ndarray:
        return params[:, k][owner]

    if kind == OCTAGON:
        x, y = np.abs(along) / a, np.abs(across) / b
        return np.maximum(np.maximum(x, y), (x + y) / column(CHAMFER))
    if kind == SKELETAL:  # four arms of half-width b along both axes, plus an optional square frame
        arm = range(ARMS.start, ARMS.stop)
        reach_x = a * np.where(along > 0, column(arm[0]), column(arm[1]))
        reach_y = a * np.where(across > 0, column(arm[2]), column(arm[3]))
        x, y = np.abs(along), np.abs(across)
        cross = np.minimum(np.maximum(x / reach_x, y / b), np.maximum(x / b, y / reach_y))
        square = np.maximum(x, y) / a
        return np.where(square >= column(FRAME), np.minimum(square, cross), cross)
    x, y = along / a, across / b
    phi = np.arctan2(y, x)
    radius = np.ones_like(x)
    for k, harmonic in enumerate(HARMONICS):
        radius += column(k) * np.cos(harmonic * phi + column(len(HARMONICS) + k))
    gap = (phi - column(EMBAY_ANGLE) + np.pi) % np.float32(2 * np.pi) - np.pi
    radius -= column(EMBAY_DEPTH) * np.exp(-0.5 * (gap / np.maximum(column(EMBAY_WIDTH), 1e-3)) ** 2)
    return np.hypot(x, y) / np.maximum(radius, 0.05)


def _extent(grains: Grains, members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Half-axes (px) of a rectangle in each grain's frame that holds its unit ball."""
    reach = grains.reach()[members]
    b = np.where(grains.kind[members] == SKELETAL, grains.half_length[members], grains.half_width[members])
    return grains.half_length[members] * reach, b * reach


def _rotated_candidates(
    grains: Grains, members: np.ndarray, shape: tuple[int, int]
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(flat, owner) of the pixels in each member's rotated bounding rectangle (elongated grains)."""
    a, b = _extent(grains, members)
    cos, sin = np.abs(np.cos(grains.angle[members])), np.abs(np.sin(grains.angle[members]))
    slant = np.minimum(cos, sin) / np.maximum(cos, sin)
    lengths = 2.0 * a + 2.0 * b * slant + 2.0  # the rotated ends reach this far along the major pixel axis
    widths = 2.0 * b + 2.0
    pairs = np.cumsum(lengths * widths)
    start = 0
    while start < len(members):
        stop = max(int(np.searchsorted(pairs, pairs[start] + _CHUNK_PAIRS)), start + 1)
        sl = slice(start, stop)
        chunk = members[sl]
        flat, owner = lath_pixels(np.column_stack((grains.row[chunk], grains.col[chunk])), grains.angle[chunk],
                                  lengths[sl], widths[sl], shape)  # fmt: skip
        yield flat, chunk[owner]
        start = stop


def _box_candidates(
    grains: Grains, members: np.ndarray, shape: tuple[int, int]
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(flat, owner) of the pixels in each member's axis-aligned bounding square (compact grains).

    Squares are rounded up to a few sizes so each size is one dense (grains, side, side) block
    without per-pixel index arithmetic. Measured on 20 000 granular grains in 1024 px: 16 ns per
    pixel pair against 48 ns for rotated rectangles, for 1.5x as many pairs: 2x faster.
    """
    a, b = _extent(grains, members)
    cos, sin = np.abs(np.cos(grains.angle[members])), np.abs(np.sin(grains.angle[members]))
    side = np.ceil(2.0 * np.maximum(a * cos + b * sin, a * sin + b * cos)).astype(np.int64) + 2
    side = _SIDES[np.searchsorted(_SIDES, side)]
    for s in np.unique(side).tolist():
        group = members[side == s]
        band = min(s, max(_CHUNK_PAIRS // s, 1))  # a square larger than a chunk goes in bands of rows
        step = max(_CHUNK_PAIRS // (band * s), 1)
        for start in range(0, len(group), step):
            chunk = group[start : start + step]
            top = np.rint(grains.row[chunk] - (s - 1) / 2.0).astype(np.int64)[:, None]
            cols = np.rint(grains.col[chunk] - (s - 1) / 2.0).astype(np.int64)[:, None] + np.arange(s)
            for first in range(0, s, band):
                rows = top + np.arange(first, min(first + band, s))
                inside_rows, inside_cols = (rows >= 0) & (rows < shape[0]), (cols >= 0) & (cols < shape[1])
                valid = inside_rows[:, :, None] & inside_cols[:, None, :]
                flat = rows[:, :, None] * shape[1] + cols[:, None, :]
                yield flat[valid], np.broadcast_to(chunk[:, None, None], flat.shape)[valid]


def grow(grains: Grains, shape: tuple[int, int]) -> Tessellation:
    """Grow all grains on a canvas of ``shape`` and return who owns each pixel."""
    size = shape[0] * shape[1]
    best = np.full(size, np.inf, np.float32)
    maps = [np.zeros(size, np.int32)] + [np.zeros(size, np.float32) for _ in range(3)]
    a, b = _extent(grains, np.arange(len(grains)))
    elongated = a > _ELONGATED * b
    cos, sin = np.cos(grains.angle).astype(np.float32), np.sin(grains.angle).astype(np.float32)
    row, col = grains.row.astype(np.float32), grains.col.astype(np.float32)
    start, duration = grains.start.astype(np.float32), grains.duration.astype(np.float32)
    for kind in (OCTAGON, ROUND, SKELETAL):
        for enumerate_pixels, which in ((_rotated_candidates, elongated), (_box_candidates, ~elongated)):
            members = np.flatnonzero((grains.kind == kind) & which)
            if not len(members):
                continue
            for flat, owner in enumerate_pixels(grains, members, shape):
                rows, cols = np.divmod(flat, shape[1])
                dr, dc = rows.astype(np.float32) - row[owner], cols.astype(np.float32) - col[owner]
                u, v = dc * cos[owner] + dr * sin[owner], dr * cos[owner] - dc * sin[owner]
                n = unit_norm(kind, grains, owner, u, v)
                inside = n <= 1.0
                flat, owner, u, v, n = flat[inside], owner[inside], u[inside], v[inside], n[inside]
                tau = start[owner] + n * duration[owner]
                np.minimum.at(best, flat, tau)
                won = tau == best[flat]
                for target, value in zip(maps, (owner[won] + 1, u[won], v[won], n[won])):
                    target[flat[won]] = value
    return Tessellation(*(m.reshape(shape) for m in maps))
