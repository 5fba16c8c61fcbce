"""Normalisation robust to detector gain/offset, to the detector's response curve and to slow shading."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

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


def equalise(pixels: np.ndarray) -> np.ndarray:
    """float32 image in (0, 1): each pixel's rank among the image's pixels (histogram equalisation).

    Invariant to any increasing map of the grey levels (gain, offset, gamma, a non-linear
    detector response), not only to gain and offset as :func:`percentile_range` is; ties
    share their mean rank.

    Raises:
        ValueError: if the image is not 2-D or is empty.
    """
    if pixels.ndim != 2 or pixels.size == 0:
        raise ValueError(f"expected a non-empty 2-D image, got shape {pixels.shape}")
    ranks = rankdata(pixels, method="average").reshape(pixels.shape)
    return ((ranks - 0.5) / pixels.size).astype(np.float32)


def remove_background(pixels: np.ndarray, degree: int = 2, blocks: int = 32) -> np.ndarray:
    """Remove slow shading (vignetting, beam drift, detector tilt) from an image.

    The shading is a polynomial surface of ``degree`` fitted by least squares to the
    medians of a ``blocks`` x ``blocks`` grid (medians ignore crystals smaller than a
    block; two rounds of 2.5-sigma clipping drop blocks dominated by one phase). It is
    subtracted and the mean level restored. A polynomial, unlike a large blur, stays
    right up to the image border.
    """
    if degree < 1:
        raise ValueError(f"background polynomial degree must be >= 1, got {degree}")
    image = np.asarray(pixels, dtype=np.float32)
    h, w = image.shape
    bh, bw = max(1, h // blocks), max(1, w // blocks)
    ny, nx = h // bh, w // bw
    medians = np.median(image[: ny * bh, : nx * bw].reshape(ny, bh, nx, bw), axis=(1, 3)).ravel()
    cy, cx = np.meshgrid((np.arange(ny) + 0.5) * bh / h, (np.arange(nx) + 0.5) * bw / w, indexing="ij")
    powers = [(i, j) for i in range(degree + 1) for j in range(degree + 1 - i)]

    def design(y: np.ndarray, x: np.ndarray) -> np.ndarray:
        return np.stack([y**i * x**j for i, j in powers], axis=-1)

    a, keep = design(cy.ravel(), cx.ravel()), np.ones(medians.size, bool)
    for _ in range(3):
        coef, *_ = np.linalg.lstsq(a[keep], medians[keep], rcond=None)
        residual = medians - a @ coef
        keep = np.abs(residual) <= 2.5 * max(residual[keep].std(), 1e-6)
    yy, xx = np.meshgrid((np.arange(h) + 0.5) / h, (np.arange(w) + 0.5) / w, indexing="ij", sparse=True)
    background = sum(c * yy**i * xx**j for c, (i, j) in zip(coef, powers))
    return image - background.astype(np.float32) + np.float32(np.mean(medians[keep]))


def normalise(
    pixels: np.ndarray, low: float = 0.5, high: float = 99.5, background_degree: int | None = None
) -> np.ndarray:
    """Normalise a BSE image to float32 in [0, 1].

    Args:
        pixels: 2-D grey image of any numeric dtype.
        low, high: Percentiles mapped to 0 and 1.
        background_degree: If given, first remove slow shading with a polynomial of this degree.
    """
    image = remove_background(pixels, background_degree) if background_degree else pixels
    return percentile_range(image, low, high).apply(image)
