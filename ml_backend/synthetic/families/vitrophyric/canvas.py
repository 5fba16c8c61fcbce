"""The canvas crystals are painted on, and polygon rasterising into windows of it."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from ml_backend.synthetic.families.vitrophyric.habits import Habit
from ml_backend.synthetic.scene import Crystal


@dataclass(frozen=True)
class Placed:
    """Where a painted crystal is: centre, equivalent radius (px), window (r0, c0, r1, c1), pixels."""

    centre: np.ndarray
    radius: float
    box: tuple[int, int, int, int]
    area: int


@dataclass
class Canvas:
    """Label and eta maps being painted, and what has been painted so far."""

    classes: np.ndarray
    instances: np.ndarray
    eta: np.ndarray
    glass: np.ndarray
    claimed: np.ndarray = field(init=False)
    crystals: list[Crystal] = field(default_factory=list)
    painted: Counter = field(default_factory=Counter)
    models: Counter = field(default_factory=Counter)
    placed: dict[int, Placed] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.claimed = np.zeros(self.classes.shape, bool)

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width)."""
        return self.classes.shape


def window(habit: Habit, centre: np.ndarray, shape: tuple[int, int], margin: int) -> tuple[int, int, int, int] | None:
    """(r0, c0, r1, c1) of the outline's box within the canvas grown by ``margin``, or None."""
    lo = np.floor(habit.outline.min(axis=0) + centre).astype(int) - 1
    hi = np.ceil(habit.outline.max(axis=0) + centre).astype(int) + 2
    r0, c0 = max(lo[0], -margin), max(lo[1], -margin)
    r1, c1 = min(hi[0], shape[0] + margin), min(hi[1], shape[1] + margin)
    return (r0, c0, r1, c1) if r0 < r1 and c0 < c1 else None


def fill(polygons: list[np.ndarray], centre: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Bool mask of ``box`` inside any of the polygons (vertices relative to ``centre``)."""
    image = Image.new("1", (box[3] - box[1], box[2] - box[0]), 0)
    pen = ImageDraw.Draw(image)
    for polygon in polygons:
        pen.polygon(
            list(zip((polygon[:, 1] + centre[1] - box[1]).tolist(), (polygon[:, 0] + centre[0] - box[0]).tolist())),
            fill=1,
        )
    return np.array(image, dtype=bool)
