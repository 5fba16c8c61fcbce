"""Backscatter coefficients of one field: per-field phase shifts and zoning inside the crystals.

Each phase's catalogue eta is shifted by a few % per field (Epoxy stays darkest and Fe-Ti
oxide brightest). Inside crystals: normal zoning of plagioclase (An falls towards the rim,
which darkens) and olivine (Fo falls, which brightens), as a power of the normalised distance
from the grain's centre; hourglass sector zoning of clinopyroxene (the prism sectors a few %
brighter or darker than the others); iddingsite-like altered rims on olivine (darker or
brighter, still olivine); ilmenite needles darker than titanomagnetite.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from label_config.catalogue import Catalogue
from ml_backend.synthetic.config import SynthConfig
from ml_backend.synthetic.families.intergranular.fabric import CPX, OLIVINE, OXIDE, PLAG, ROLES, Fabric, ball_area
from ml_backend.synthetic.families.intergranular.tessellation import Tessellation
from ml_backend.synthetic.scene import Crystal, _eta_table

PHASES = ("Epoxy", "Groundmass", *ROLES)
_SHIFT = 0.03  # largest per-field relative shift of a phase's eta
_ORDER_MARGIN = 0.05  # Epoxy at least this much darker, oxide this much brighter, than any other phase


@dataclass(frozen=True)
class FieldEtas:
    """Backscatter coefficients of the phases of one field."""

    catalogue: Catalogue
    roles: dict[str, int]
    factors: dict[str, float]

    def of(self, role: str) -> float:
        """Shifted eta of a phase (its catalogue mean composition)."""
        return self.catalogue.classes[self.roles[role]].eta * self.factors[role]

    def at(self, role: str, composition: np.ndarray) -> np.ndarray:
        """Shifted eta of a solid solution at ``composition`` (falls back to :meth:`of`)."""
        solution = self.catalogue.classes[self.roles[role]].solid_solution
        if solution is None:
            return np.full(np.shape(composition), self.of(role), np.float32)
        grid, table = _eta_table(solution)
        return (np.interp(composition, grid, table) * self.factors[role]).astype(np.float32)

    def range_of(self, role: str) -> tuple[float, float]:
        """Darkest and brightest shifted eta a phase can take."""
        solution = self.catalogue.classes[self.roles[role]].solid_solution
        values = self.at(role, np.array(solution.range)) if solution is not None else np.array([self.of(role)])
        return float(values.min()), float(values.max())


def draw_etas(catalogue: Catalogue, roles: dict[str, int], rng: np.random.Generator) -> FieldEtas:
    """Shift each phase's eta by up to +-3 %, then keep Epoxy darkest and oxide brightest."""
    factors = {role: float(1.0 + rng.uniform(-_SHIFT, _SHIFT)) for role in PHASES}
    etas = FieldEtas(catalogue, roles, factors)
    middle = [etas.range_of(role) for role in PHASES[1:-1]]
    darkest, brightest = min(lo for lo, _ in middle), max(hi for _, hi in middle)
    factors["Epoxy"] *= min(1.0, darkest * (1.0 - _ORDER_MARGIN) / etas.of("Epoxy"))
    factors["Fe-Ti oxide"] *= max(1.0, brightest * (1.0 + 2 * _ORDER_MARGIN) / etas.of("Fe-Ti oxide"))
    return FieldEtas(catalogue, roles, factors)


def _population(diameter_um: np.ndarray) -> np.ndarray:
    return np.select(
        [diameter_um >= SynthConfig.phenocryst_min_um, diameter_um >= SynthConfig.microphenocryst_min_um],
        ["phenocryst", "microphenocryst"],
        "microlite",
    )


def _draw_grains(
    rng: np.random.Generator, fabric: Fabric, etas: FieldEtas
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Per-grain zoning draws (arrays over all grains; each role reads its own)."""
    n = len(fabric.grains)
    plag = etas.catalogue.classes[etas.roles["Plagioclase"]].solid_solution
    olivine = etas.catalogue.classes[etas.roles["Olivine"]].solid_solution
    field = {
        "olivine_altered_share": float(rng.uniform(0.0, 0.7)),
        "iddingsite_factor": float(rng.uniform(0.78, 0.92) if rng.random() < 0.6 else rng.uniform(1.05, 1.12)),
        "clinopyroxene_sector_share": float(rng.uniform(0.2, 0.8)),
    }
    sectored = rng.random(n) < field["clinopyroxene_sector_share"]
    an_core = rng.uniform(55.0, 85.0, n)
    fo_core = rng.uniform(70.0, 88.0, n)
    grains = {
        "plag_zoned": rng.random(n) < 0.85,
        "an_core": an_core,
        "an_rim": np.clip(an_core - rng.uniform(5.0, 30.0, n), *plag.range) if plag else an_core,
        "olivine_zoned": rng.random(n) < 0.7,
        "fo_core": fo_core,
        "fo_rim": np.clip(fo_core - rng.uniform(3.0, 15.0, n), *olivine.range) if olivine else fo_core,
        "steepness": rng.uniform(1.5, 5.0, n),
        "altered": rng.random(n) < field["olivine_altered_share"],
        "alteration_um": rng.uniform(3.0, 25.0, n),
        "sector": sectored * rng.choice((-1.0, 1.0), n) * rng.uniform(0.01, 0.035, n),
        "jitter": 1.0 + np.clip(rng.normal(0.0, 0.01, n), -0.02, 0.02),
        "ilmenite": rng.uniform(0.9, 0.95, n),
    }
    grains["an_rim"] = np.where(grains["plag_zoned"], grains["an_rim"], an_core)
    grains["fo_rim"] = np.where(grains["olivine_zoned"], grains["fo_rim"], fo_core)
    return grains, field


def crystal_etas(
    tessellation: Tessellation, fabric: Fabric, etas: FieldEtas, pixel_size_um: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, list[Crystal], dict[str, Any]]:
    """Eta of every crystal pixel and the ground truth of every grain.

    Returns:
        (flat indices of crystal pixels, their float32 eta, one :class:`Crystal` per grain with
        id = grain index + 1, drawn parameters).
    """
    draws, field = _draw_grains(rng, fabric, etas)
    flat = np.flatnonzero(tessellation.labels)
    grain = tessellation.labels.ravel()[flat] - 1
    norm = tessellation.norm.ravel()[flat]
    role = fabric.roles[grain]
    eta = np.empty(len(flat), np.float32)
    profile = norm ** draws["steepness"][grain]
    for code, variable in ((PLAG, "an"), (OLIVINE, "fo")):
        m = role == code
        core, rim = draws[f"{variable}_core"][grain[m]], draws[f"{variable}_rim"][grain[m]]
        eta[m] = etas.at(ROLES[code], core + (rim - core) * profile[m])
    m = role == OLIVINE
    g = grain[m]
    depth_um = (1.0 - norm[m]) * np.sqrt(fabric.grains.half_length[g] * fabric.grains.half_width[g]) * pixel_size_um
    eta[m] *= np.where(draws["altered"][g] & (depth_um < draws["alteration_um"][g]), field["iddingsite_factor"], 1.0)
    m = role == CPX
    g = grain[m]
    u, v = tessellation.along.ravel()[flat[m]], tessellation.across.ravel()[flat[m]]
    prism_sector = np.abs(v) * fabric.grains.half_length[g] > np.abs(u) * fabric.grains.half_width[g]
    eta[m] = (
        etas.of("Clinopyroxene") * draws["jitter"][g] * (1.0 + np.where(prism_sector, 1.0, -1.0) * draws["sector"][g])
    )
    m = role == OXIDE
    g = grain[m]
    needle = np.array(fabric.varieties, dtype=str)[g] == "needle"
    eta[m] = etas.of("Fe-Ti oxide") * np.where(needle, draws["ilmenite"][g], draws["jitter"][g])
    field["sector_zoned_clinopyroxenes"] = int(np.count_nonzero(draws["sector"][fabric.roles == CPX]))
    return flat, eta, _crystals(fabric, etas, draws, tessellation, pixel_size_um), field


def _crystals(
    fabric: Fabric, etas: FieldEtas, draws: dict[str, np.ndarray], tessellation: Tessellation, px: float
) -> list[Crystal]:
    """One :class:`Crystal` per grain; core = composition at the innermost point left of it."""
    n = len(fabric.grains)
    nearest = np.full(n + 1, np.inf)
    np.minimum.at(nearest, tessellation.labels.ravel(), tessellation.norm.ravel())
    nearest = np.minimum(nearest[1:], 1.0)  # a truncated grain may miss its centre
    zoning, variable = np.full(n, "unzoned", dtype=object), np.full(n, "", dtype=object)
    core, rim = np.full(n, np.nan), np.full(n, np.nan)
    for code, key, zoned in ((PLAG, "an", "plag_zoned"), (OLIVINE, "fo", "olivine_zoned")):
        m = fabric.roles == code
        solution = etas.catalogue.classes[etas.roles[ROLES[code]]].solid_solution
        c, r = draws[f"{key}_core"][m], draws[f"{key}_rim"][m]
        core[m], rim[m] = c + (r - c) * nearest[m] ** draws["steepness"][m], r
        zoning[m] = np.where(draws[zoned][m], "normal", "unzoned")
        variable[m] = solution.variable if solution is not None else ""
    diameter = np.sqrt(4.0 * ball_area(fabric.grains) / np.pi) * px
    role = np.array(ROLES, dtype=object)[fabric.roles]
    index = np.array([etas.roles[r] for r in ROLES])[fabric.roles]
    columns = (index, role, zoning, variable, core, rim, diameter, _population(diameter), fabric.hosts)
    return [Crystal(k + 1, *values) for k, values in enumerate(zip(*(c.tolist() for c in columns)))]
