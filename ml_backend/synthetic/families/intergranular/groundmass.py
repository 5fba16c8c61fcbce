"""Intergranular / intersertal groundmass: a dense mesh of small plagioclase laths with granular
clinopyroxene, oxide and (in hypocrystalline fields) glassy mesostasis in the spaces between.

The laths are splatted with :func:`~ml_backend.synthetic.strokes.lath_pixels`; the space between them is
cut into grains by a Voronoi partition of random seeds (nearest seed from a Euclidean distance
transform), each grain clinopyroxene, oxide or mesostasis with its own few-% eta jitter: a rough,
holocrystalline texture whose grain size varies per field from a few µm to almost
microphenocryst size. Grains smaller than a few pixels are partly averaged (partial volume).
The whole field is painted; crystals are painted over it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.ndimage import distance_transform_edt, gaussian_filter

from ml_backend.synthetic.families.intergranular.composition import FieldEtas
from ml_backend.synthetic.groundmass import log_uniform
from ml_backend.synthetic.strokes import lath_pixels

_PARTIAL_VOLUME_PX = 4.0  # grains at least this many px across keep their full contrast
_CHUNK_PIXELS = 250_000  # lath pixels per drawing call: bounds lath_pixels' temporaries (~60 B each)


def _draw_field(rng: np.random.Generator, etas: FieldEtas) -> dict[str, Any]:
    hypocrystalline = bool(rng.random() < 0.4)
    plag = etas.catalogue.classes[etas.roles["Plagioclase"]].solid_solution
    an = float(rng.uniform(40.0, 65.0))
    glass = etas.of("Groundmass") * (rng.uniform(1.0, 1.12) if rng.random() < 0.6 else rng.uniform(0.8, 0.95))
    return {
        "hypocrystalline": hypocrystalline,
        "grain_size_um": float(log_uniform(rng, (5.0, 28.0))),
        "lath_cover": float(rng.uniform(0.35, 0.6)),
        "lath_aspect": (3.0, float(rng.uniform(5.0, 12.0))),
        "lath_alignment_kappa": float(rng.uniform(0.0, 1.5)),
        "lath_flow_direction_rad": float(rng.uniform(0.0, np.pi)),
        "mesostasis_share": float(rng.uniform(0.2, 0.6) if hypocrystalline else rng.uniform(0.0, 0.05)),
        "oxide_share": float(rng.uniform(0.04, 0.15)),
        "grain_jitter": float(rng.uniform(0.01, 0.03)),
        "plagioclase_eta": float(etas.at("Plagioclase", np.array(an))) if plag else etas.of("Plagioclase"),
        "clinopyroxene_eta": etas.of("Clinopyroxene") * float(rng.uniform(1.0, 1.05)),
        "oxide_eta": etas.of("Fe-Ti oxide") * float(rng.uniform(0.92, 1.0)),
        "mesostasis_eta": float(glass),
    }


def _paint_laths(rng: np.random.Generator, eta: np.ndarray, field: dict[str, Any], grain_px: float) -> None:
    """Plagioclase laths (0.25-1 grain size long) covering about ``lath_cover`` of the field, in place."""
    lengths = log_uniform(rng, (0.25 * grain_px, grain_px), 4096)
    widths = np.maximum(lengths / log_uniform(rng, field["lath_aspect"], len(lengths)), 1.0)
    n = int(np.ceil(field["lath_cover"] * eta.size / float(np.mean(np.maximum(lengths, 1.0) * widths))))
    lengths, widths = np.resize(lengths, n), np.resize(widths, n)
    centres = rng.uniform((0.0, 0.0), eta.shape, (n, 2))
    angles = rng.vonmises(field["lath_flow_direction_rad"], field["lath_alignment_kappa"], n)
    per_call = max(int(_CHUNK_PIXELS / np.mean((lengths + 1.0) * (widths + 1.0))), 1)
    for start in range(0, n, per_call):
        sl = slice(start, start + per_call)
        flat, _ = lath_pixels(centres[sl], angles[sl], lengths[sl], widths[sl], eta.shape)
        eta.ravel()[flat] = field["plagioclase_eta"]


def paint_groundmass(
    shape: tuple[int, int], pixel_size_um: float, etas: FieldEtas, rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, Any]]:
    """The groundmass eta over the whole field.

    Returns:
        ((H, W) float32 eta, drawn and realised parameters).
    """
    field = _draw_field(rng, etas)
    grain_px = field["grain_size_um"] / pixel_size_um
    spacing = max(0.5 * grain_px, 1.0)
    n_seeds = max(int(shape[0] * shape[1] / spacing**2), 1)
    seeds = rng.integers(0, shape[0] * shape[1], n_seeds)
    free = np.ones(shape, bool)
    free.ravel()[seeds] = False
    nearest = distance_transform_edt(free, return_distances=False, return_indices=True)
    nearest[0] *= shape[1]
    nearest[0] += nearest[1]  # flat index of the nearest seed, in place (int32)
    seed_id = np.zeros(shape, np.int32)
    seed_id.ravel()[seeds] = np.arange(n_seeds, dtype=np.int32)  # a repeated seed keeps one of its ids
    cell = seed_id.ravel()[nearest[0]]
    del nearest
    shares = np.array(
        [1.0 - field["mesostasis_share"] - field["oxide_share"], field["oxide_share"], field["mesostasis_share"]]
    )
    phase = rng.choice(3, n_seeds, p=shares / shares.sum())
    base = np.array([field["clinopyroxene_eta"], field["oxide_eta"], field["mesostasis_eta"]])
    jitter = 1.0 + np.clip(rng.normal(0.0, field["grain_jitter"], n_seeds), -0.06, 0.06)
    eta = (base[phase] * jitter).astype(np.float32)[cell]
    _paint_laths(rng, eta, field, grain_px)
    contrast = min(0.5 * grain_px / _PARTIAL_VOLUME_PX, 1.0)
    if contrast < 1.0:
        local = gaussian_filter(eta, 1.0, truncate=2.5)
        eta = local + (eta - local) * np.float32(contrast)
    field["partial_volume_contrast"] = contrast
    field["mean_eta"] = float(eta.mean())
    return eta, field
