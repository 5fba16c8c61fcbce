"""Zoning class of each crystal from its core, rim and core-to-rim profile.

Thresholds (``CrystalConfig``), on the normalised BSE image:

- ``unresolved``: the crystal's inscribed radius is below ``min_zoning_depth_px`` (8 px), or
  its core or rim has fewer than 2 clean pixels: rim and core cannot be told apart.
- ``oscillatory``: the profile (rim to core) changes the sign of its step at least
  ``min_oscillations`` (2) times, counting only steps larger than ``oscillation_sigma`` (4)
  standard errors of the step and larger than the noise floor (below).
- ``unzoned``: |rim - core| < max(``zoning_sigma`` x SE, ``zoning_noise_floor`` x sigma),
  where SE = sqrt(sd_core^2 / n_core + sd_rim^2 / n_rim) is the standard error of the
  difference of the two means (4 SE: about 1 false "zoned" in 16 000 unzoned crystals
  from noise alone) and sigma the image's per-pixel noise (floor 0.25 sigma: shading,
  blur and polishing residues do not average out over many pixels).
- ``normal`` / ``reverse``: otherwise, by the sign of rim - core and the mineral's
  brightness trend. Normal zoning is a rim poorer in the high-temperature end-member
  (Fo in olivine, An in plagioclase), as a cooling melt grows it. The catalogue's solid
  solution says whether that rim is brighter (olivine: Fe-rich rims are brighter) or
  darker (plagioclase: Na-rich rims are darker). Minerals without a solid solution in the
  catalogue follow the Fe-Mg convention of mafic minerals: a brighter (Fe-richer) rim is
  normal; override with ``rim_brighter_is_normal``.
"""

from __future__ import annotations

import numpy as np

from label_config.catalogue import Catalogue, Mineral
from ml_backend.crystals.config import CrystalConfig
from ml_backend.crystals.grey_levels import GreyLevels

ZONING_LABELS = ("normal", "reverse", "oscillatory", "unzoned", "unresolved")
_ROUNDING = 1e-6  # differences below this (normalised units; 16-bit steps are 1.5e-5) are float rounding


def rim_brighter_is_normal(mineral: Mineral) -> bool:
    """Whether normal zoning makes this mineral's rim brighter in BSE.

    With a solid solution, normal zoning lowers the variable (Fo, An) towards the rim; the
    rim is brighter when the backscatter coefficient falls as the variable rises.
    """
    solution = mineral.solid_solution
    if solution is None:
        return True
    low, high = solution.range
    return solution.eta_at(high) < solution.eta_at(low)


def count_oscillations(profile: np.ndarray, se: np.ndarray, floor: np.ndarray, sigmas: float) -> np.ndarray:
    """Sign changes of the significant steps of each profile.

    Args:
        profile: (n, bins) shell means (NaN for empty shells, which are skipped).
        se: (n, bins) standard errors of the shell means.
        floor: (n,) smallest step that counts, per profile.
        sigmas: A step counts when larger than this many standard errors of the step.

    Returns:
        (n,) int number of sign changes between consecutive significant steps.
    """
    valid = np.isfinite(profile) & np.isfinite(se)
    # compact every row so that empty shells do not break a step into NaNs
    order = np.argsort(~valid, axis=1, kind="stable")
    values = np.take_along_axis(np.where(valid, profile, 0.0), order, axis=1)
    errors = np.take_along_axis(np.where(valid, se, 0.0), order, axis=1)
    count = valid.sum(axis=1)
    step = np.diff(values, axis=1)
    step_se = np.sqrt(errors[:, 1:] ** 2 + errors[:, :-1] ** 2)
    exists = np.arange(step.shape[1])[None, :] < (count[:, None] - 1)
    significant = exists & (np.abs(step) > sigmas * step_se) & (np.abs(step) > floor[:, None])
    signs = np.where(significant, np.sign(step), 0.0)
    changes = np.zeros(len(profile), np.int64)
    last: np.ndarray = np.zeros(len(profile))
    for k in range(signs.shape[1]):  # loop over the few shells, vectorised over crystals
        s = signs[:, k]
        changes += (s != 0) & (last != 0) & (s != last)
        last = np.where(s != 0, s, last)
    return changes


def classify_zoning(
    levels: GreyLevels,
    max_depth: np.ndarray,
    class_index: np.ndarray,
    catalogue: Catalogue,
    config: CrystalConfig,
    rim_brighter_normal: dict[int, bool] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Zoning label and significance of every crystal.

    Args:
        levels: Grey levels of the crystals (index = crystal id; entry 0 is ignored).
        max_depth: (n + 1,) inscribed radius of each crystal, px.
        class_index: (n + 1,) catalogue class of each crystal.
        catalogue: For the brightness trend of each mineral's solid solution.
        config: Thresholds (see module docstring).
        rim_brighter_normal: Overrides of the trend per class index.

    Returns:
        ``(labels, snr)``: (n + 1,) object array of ``ZONING_LABELS`` and (n + 1,) float
        (rim - core) / SE (entry 0: "unresolved", NaN).
    """
    trend = {i: rim_brighter_is_normal(m) for i, m in enumerate(catalogue.classes)}
    trend.update(rim_brighter_normal or {})
    brighter_normal = np.array([trend.get(int(c), True) for c in class_index])
    delta = levels.rim.mean - levels.core.mean
    se = np.sqrt(levels.core.se**2 + levels.rim.se**2)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = delta / se
    floor = (
        max(config.zoning_noise_floor * levels.noise_sigma, _ROUNDING) if np.isfinite(levels.noise_sigma) else _ROUNDING
    )
    threshold = np.maximum(config.zoning_sigma * se, floor)
    oscillations = count_oscillations(
        levels.profile.mean, levels.profile.se, np.full(len(delta), floor), config.oscillation_sigma
    )
    unresolved = (max_depth < config.min_zoning_depth_px) | ~np.isfinite(se)
    unresolved[0] = True
    labels = np.where(brighter_normal == (delta > 0), "normal", "reverse").astype(object)
    labels[np.abs(delta) < threshold] = "unzoned"
    labels[oscillations >= config.min_oscillations] = "oscillatory"
    labels[unresolved] = "unresolved"
    return labels, snr
