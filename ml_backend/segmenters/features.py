"""Per-pixel features of the unsupervised segmenter: denoised grey level and region roughness.

Roughness is measured with the structure tensor ``J = G_rho * (grad x grad^T)``: its smaller
eigenvalue is large where the grey level varies in every direction (groundmass with
microlites, quench textures) and small both in a flat crystal interior and along a straight
phase boundary, where the grey level varies in one direction only. A local standard deviation,
by contrast, is as large on every boundary as in the roughest texture, which made a 3-6 px
band around every crystal look like groundmass. Its log is averaged over a region of
``sigma_region`` px so that a crystal interior scores as smooth even between noise spikes.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

TRUNCATE = 3.0  # Gaussian kernels reach int(3 * sigma + 0.5) px (scipy's 4 costs 25 % more)
_ROUGH_EPS = np.float32(1e-4)  # keeps log(roughness) finite on flat (e.g. saturated) pixels


def kernel_radius(sigma: float) -> int:
    """How far (px) a Gaussian filter of ``sigma`` reaches with :data:`TRUNCATE`, as scipy computes it."""
    return int(TRUNCATE * sigma + 0.5)


def roughness_reach(sigma_gradient: float, sigma_tensor: float, sigma_region: float) -> int:
    """Context (px) :func:`region_roughness` needs around a pixel: its three chained filters."""
    return kernel_radius(sigma_gradient) + kernel_radius(sigma_tensor) + kernel_radius(sigma_region)


def region_roughness(x: np.ndarray, sigma_gradient: float, sigma_tensor: float, sigma_region: float) -> np.ndarray:
    """(h, w) float32 log sqrt of the structure tensor's smaller eigenvalue, Gaussian-averaged over ``sigma_region``.

    Args:
        x: Normalised float32 image.
        sigma_gradient: Sigma of the Gaussian-derivative gradients.
        sigma_tensor: Sigma over which the gradient products are integrated.
        sigma_region: Sigma of the average of the log roughness.
    """
    gy = ndimage.gaussian_filter(x, sigma_gradient, order=(1, 0), truncate=TRUNCATE)
    gx = ndimage.gaussian_filter(x, sigma_gradient, order=(0, 1), truncate=TRUNCATE)
    jxx = ndimage.gaussian_filter(gx * gx, sigma_tensor, truncate=TRUNCATE)
    jyy = ndimage.gaussian_filter(gy * gy, sigma_tensor, truncate=TRUNCATE)
    jxy = ndimage.gaussian_filter(gx * gy, sigma_tensor, truncate=TRUNCATE)
    half_difference = 0.5 * (jxx - jyy)
    smaller = 0.5 * (jxx + jyy) - np.sqrt(half_difference * half_difference + jxy * jxy)
    rough = np.log(np.sqrt(np.maximum(smaller, 0.0)) + _ROUGH_EPS)
    return ndimage.gaussian_filter(rough, sigma_region, truncate=TRUNCATE)
