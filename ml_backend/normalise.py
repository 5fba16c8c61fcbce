"""Normalisation robust to detector gain/offset and slow shading."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

_SAMPLE_PIXELS = 4_000_000  # statistics on a strided sample above this size


@dataclass(frozen=True)
class IntensityRange:
    """Grey levels mapped to 0 and 1 (from percentiles of the whole image)."""

    low: float
    high: float

    def apply(self, pixels: np.ndarray) -> np.ndarray:
        """Scale ``pixels`` to float32 with ``low`` -> 0 and ``high`` -> 1, clipped to [0, 1]."""
        span = max(self.high - self.low, 1e-6)
        out = (np.asarray(pixels, dtype=np.float32) - np.float32(self.low)) / np.float32(span)
        return np.clip(out, 0.0, 1.0, out=out)


def _sample(pixels: np.ndarray) -> np.ndarray:
    step = max(1, int(np.sqrt(pixels.size / _SAMPLE_PIXELS)))
    return pixels[::step, ::step]


def percentile_range(pixels: np.ndarray, low: float = 0.5, high: float = 99.5) -> IntensityRange:
    """Robust grey-level range of an image: the ``low`` and ``high`` percentiles.

    Invariant to detector gain and offset: ``a * x + b`` gives the same normalised image.

    Raises:
        ValueError: if the image is not 2-D or the percentiles are not 0 <= low < high <= 100.
    """
    if pixels.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {pixels.shape}")
    if not 0 <= low < high <= 100:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {low}, {high}")
    lo, hi = np.percentile(_sample(pixels), [low, high])
    return IntensityRange(float(lo), float(hi))


def remove_background(pixels: np.ndarray, scale_px: float) -> np.ndarray:
    """Remove slow shading (vignetting, beam drift) larger than ``scale_px``.

    The background is a heavily smoothed median of a downsampled copy, so crystals
    smaller than ``scale_px`` do not leak into it; it is subtracted and the mean
    level restored.
    """
    if scale_px <= 0:
        raise ValueError(f"background scale must be positive, got {scale_px}")
    image = np.asarray(pixels, dtype=np.float32)
    factor = max(1, int(scale_px // 8))
    small = image[::factor, ::factor]
    small = ndimage.median_filter(small, size=5)
    small = ndimage.gaussian_filter(small, sigma=max(scale_px / factor / 2, 1.0), mode="reflect")
    zoom = (image.shape[0] / small.shape[0], image.shape[1] / small.shape[1])
    background = ndimage.zoom(small, zoom, order=1, mode="nearest")[: image.shape[0], : image.shape[1]]
    return image - background + np.float32(background.mean())


def normalise(
    pixels: np.ndarray, low: float = 0.5, high: float = 99.5, background_scale_px: float | None = None
) -> np.ndarray:
    """Normalise a BSE image to float32 in [0, 1].

    Args:
        pixels: 2-D grey image of any numeric dtype.
        low, high: Percentiles mapped to 0 and 1.
        background_scale_px: If given, remove shading larger than this many pixels first.
    """
    image = remove_background(pixels, background_scale_px) if background_scale_px else pixels
    return percentile_range(image, low, high).apply(image)
