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

_BLOCK_ROWS = 256  # rows per block: bounds the temporaries on large sections
_POISSON_EXACT_BELOW = 50.0


class _SmoothField:
    """Quadratic surface on [-1, 1]^2 scaled to max |value| = 1 (linear gradient + vignetting).

    Evaluated one block of rows at a time, so no full-size temporary is needed.
    """

    def __init__(self, shape: tuple[int, int], coeffs: np.ndarray) -> None:
        self.by, self.bx, self.cyy, self.cxx, self.cxy = (float(v) for v in coeffs)
        gy, gx = np.meshgrid(np.linspace(-1, 1, 33), np.linspace(-1, 1, 33), indexing="ij")
        peak = np.abs(self.by * gy + self.bx * gx + self.cyy * gy**2 + self.cxx * gx**2 + self.cxy * gx * gy).max()
        self.scale = 1.0 / max(float(peak), 1e-6)
        self.y = np.linspace(-1.0, 1.0, shape[0])
        x = np.linspace(-1.0, 1.0, shape[1])
        self.col_part = ((self.bx * x + self.cxx * x**2) * self.scale).astype(np.float32)
        self.x_cross = (self.cxy * x * self.scale).astype(np.float32)

    def rows(self, start: int, stop: int) -> np.ndarray:
        y = self.y[start:stop]
        row_part = ((self.by * y + self.cyy * y**2) * self.scale).astype(np.float32)
        return row_part[:, None] + self.col_part[None, :] + y.astype(np.float32)[:, None] * self.x_cross[None, :]


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
    """Turn a noise-free eta map into a uint16 BSE image with the given acquisition params.

    Shot noise: exact Poisson draws when fewer than ``_POISSON_EXACT_BELOW`` electrons are
    expected in some pixel, else its Gaussian limit (mean = variance = expected count), merged
    with the read noise into one normal draw (measured on 4096 x 4096 px: 0.28 s against 1.04 s
    for exact Poisson draws plus read noise; at >= 50 expected electrons the Poisson law is
    close to normal, skewness 1/sqrt(50) = 0.14 and falling).
    """
    signal = eta.astype(np.float32, copy=True)
    if params["blur_sigma_px"] > 0:
        signal = gaussian_filter(signal, params["blur_sigma_px"], mode="reflect", truncate=3.0)
    coeffs = np.asarray(params["shading_coefficients"])
    mult, add = params["shading_multiplicative"], params["shading_additive"] * float(eta.mean())
    mult_field = _SmoothField(eta.shape, coeffs[:5]) if mult > 0 else None
    add_field = _SmoothField(eta.shape, coeffs[5:]) if add > 0 else None
    gain, offset = params["gain_dn"], params["offset_dn"]
    dose, read = params["dose_electrons"], params["read_noise_dn"]
    out = np.empty(eta.shape, np.uint16)
    for start in range(0, eta.shape[0], _BLOCK_ROWS):
        stop = min(start + _BLOCK_ROWS, eta.shape[0])
        block = signal[start:stop]
        if mult_field is not None:
            block *= 1.0 + np.float32(mult) * mult_field.rows(start, stop)
        if add_field is not None:
            block += np.float32(add) * add_field.rows(start, stop)
        np.maximum(block, 0.0, out=block)
        if dose > 0 and float(block.min()) * dose < _POISSON_EXACT_BELOW:
            dn = rng.poisson(block * np.float32(dose)).astype(np.float32) * np.float32(gain / dose)
            if read > 0:
                dn += rng.standard_normal(block.shape, dtype=np.float32) * np.float32(read)
        elif dose > 0 or read > 0:
            sigma = np.sqrt(block * np.float32(gain * gain / dose if dose > 0 else 0.0) + np.float32(read * read))
            dn = block * np.float32(gain) + rng.standard_normal(block.shape, dtype=np.float32) * sigma
        else:
            dn = block * np.float32(gain)
        dn += np.float32(offset)
        out[start:stop] = np.clip(np.rint(dn), 0, 65535)
    return out
