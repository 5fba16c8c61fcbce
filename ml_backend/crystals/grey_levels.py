"""Grey levels of crystals: clean pixels, image noise, core and rim levels, core-to-rim profiles.

All statistics are grouped sums over the pixels of every crystal at once (``np.bincount``),
never a Python loop over crystals or pixels. Levels are in the units of the image they are
measured on (the normalised [0, 1] BSE image in the analysis).

Which pixels count ("clean" pixels): crystal pixels deeper than ``edge_px`` inside their
crystal and with no other phase (crack, inclusion, groundmass) within ``edge_px``: the
beam's spread and the image's blur mix phases at contacts. Depth is the distance to the
crystal's outline (``CrystalInstances.depth``); relative depth is depth over the crystal's
largest depth (1 at the core).

- rim: clean pixels with depth <= ``rim_depth_px``;
- core: clean pixels with relative depth >= ``core_fraction`` and deeper than the rim;
- profile: mean of the clean pixels in ``profile_bins`` shells of equal relative-depth
  steps, from the rim (shell 0) to the core (last shell); shells without clean pixels are NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from ml_backend.crystals.config import CrystalConfig
from ml_backend.crystals.instances import CrystalInstances

_NOISE_SAMPLE_PAIRS = 2_000_000


@dataclass
class GroupStats:
    """Count, mean and standard deviation of a pixel set per crystal (index = crystal id)."""

    n: np.ndarray
    mean: np.ndarray
    sd: np.ndarray

    @property
    def se(self) -> np.ndarray:
        """Standard error of each mean (NaN where fewer than 2 pixels)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.n >= 2, self.sd / np.sqrt(self.n), np.nan)


@dataclass
class GreyLevels:
    """Core, rim and profile statistics of every crystal, and the image's pixel noise.

    Attributes:
        core, rim: Statistics of the core and rim pixel sets, arrays of length n + 1.
        profile: Statistics per shell, arrays of shape (n + 1, profile_bins), rim first.
        noise_sigma: Robust per-pixel noise of the image inside crystals (same units).
    """

    core: GroupStats
    rim: GroupStats
    profile: GroupStats
    noise_sigma: float


def clean_pixels(mask: np.ndarray, instances: CrystalInstances, edge_px: int) -> np.ndarray:
    """Boolean map of the crystal pixels used for grey levels (see module docstring)."""
    labels = instances.labels
    own_class = np.where(labels > 0, instances.class_index[labels], -1)
    clean = (labels > 0) & (mask == own_class) & (instances.depth > edge_px)
    if edge_px > 0:
        size = 2 * edge_px + 1
        uniform = ndi.minimum_filter(mask, size=size) == ndi.maximum_filter(mask, size=size)
        clean &= uniform
    return clean


def pixel_noise(image: np.ndarray, clean: np.ndarray, labels: np.ndarray) -> float:
    """Robust per-pixel noise: MAD of differences of horizontal neighbours in the same crystal.

    Smooth zoning hardly changes from one pixel to the next, so the differences are noise;
    their spread is sqrt(2) times the pixel noise. Falls back to the whole image when
    fewer than 100 pairs of clean crystal pixels exist.
    """
    step = max(1, int(image.size // _NOISE_SAMPLE_PAIRS))
    rows = slice(None, None, step)
    left, right = image[rows, :-1], image[rows, 1:]
    pair = clean[rows, :-1] & clean[rows, 1:] & (labels[rows, :-1] == labels[rows, 1:])
    diff = (right[pair] - left[pair]).astype(np.float64) if np.count_nonzero(pair) >= 100 else (right - left).ravel()
    if diff.size == 0:
        return float("nan")
    return float(1.4826 * np.median(np.abs(diff - np.median(diff))) / np.sqrt(2.0))


def _grouped(keys: np.ndarray, values: np.ndarray, size: int) -> GroupStats:
    n = np.bincount(keys, minlength=size).astype(np.float64)
    total = np.bincount(keys, weights=values, minlength=size)
    squares = np.bincount(keys, weights=values * values, minlength=size)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(n > 0, total / n, np.nan)
        var = np.where(n > 0, squares / n - mean * mean, np.nan)
    return GroupStats(n.astype(np.int64), mean, np.sqrt(np.maximum(var, 0.0)))


def grey_levels(image: np.ndarray, mask: np.ndarray, instances: CrystalInstances, config: CrystalConfig) -> GreyLevels:
    """Core, rim and core-to-rim profile of every crystal, and the image's pixel noise.

    Args:
        image: (H, W) grey image (the normalised BSE image).
        mask: (H, W) uint8 phase mask the instances were made from.
        instances: The crystals.
        config: ``edge_px``, ``rim_depth_px``, ``core_fraction``, ``profile_bins``.
    """
    clean = clean_pixels(mask, instances, config.edge_px)
    noise = pixel_noise(image, clean, instances.labels)
    flat = np.flatnonzero(clean)
    ids = instances.labels.ravel()[flat].astype(np.int64)
    values = image.ravel()[flat].astype(np.float64)
    depth = instances.depth.ravel()[flat]
    relative = depth / np.maximum(instances.max_depth[ids], 1e-6)
    size = instances.count + 1
    rim = depth <= config.rim_depth_px
    core = (relative >= config.core_fraction) & ~rim
    bins = config.profile_bins
    shell = np.minimum((relative * bins).astype(np.int64), bins - 1)
    profile = _grouped(ids * bins + shell, values, size * bins)
    reshaped = GroupStats(*(a.reshape(size, bins) for a in (profile.n, profile.mean, profile.sd)))
    return GreyLevels(_grouped(ids[core], values[core], size), _grouped(ids[rim], values[rim], size), reshaped, noise)
