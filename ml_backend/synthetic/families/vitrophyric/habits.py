"""Crystal habits of quenched basalt: skeletal, hopper, swallowtail, hollow, embayed and sieved.

A habit is an outline polygon (the crystal as grown, from :mod:`ml_backend.synthetic.shapes`)
plus glass polygons cut out of it (hollow cores, swallowtail notches, embayments) and an
optional sieve band of glass blobs. Where glass lies inside the outline the pixels are
groundmass (melt inclusions), not crystal. Coordinates are (row, col) px relative to the
crystal's centre; a direction ``angle`` points along (sin, cos).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ml_backend.synthetic import shapes


@dataclass(frozen=True)
class Sieve:
    """Glass blobs in a band of depths (fractions of the crystal's deepest point)."""

    inner: float
    outer: float
    blob_px: float
    count: int


@dataclass
class Habit:
    """A crystal section's shape.

    Attributes:
        model: Name of the shape model ("hopper olivine", "swallowtail plagioclase", ...).
        outline: (N, 2) outline polygon.
        holes: Glass polygons; only their part inside the outline is painted as glass.
        sieve: Glass blobs drawn at paint time (they need the crystal's depth map), or None.
        axis: Angle of the long axis.
        half_length: Half extent along the axis, px.
        half_width: Half extent across the axis, px.
    """

    model: str
    outline: np.ndarray
    holes: list[np.ndarray] = field(default_factory=list)
    sieve: Sieve | None = None
    axis: float = 0.0
    half_length: float = 1.0
    half_width: float = 1.0

    @property
    def radius(self) -> float:
        """Largest distance of an outline vertex from the centre."""
        return float(np.hypot(self.outline[:, 0], self.outline[:, 1]).max())


def _direction(angle: float) -> np.ndarray:
    return np.array((np.sin(angle), np.cos(angle)))


def polygon_area(outline: np.ndarray) -> float:
    """Area of a closed polygon (shoelace formula), px^2."""
    r, c = outline[:, 0], outline[:, 1]
    return float(0.5 * abs(np.dot(r, np.roll(c, 1)) - np.dot(c, np.roll(r, 1))))


def with_axis(model: str, outline: np.ndarray) -> Habit:
    """A habit without glass whose long axis is the outline's principal axis."""
    centred = outline - outline.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    axis = float(np.arctan2(vt[0, 0], vt[0, 1]))
    along = outline @ _direction(axis)
    across = outline @ _direction(axis + np.pi / 2)
    return Habit(
        model, outline, axis=axis, half_length=float(np.abs(along).max()), half_width=float(np.abs(across).max())
    )


def capsule(start: np.ndarray, stop: np.ndarray, r_start: float, r_stop: float, n: int = 12) -> np.ndarray:
    """Polygon around the segment start-stop with round ends of the given radii (a tapered bay)."""
    angle = float(np.arctan2(*(stop - start))) if np.any(stop != start) else 0.0
    half = np.linspace(-np.pi / 2, np.pi / 2, n)
    front = stop + r_stop * np.column_stack((np.sin(angle + half), np.cos(angle + half)))
    back = start + r_start * np.column_stack((np.sin(angle + np.pi + half), np.cos(angle + np.pi + half)))
    return np.vstack((front, back))


def notch(habit: Habit, end: int, depth: float, spread: float) -> np.ndarray:
    """V-shaped glass notch cut into one end (+1 / -1) of the long axis (swallowtail)."""
    along, across = _direction(habit.axis), _direction(habit.axis + np.pi / 2)
    apex = end * (habit.half_length - depth) * along
    outside = end * (habit.half_length + 2.0) * along
    return np.vstack((apex, outside + spread * across, outside - spread * across))


def channel(habit: Habit, start: float, stop: float, width: float) -> np.ndarray:
    """Glass channel along the long axis from ``start`` to ``stop`` (px along the axis)."""
    along = _direction(habit.axis)
    return capsule(start * along, stop * along, width / 2, width / 2)


def embayments(habit: Habit, rng: np.random.Generator, count: int) -> list[np.ndarray]:
    """Glass bays reaching from the outline into the crystal, wider inside than at the throat."""
    bays = []
    radius = habit.radius
    for _ in range(count):
        edge = habit.outline[int(rng.integers(len(habit.outline)))]
        inward = -edge / max(float(np.hypot(*edge)), 1e-6)
        turn = rng.normal(0.0, 0.3)
        inward = np.array(
            (inward[0] * np.cos(turn) - inward[1] * np.sin(turn), inward[0] * np.sin(turn) + inward[1] * np.cos(turn))
        )
        depth = rng.uniform(0.25, 0.6) * radius
        bay = rng.uniform(0.08, 0.2) * radius
        bays.append(capsule(edge - inward * 2.0, edge + inward * depth, bay * rng.uniform(0.4, 0.9), bay))
    return bays


def _resorbed(habit: Habit, rng: np.random.Generator, sieve_probability: float) -> Habit:
    """Round the corners, cut 1-3 embayments and, sometimes, a sieve band (glass blobs)."""
    rounded = with_axis(f"resorbed {habit.model}", shapes.chaikin(habit.outline, int(rng.integers(2, 4))))
    rounded.holes = embayments(rounded, rng, int(rng.integers(1, 4)))
    blob = rng.uniform(0.03, 0.08) * 2 * rounded.radius
    if rng.random() < sieve_probability and blob >= 2.0:
        inner = float(rng.uniform(0.0, 0.5))
        outer = float(rng.uniform(inner + 0.2, 0.95))
        band = polygon_area(rounded.outline) * ((1 - inner) ** 2 - (1 - outer) ** 2)
        count = int(np.clip(rng.uniform(0.15, 0.35) * band / (np.pi * blob**2 / 4), 3, 200))
        rounded.sieve, rounded.model = (
            Sieve(inner, outer, float(blob), count),
            rounded.model.replace("resorbed", "sieved"),
        )
    return rounded


def olivine_habit(rng: np.random.Generator, diameter_px: float, quench: float, resorption: float) -> Habit:
    """Euhedral, hopper (hollow, glass-filled core and tip channels), skeletal (swallowtail,
    deeply notched ends) or resorbed/embayed olivine."""
    outline = shapes.olivine_outline(rng, diameter_px, rng.uniform(1.1, 2.2), int(rng.choice((0, 0, 1))))
    habit = with_axis("olivine", outline)
    u = rng.random()
    if u < 0.35 * quench:
        habit.model = "hopper olivine"
        core = outline * rng.uniform(0.3, 0.6) + rng.normal(0.0, 0.05, 2) * habit.half_width
        habit.holes = [core]
        for end in (-1, 1):
            if rng.random() < 0.5:
                width = rng.uniform(0.2, 0.5) * habit.half_width
                habit.holes.append(channel(habit, 0.0, end * (habit.half_length + 2.0), width))
    elif u < 0.7 * quench:
        habit.model = "skeletal olivine"
        spread = rng.uniform(0.4, 0.8) * habit.half_width
        habit.holes = [notch(habit, end, rng.uniform(0.3, 0.6) * habit.half_length, spread) for end in (-1, 1)]
        if rng.random() < 0.5:
            habit.holes.append(outline * rng.uniform(0.15, 0.35))
    elif rng.random() < resorption:
        habit = _resorbed(habit, rng, 0.2)
    return habit


def plagioclase_habit(rng: np.random.Generator, diameter_px: float, quench: float, resorption: float) -> Habit:
    """Lath or tablet; swallowtail (forked ends), hollow (glass core channel), or
    resorbed / sieve-textured (glass blobs in a mantle band)."""
    aspect = rng.uniform(1.5, 4.0) if rng.random() < 0.3 else rng.uniform(4.0, 12.0)
    length = diameter_px / np.sqrt(4.0 / (np.pi * aspect))
    habit = with_axis("plagioclase", shapes.lath_outline(rng, length, aspect))
    u = rng.random()
    if u < 0.35 * quench:
        habit.model = "swallowtail plagioclase"
        spread = rng.uniform(0.5, 0.9) * habit.half_width
        habit.holes = [notch(habit, end, rng.uniform(0.08, 0.3) * habit.half_length, spread) for end in (-1, 1)]
    elif u < 0.6 * quench:
        habit.model = "hollow plagioclase"
        width = rng.uniform(0.25, 0.6) * habit.half_width * 2
        start = -rng.uniform(0.2, 0.7) * habit.half_length
        stop = habit.half_length + 2.0 if rng.random() < 0.6 else -start
        habit.holes = [channel(habit, start, stop, width)]
    elif rng.random() < resorption:
        habit = _resorbed(habit, rng, 0.6)
    return habit


def pyroxene_habit(rng: np.random.Generator, diameter_px: float, quench: float, resorption: float) -> Habit:
    """Prism or basal octagon; hollow at high quench, or resorbed / embayed."""
    habit = with_axis("clinopyroxene", shapes.prism_outline(rng, diameter_px, rng.uniform(1.0, 2.5)))
    if rng.random() < 0.25 * quench:
        habit.model = "hollow clinopyroxene"
        habit.holes = [habit.outline * rng.uniform(0.25, 0.5)]
    elif rng.random() < resorption:
        habit = _resorbed(habit, rng, 0.3)
    return habit


def oxide_habit(rng: np.random.Generator, diameter_px: float, quench: float) -> Habit:
    """Euhedral octahedral sections, or skeletal oxides at high quench (cross or hollow frame)."""
    if diameter_px >= 6.0 and rng.random() < 0.5 * quench:
        arm = rng.uniform(0.15, 0.3)
        holes = []
        if rng.random() < 0.5:  # cross: two perpendicular bars
            outline = np.array(((arm, 1), (arm, arm), (1, arm), (1, -arm), (arm, -arm), (arm, -1),
                                (-arm, -1), (-arm, -arm), (-1, -arm), (-1, arm), (-arm, arm), (-arm, 1)), float)  # fmt: skip
        else:  # hollow square frame
            outline = np.array(((-1, -1), (-1, 1), (1, 1), (1, -1)), float)
            holes = [outline * (1.0 - 2.0 * arm)]
        angle = rng.uniform(0, np.pi / 2)
        turn = np.array(((np.cos(angle), np.sin(angle)), (-np.sin(angle), np.cos(angle)))) * diameter_px / 2.0
        habit = with_axis("skeletal oxide", outline @ turn)
        habit.holes = [hole @ turn for hole in holes]
        return habit
    return with_axis("oxide", shapes.oxide_outline(rng, diameter_px))
