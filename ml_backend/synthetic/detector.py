"""The imaging model: backscatter coefficient -> 16-bit BSE detector counts.

signal = PSF * eta (Gaussian blur), then slow shading (multiplicative and additive smooth
fields), Poisson shot noise on ``dose * signal`` detected electrons, scaling to digital
numbers by the detector gain, plus offset and Gaussian read noise; rounded and clipped
to uint16. The detector is ideal and linear: grey level is an affine function of eta.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from ml_backend.synthetic.config import SynthConfig

_BLOCK_ROWS = 256  # rows per noise block: bounds the float64/int64 temporaries on large sections


def _smooth_field(shape: tuple[int, int], coeffs: np.ndarray) -> np.ndarray:
    """Quadratic surface on [-1, 1]^2 with max |value| = 1 (linear gradient + vignetting)."""
    y = np.linspace(-1.0, 1.0, shape[0], dtype=np.float32)
    x = np.linspace(-1.0, 1.0, shape[1], dtype=np.float32)
    by, bx, cyy, cxx, cxy = coeffs
    gy, gx = np.meshgrid(np.linspace(-1, 1, 33), np.linspace(-1, 1, 33), indexing="ij")
    peak = np.abs(by * gy + bx * gx + cyy * gy**2 + cxx * gx**2 + cxy * gx * gy).max()
    field = (by * y + cyy * y**2)[:, None] + (bx * x + cxx * x**2)[None, :]
    field += np.float32(cxy) * np.outer(y, x)
    return field / np.float32(max(peak, 1e-6))


def detector_params(config: SynthConfig, rng: np.random.Generator) -> dict[str, float | list[float]]:
    """Draw one acquisition: gain, offset, PSF, shading, dose and read noise."""
    c = config
    return {
        "gain_dn": float(rng.uniform(*c.gain_dn)),
        "offset_dn": float(rng.uniform(*c.offset_dn)),
        "blur_sigma_px": float(rng.uniform(*c.blur_sigma_px)) if c.blur else 0.0,
        "shading_multiplicative": float(rng.uniform(*c.shading_multiplicative)) if c.shading else 0.0,
        "shading_additive": float(rng.uniform(*c.shading_additive)) if c.shading else 0.0,
        "shading_coefficients": rng.normal(0.0, 1.0, 10).tolist(),
        "dose_electrons": float(rng.uniform(*c.dose_electrons)) if c.noise else 0.0,
        "read_noise_dn": float(rng.uniform(*c.read_noise_dn)) if c.noise else 0.0,
    }


def render(eta: np.ndarray, params: dict, rng: np.random.Generator) -> np.ndarray:
    """Turn a noise-free eta map into a uint16 BSE image with the given acquisition params."""
    signal = eta.astype(np.float32, copy=True)
    if params["blur_sigma_px"] > 0:
        signal = gaussian_filter(signal, params["blur_sigma_px"], mode="reflect", truncate=3.0)
    coeffs = np.asarray(params["shading_coefficients"])
    if params["shading_multiplicative"] > 0:
        signal *= 1.0 + np.float32(params["shading_multiplicative"]) * _smooth_field(eta.shape, coeffs[:5])
    if params["shading_additive"] > 0:
        signal += np.float32(params["shading_additive"] * float(eta.mean())) * _smooth_field(eta.shape, coeffs[5:])
    np.maximum(signal, 0.0, out=signal)
    gain, offset = params["gain_dn"], params["offset_dn"]
    out = np.empty(eta.shape, np.uint16)
    dose, read = params["dose_electrons"], params["read_noise_dn"]
    for start in range(0, eta.shape[0], _BLOCK_ROWS):
        block = signal[start : start + _BLOCK_ROWS]
        if dose > 0:
            dn = rng.poisson(block * np.float32(dose)).astype(np.float32) * np.float32(gain / dose)
        else:
            dn = block * np.float32(gain)
        dn += np.float32(offset)
        if read > 0:
            dn += rng.standard_normal(block.shape, dtype=np.float32) * np.float32(read)
        out[start : start + _BLOCK_ROWS] = np.clip(np.rint(dn), 0, 65535)
    return out
