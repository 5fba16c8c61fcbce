"""Groundmass texture: glass with plagioclase microlites and pyroxene / oxide specks.

The microlites are far below crystal scale (a few µm wide), so the groundmass has a
fine speckled, lath-bearing texture, while its mean backscatter coefficient equals the
catalogue's bulk groundmass value: the glass takes whatever eta the microlites leave
(residual glass is Fe-richer, hence brighter, than the bulk).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import overload

import numpy as np

from ml_backend.synthetic.config import SynthConfig
from ml_backend.synthetic.strokes import lath_pixels

GLASS, PLAGIOCLASE, PYROXENE, OXIDE = 0, 1, 2, 3


@dataclass(frozen=True)
class GroundmassEtas:
    """Backscatter coefficients used to paint the groundmass."""

    bulk: float
    plagioclase: float
    pyroxene: float
    oxide: float
    floor: float  # never darker than this (epoxy)


@overload
def log_uniform(rng: np.random.Generator, bounds: tuple[float, float], size: None = None) -> float: ...
@overload
def log_uniform(rng: np.random.Generator, bounds: tuple[float, float], size: int) -> np.ndarray: ...
def log_uniform(rng: np.random.Generator, bounds: tuple[float, float], size: int | None = None) -> np.ndarray | float:
    """Sizes drawn uniformly in log space between the bounds."""
    lo, hi = np.log(bounds[0]), np.log(bounds[1])
    return np.exp(rng.uniform(lo, hi, size))


def _laths(
    rng: np.random.Generator,
    area_px: float,
    fraction: float,
    length_px: tuple[float, float],
    aspect: tuple[float, float],
    shape: tuple[int, int],
    flow: float,
    kappa: float,
) -> np.ndarray:
    """Flat indices of laths filling about ``fraction`` of the canvas."""
    if fraction <= 0 or length_px[1] <= 0:
        return np.zeros(0, np.int64)
    sample = log_uniform(rng, length_px, 256)
    asp = rng.uniform(*aspect, 256)
    mean_area = float(np.mean(sample * np.maximum(sample / asp, 1.0)))
    n = int(np.ceil(fraction * area_px / max(mean_area, 1.0)))
    lengths = log_uniform(rng, length_px, n)
    widths = np.maximum(lengths / rng.uniform(*aspect, n), 1.0)
    centres = rng.uniform((0.0, 0.0), shape, (n, 2))
    angles = rng.vonmises(flow, kappa, n) if kappa > 0 else rng.uniform(0, np.pi, n)
    flat, _ = lath_pixels(centres, angles, lengths, widths, shape)
    return flat


def paint_groundmass(
    shape: tuple[int, int], pixel_size_um: float, etas: GroundmassEtas, config: SynthConfig, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, float]]:
    """The groundmass eta over the whole canvas (crystals and vesicles are painted on top).

    Returns:
        (float32 eta map, realised parameters: phase fractions, glass eta, flow direction).
    """
    area = float(shape[0] * shape[1])
    codes = np.zeros(shape, np.uint8)
    flow = float(rng.uniform(0, np.pi))
    kappa = float(rng.uniform(*config.microlite_alignment))
    um = 1.0 / pixel_size_um
    micro = (config.microlite_length_um[0] * um, config.microlite_length_um[1] * um)
    speck = (config.speck_size_um[0] * um, config.speck_size_um[1] * um)
    plan = (
        (PLAGIOCLASE, rng.uniform(*config.microlite_fraction), micro, config.microlite_aspect, kappa),
        (PYROXENE, rng.uniform(*config.pyroxene_speck_fraction), speck, (1.0, 2.5), 0.0),
        (
            OXIDE,
            rng.uniform(*config.oxide_speck_fraction),
            (speck[0], speck[1] * 0.6 + speck[0] * 0.4),
            (1.0, 1.5),
            0.0,
        ),
    )
    for code, fraction, lengths, aspect, k in plan:
        codes.ravel()[_laths(rng, area, fraction, lengths, aspect, shape, flow, k)] = code
    share = np.bincount(codes.ravel(), minlength=4) / area
    crystal_etas = np.array([0.0, etas.plagioclase, etas.pyroxene, etas.oxide])
    crystal_share = share[1:].sum()
    glass = (etas.bulk - float(np.dot(share, crystal_etas))) / max(1.0 - crystal_share, 1e-6)
    glass = max(glass, etas.floor)
    lut = np.array([glass, etas.plagioclase, etas.pyroxene, etas.oxide], dtype=np.float32)
    realised = {
        "groundmass_plagioclase_share": float(share[PLAGIOCLASE]),
        "groundmass_pyroxene_share": float(share[PYROXENE]),
        "groundmass_oxide_share": float(share[OXIDE]),
        "glass_eta": float(glass),
        "microlite_flow_direction_rad": flow,
        "microlite_alignment_kappa": kappa,
    }
    return lut[codes], realised
