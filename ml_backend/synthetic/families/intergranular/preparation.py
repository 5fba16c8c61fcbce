"""Thin-section preparation: plucked grains, polishing relief and polishing scratches.

Plucking changes the truth (a missing grain, or the part of one that broke away, is an
epoxy-filled hole: class Epoxy, instance 0, epoxy eta). Relief and scratches change only the
signal: they are returned as a surface (height by phase hardness, and a scratch contrast map)
that the detector turns into topographic contrast.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.ndimage import find_objects

from ml_backend.synthetic.strokes import lath_pixels

#: Relative polishing height of each phase: hard phases stand proud of softer ones.
HARDNESS = {
    "Epoxy": 0.0,
    "Groundmass": 0.55,
    "Plagioclase": 0.7,
    "Clinopyroxene": 0.85,
    "Olivine": 0.9,
    "Fe-Ti oxide": 1.0,
}
#: Relative chance of a crystal of each phase being plucked (olivine and oxide break out most;
#: divided by the square root of its area).
_PLUCK_WEIGHT = {"Plagioclase": 1.0, "Clinopyroxene": 1.0, "Olivine": 3.0, "Fe-Ti oxide": 2.0}
_SCRATCH_SEGMENTS = 8


@dataclass
class Surface:
    """The polished surface as the detector sees it.

    Attributes:
        height: (H, W) float32 relative height (0 epoxy .. 1 oxide).
        scratches: (H, W) float32 relative signal change along scratches (0 elsewhere).
    """

    height: np.ndarray
    scratches: np.ndarray


def pluck(
    classes: np.ndarray,
    instances: np.ndarray,
    eta: np.ndarray,
    roles: dict[str, int],
    epoxy_eta: float,
    share: float,
    rng: np.random.Generator,
) -> dict[str, Any]:
    """Pluck about ``share`` of the crystals, whole or in part, in place.

    Args:
        classes, instances, eta: Truth maps, changed in place.
        roles: Catalogue index of each phase.
        epoxy_eta: Eta written into the holes.
        share: Expected fraction of crystals plucked.
        rng: Random stream.

    Returns:
        Realised counts (crystals plucked, whole ones, pixels).
    """
    slices = find_objects(instances)
    ids = np.array([k + 1 for k, sl in enumerate(slices) if sl is not None])
    if not len(ids) or share <= 0:
        return {"plucked_crystals": 0, "plucked_whole": 0, "plucked_px": 0}
    class_of = np.zeros(len(slices) + 1, np.int64)
    class_of[instances.ravel()] = classes.ravel()  # one phase per crystal
    by_class = np.ones(max(roles.values()) + 1)
    for role, index in roles.items():
        by_class[index] = _PLUCK_WEIGHT.get(role, 1.0)
    area = np.bincount(instances.ravel(), minlength=len(slices) + 1)[ids]
    weight = by_class[class_of[ids]] / np.sqrt(area)  # small grains break out more readily
    n = min(int(rng.binomial(len(ids), share)), len(ids))
    chosen = rng.choice(ids, n, replace=False, p=weight / weight.sum())
    whole = rng.random(n) < 0.4
    total = 0
    for crystal, all_of_it in zip(chosen, whole):
        sl = slices[crystal - 1]
        hole = instances[sl] == crystal
        if not all_of_it:  # a wavy fracture through a random point of the grain
            rows, cols = np.nonzero(hole)
            k = int(rng.integers(len(rows)))
            theta = rng.uniform(0.0, 2.0 * np.pi)
            rr, cc = np.ogrid[: hole.shape[0], : hole.shape[1]]
            across = (rr - rows[k]) * np.cos(theta) - (cc - cols[k]) * np.sin(theta)
            along = (rr - rows[k]) * np.sin(theta) + (cc - cols[k]) * np.cos(theta)
            wave = rng.uniform(0.0, 0.15) * max(hole.shape) * np.sin(along / max(hole.shape) * rng.uniform(3.0, 9.0))
            hole &= across + wave > 0
        classes[sl][hole] = roles["Epoxy"]
        instances[sl][hole] = 0
        eta[sl][hole] = epoxy_eta
        total += int(hole.sum())
    return {"plucked_crystals": int(n), "plucked_whole": int(whole.sum()), "plucked_px": total}


def _scratches(shape: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, dict[str, Any]]:
    """Long, straight or gently curved, dark or bright polishing scratches (one lath per segment)."""
    out = np.zeros(shape, np.float32)
    n = int(rng.integers(0, 13)) if rng.random() < 0.7 else 0
    direction, spread = float(rng.uniform(0.0, np.pi)), float(rng.uniform(0.05, 0.8))
    field = {"scratches": n, "scratch_direction_rad": direction, "scratch_direction_spread_rad": spread}
    if n == 0:
        return out, field
    diagonal = float(np.hypot(*shape))
    length = rng.uniform(0.3, 1.5, n) * diagonal
    heading = direction + rng.normal(0.0, spread, n)
    bend = rng.normal(0.0, 0.3, n)  # total turn along the scratch (rad): gently curved
    middle = rng.uniform((0.0, 0.0), shape, (n, 2))
    width = rng.uniform(0.8, 3.0, n)
    contrast = np.where(rng.random(n) < 0.7, -rng.uniform(0.04, 0.2, n), rng.uniform(0.03, 0.1, n))
    angle = heading[:, None] + bend[:, None] * ((np.arange(_SCRATCH_SEGMENTS) + 0.5) / _SCRATCH_SEGMENTS - 0.5)
    seg = length / _SCRATCH_SEGMENTS
    steps = np.stack((np.sin(angle), np.cos(angle)), -1) * seg[:, None, None]  # (n, segments, 2)
    ends = np.cumsum(steps, axis=1)
    centres = middle[:, None, :] - 0.5 * ends[:, -1:, :] + ends - 0.5 * steps
    owner = np.repeat(np.arange(n), _SCRATCH_SEGMENTS)
    depth = rng.uniform(0.5, 1.0, len(owner))  # the scratch fades and deepens along its length
    flat, segment = lath_pixels(centres.reshape(-1, 2), angle.ravel(), seg[owner] + 1.0, width[owner], shape)
    out.ravel()[flat] = (contrast[owner] * depth)[segment]
    return out, field


def surface(classes: np.ndarray, roles: dict[str, int], rng: np.random.Generator) -> tuple[Surface, dict[str, Any]]:
    """Polishing relief (height by phase hardness) and scratches of one field."""
    lut = np.zeros(max(roles.values()) + 1, np.float32)
    for role, index in roles.items():
        lut[index] = HARDNESS[role]
    scratches, field = _scratches(classes.shape, rng)
    return Surface(lut[classes], scratches), field
