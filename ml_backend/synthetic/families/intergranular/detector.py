"""Imaging model of the intergranular family: eta -> saturating, noisy BSE grey levels.

1. PSF with heavy tails: a Gaussian core convolved in part with a 2-D Poisson kernel
   ``gamma / (2 pi (r^2 + gamma^2)^(3/2))`` (a Lorentzian-like r^-3 tail; its transfer function
   is ``exp(-2 pi gamma |f|)``), applied by FFT on a reflect-padded field.
2. Topographic contrast from polishing relief: hard phases brighter at their edges and softer
   neighbours darker (height minus its local mean, a few px wide), plus a directional term
   (one side of each step lit, as from an off-axis detector segment); scratches darken or
   brighten the signal along their path.
3. Carbon-coat thickness: a multiplicative field of a few random plane waves.
4. Shot noise: Poisson counts at the field's dose.
5. A saturating response curve drawn per field (logistic or logarithmic) between black and
   white levels that may clip the darkest and brightest phases, read noise, and 16-bit or
   8-bit quantisation (written as uint16 either way).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import fft
from scipy.ndimage import gaussian_filter, sobel

from ml_backend.synthetic.families.intergranular.preparation import Surface
from ml_backend.synthetic.families.intergranular.smooth import WaveField
from ml_backend.synthetic.groundmass import log_uniform

RESPONSES = ("logistic", "log")


def draw_detector(rng: np.random.Generator) -> dict[str, Any]:
    """Draw one acquisition (every parameter the rendering uses)."""
    response = str(rng.choice(RESPONSES))
    return {
        "psf_core_sigma_px": float(rng.uniform(0.4, 1.3)),
        "psf_tail_weight": float(rng.uniform(0.02, 0.2)),
        "psf_tail_gamma_px": float(log_uniform(rng, (1.5, 10.0))),
        "relief_edge_gain": float(rng.uniform(0.0, 0.25)),
        "relief_directional_gain": float(rng.uniform(0.0, 0.15)),
        "relief_sigma_px": float(rng.uniform(1.0, 3.0)),
        "relief_direction_rad": float(rng.uniform(0.0, 2.0 * np.pi)),
        "coat_amplitude": float(rng.uniform(0.02, 0.1)),
        "coat_waves": int(rng.integers(3, 7)),
        "coat_seed": int(rng.integers(0, 2**31)),
        "dose_electrons": float(log_uniform(rng, (500.0, 20000.0))),
        "response": response,
        "black_eta": float(rng.uniform(0.0, 0.07)),
        "white_eta": float(rng.uniform(0.19, 0.3)),
        "response_gain": float(rng.uniform(3.0, 7.0) if response == "logistic" else log_uniform(rng, (2.0, 50.0))),
        "response_centre": float(rng.uniform(0.35, 0.65)),
        "read_noise": float(rng.uniform(0.002, 0.012)),
        "bits": int(rng.choice((8, 16), p=(0.35, 0.65))),
    }


def _psf(eta: np.ndarray, sigma: float, weight: float, gamma: float) -> np.ndarray:
    pad = int(min(np.ceil(4.0 * gamma + 3.0 * sigma), min(eta.shape) - 1))
    padded = np.pad(eta, pad, mode="reflect")
    shape = tuple(fft.next_fast_len(n, real=True) for n in padded.shape)
    fy = fft.fftfreq(shape[0]).astype(np.float32)[:, None]
    fx = fft.rfftfreq(shape[1]).astype(np.float32)[None, :]
    f = np.sqrt(fy * fy + fx * fx)
    otf = np.exp(np.float32(-2.0 * np.pi**2 * sigma**2) * f * f) * (
        np.float32(1.0 - weight) + np.float32(weight) * np.exp(np.float32(-2.0 * np.pi * gamma) * f)
    )
    out = fft.irfft2(fft.rfft2(padded, shape) * otf, shape)
    return out[pad : pad + eta.shape[0], pad : pad + eta.shape[1]].astype(np.float32)


def _topography(surface: Surface, p: dict[str, Any]) -> np.ndarray:
    height = surface.height
    smooth = gaussian_filter(height, p["relief_sigma_px"], truncate=3.0)
    angle = p["relief_direction_rad"]
    # a Sobel response is 8x the slope; times sigma it is the height step across the smoothed edge
    scale = np.float32(p["relief_directional_gain"] * p["relief_sigma_px"] / 8.0)
    slope = np.cos(angle) * sobel(smooth, axis=1) + np.sin(angle) * sobel(smooth, axis=0)
    return np.float32(p["relief_edge_gain"]) * (height - smooth) + scale * slope


def _response(x: np.ndarray, p: dict[str, Any]) -> np.ndarray:
    """Saturating curve of [0, 1] onto [0, 1] (input clipped first)."""
    x = np.clip(x, 0.0, 1.0)
    g = p["response_gain"]
    if p["response"] == "log":
        return np.log1p(np.float32(g) * x) / np.float32(np.log1p(g))
    c = p["response_centre"]
    lo, hi = 1.0 / (1.0 + np.exp(g * c)), 1.0 / (1.0 + np.exp(-g * (1.0 - c)))
    return (1.0 / (1.0 + np.exp(np.float32(-g) * (x - np.float32(c)))) - np.float32(lo)) / np.float32(hi - lo)


def render(eta: np.ndarray, surface: Surface, p: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """A (H, W) uint16 BSE image of the noise-free ``eta`` map under acquisition ``p`` (``rng``: the noise)."""
    signal = _psf(eta, p["psf_core_sigma_px"], p["psf_tail_weight"], p["psf_tail_gamma_px"])
    signal *= 1.0 + _topography(surface, p) + surface.scratches
    coat_rng = np.random.default_rng(p["coat_seed"])
    coat = WaveField(coat_rng, p["coat_waves"], (0.2, 2.0), float(max(eta.shape))).grid(eta.shape)
    signal *= 1.0 - np.float32(p["coat_amplitude"]) * (0.5 + 0.5 * coat)
    np.maximum(signal, 0.0, out=signal)
    dose = p["dose_electrons"]
    counts = rng.poisson(signal * np.float32(dose)).astype(np.float32) / np.float32(dose)
    grey = _response((counts - np.float32(p["black_eta"])) / np.float32(p["white_eta"] - p["black_eta"]), p)
    grey += rng.standard_normal(eta.shape, dtype=np.float32) * np.float32(p["read_noise"])
    levels = 2 ** p["bits"] - 1
    return (np.rint(np.clip(grey, 0.0, 1.0) * levels) * (65535 // levels)).astype(np.uint16)
