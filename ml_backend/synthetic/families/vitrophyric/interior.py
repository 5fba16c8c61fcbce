"""Inside a crystal: concentric and oscillatory zoning, sector zoning and twin lamellae.

Zoning follows the depth below the crystal's outline as grown (so resorption and
embayments cut through the zones). Olivine and plagioclase zone in composition (Fo, An)
turned into eta through the catalogue's solid solution; clinopyroxene zones in relative
eta. Sector (hourglass) zoning in clinopyroxene and plagioclase twin domains are a few %
of eta: the twins stand for channelling contrast, which the noise-free eta carries so the
detector model stays a function of eta alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import erf

from label_config.catalogue import SolidSolution
from ml_backend.synthetic.families.vitrophyric.habits import Habit
from ml_backend.synthetic.scene import _eta_table

ZONINGS = ("normal", "reverse", "oscillatory", "unzoned")
#: role -> weights of (normal, reverse, oscillatory, unzoned).
_ZONING_WEIGHTS = {
    "Olivine": (0.5, 0.15, 0.05, 0.3),
    "Plagioclase": (0.3, 0.15, 0.25, 0.3),
    "Clinopyroxene": (0.3, 0.0, 0.15, 0.55),
}
_CORES = {"Olivine": (82.0, 91.0), "Plagioclase": (55.0, 85.0)}
#: Phases zoned in the composition of their solid solution.
COMPOSITION_ROLES = tuple(_CORES)
_DELTAS = {"Olivine": (3.0, 15.0), "Plagioclase": (5.0, 25.0)}
_OSCILLATION_AMPLITUDE = {"Olivine": (1.0, 3.0), "Plagioclase": (3.0, 10.0), "Clinopyroxene": (0.005, 0.015)}


@dataclass(frozen=True)
class Interior:
    """How the eta of one crystal varies inside it.

    Attributes:
        zoning: One of :data:`ZONINGS` (the concentric pattern; sector zoning is separate).
        core: Core composition (mol % of the solid-solution variable) or, without a solid
            solution, relative eta offset of the core.
        rim: Rim composition or relative eta offset, the same way.
        width_um: Depth scale of the rim-to-core profile.
        oscillation: (amplitude, wavelength µm, phase) of oscillatory zoning; amplitude 0 = none.
        twin_planes: Twin-domain boundaries across the width, in units of the half width.
        twin_contrast: Relative eta difference between twin domains.
        sector_contrast: Relative eta difference between prism and tip sectors.
    """

    zoning: str = "unzoned"
    core: float = 0.0
    rim: float = 0.0
    width_um: float = 1.0
    oscillation: tuple[float, float, float] = (0.0, 1.0, 0.0)
    twin_planes: tuple[float, ...] = ()
    twin_contrast: float = 0.0
    sector_contrast: float = 0.0

    @property
    def needs_depth(self) -> bool:
        """Whether the eta depends on the depth below the outline."""
        return self.zoning != "unzoned"


def draw_interior(rng: np.random.Generator, role: str, solution: SolidSolution | None) -> Interior:
    """Zoning, twinning and sector zoning of one crystal of ``role``.

    Args:
        rng: The crystals' random stream.
        role: Phase of the crystal.
        solution: Its solid solution when it zones in composition (a role of
            :data:`COMPOSITION_ROLES`), else None: it zones in relative eta.
    """
    if role not in _ZONING_WEIGHTS:
        return Interior()
    weights = np.array(_ZONING_WEIGHTS[role])
    zoning = ZONINGS[int(rng.choice(4, p=weights / weights.sum()))]
    sign = {"normal": -1.0, "reverse": 1.0}.get(zoning, 0.0)
    if solution is not None:
        core = float(rng.uniform(*_CORES[role]))
        delta = float(rng.uniform(*_DELTAS[role]))
        lo, hi = solution.range
    else:
        core, delta, lo, hi = 0.0, float(rng.uniform(0.005, 0.03)), -1.0, 1.0
        if role != "Plagioclase":
            sign = -sign  # relative eta: a normally zoned (Fe-richer) mafic rim is brighter
    rim = core + sign * delta
    oscillation = (0.0, 1.0, 0.0)
    if zoning == "oscillatory":
        amplitude = _OSCILLATION_AMPLITUDE[role if solution is not None else "Clinopyroxene"]
        oscillation = (float(rng.uniform(*amplitude)), float(rng.uniform(3.0, 30.0)), float(rng.uniform(0, 2 * np.pi)))
    planes: tuple[float, ...] = ()
    twin = 0.0
    if role == "Plagioclase" and rng.random() < 0.7:
        planes = tuple(np.sort(rng.uniform(-1.0, 1.0, 1 if rng.random() < 0.3 else int(rng.integers(2, 15)))).tolist())
        twin = float(rng.uniform(0.01, 0.04))
    sector = float(rng.uniform(0.01, 0.03)) if role == "Clinopyroxene" and rng.random() < 0.4 else 0.0
    return Interior(
        zoning, float(np.clip(core, lo, hi)), float(np.clip(rim, lo, hi)), float(rng.uniform(3.0, 40.0)),
        oscillation, planes, twin, sector,
    )  # fmt: skip


def solution_eta(solution: SolidSolution, values: np.ndarray | float) -> np.ndarray:
    """Eta at compositions ``values`` (interpolated in the cached table: ``eta_at`` parses formulas)."""
    grid, table = _eta_table(solution)
    return np.interp(values, grid, table)


def composition(interior: Interior, depth_um: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    """Composition (or relative eta offset) at the given depths below the outline."""
    values = interior.rim + (interior.core - interior.rim) * erf(np.maximum(depth_um, 0.0) / interior.width_um)
    amplitude, wavelength, phase = interior.oscillation
    if amplitude:
        values = values + amplitude * np.sin(2 * np.pi * depth_um / wavelength + phase) * (
            1.0 - np.exp(-depth_um / wavelength)
        )
    return np.clip(values, *bounds)


def interior_eta(
    interior: Interior,
    habit: Habit,
    offsets: np.ndarray,
    depth_um: np.ndarray | None,
    base_eta: float,
    solution: SolidSolution | None,
    scale: float,
) -> np.ndarray:
    """Eta at crystal pixels.

    Args:
        interior: The crystal's zoning and twinning.
        habit: Its shape (axis and extents for twins and sectors).
        offsets: (N, 2) pixel positions relative to the crystal's centre.
        depth_um: (N,) depth below the outline (None for unzoned crystals).
        base_eta: Eta of the phase in this field (used without a solid solution).
        solution: The phase's solid solution, if it has one.
        scale: The field's relative eta perturbation of the phase.
    """
    if solution is not None and interior.needs_depth:
        assert depth_um is not None  # the painter computes depths whenever the interior needs them
        eta = solution_eta(solution, composition(interior, depth_um, solution.range)) * scale
    elif solution is not None:
        eta = np.full(len(offsets), solution_eta(solution, interior.core) * scale)
    elif interior.needs_depth:
        assert depth_um is not None
        eta = base_eta * (1.0 + composition(interior, depth_um, (-1.0, 1.0)))
    else:
        eta = np.full(len(offsets), base_eta)
    along = offsets @ np.array((np.sin(habit.axis), np.cos(habit.axis))) / max(habit.half_length, 1e-6)
    across = offsets @ np.array((np.cos(habit.axis), -np.sin(habit.axis))) / max(habit.half_width, 1e-6)
    if interior.twin_contrast:
        parity = np.searchsorted(np.asarray(interior.twin_planes), across) % 2
        eta = eta * (1.0 + interior.twin_contrast * (parity - 0.5))
    if interior.sector_contrast:
        eta = eta * (1.0 + interior.sector_contrast * ((np.abs(along) > np.abs(across)) - 0.5))
    return eta.astype(np.float32)
