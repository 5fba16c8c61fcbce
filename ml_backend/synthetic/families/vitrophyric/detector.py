"""The imaging model of this family: a scanned, charging, non-linear, often 8-bit BSE detector.

In order: Gaussian probe blur (beam size in µm, so wide at 0.1 µm/px); charging (charge
builds up while the beam scans epoxy and leaks away after it, so bright streaks trail from
epoxy and vesicle edges along the scan direction, in bursts of rows); slow beam drift
(each row shifted by a sub-pixel sinusoid plus a linear creep); shot noise at the drawn
dose; horizontal scan-line noise (correlated row offsets); brightness/contrast (black and
white levels, sometimes clipping epoxy and oxide); a non-linear monotone response (gamma
0.5-2 or a random piecewise-linear curve); then 16-bit or 8-bit output, some 8-bit fields
JPEG-compressed (quality 60-95).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter, gaussian_filter1d
from scipy.signal import lfilter

from ml_backend.synthetic.groundmass import log_uniform

_MONOTONE_KNOTS = 6


def detector_params(
    rng: np.random.Generator, pixel_size_um: float, levels: tuple[float, float, float, float, float]
) -> dict[str, Any]:
    """Draw one acquisition.

    A gamma response is chosen so that the glass lands at a drawn mid-grey (as an operator
    would set it), clipped to gamma 0.5-2; a random monotone response puts it anywhere.

    Args:
        rng: The detector's random stream.
        pixel_size_um: Pixel size (the probe is sized in µm).
        levels: Field eta of (epoxy, darkest silicate, glass, brightest silicate, oxide), for
            the black and white levels and the glass grey.
    """
    epoxy, dark, glass, bright, oxide = levels
    charging = bool(rng.random() < 0.5)
    drifting = bool(rng.random() < 0.7)
    banding = bool(rng.random() < 0.7)
    eight_bit = bool(rng.random() < 0.7)
    gamma = bool(rng.random() < 0.5)
    knots = np.concatenate(([0.0], np.cumsum(rng.dirichlet(np.full(_MONOTONE_KNOTS, 2.0)))))
    beam_um = float(rng.uniform(0.05, 0.3))
    black = float(0.3 * epoxy + (0.5 * (epoxy + dark) - 0.3 * epoxy) * rng.uniform() ** 2)
    white = float(1.3 * oxide + (0.5 * (bright + oxide) - 1.3 * oxide) * rng.uniform() ** 2)
    glass_grey = float(rng.uniform(0.3, 0.7))
    exponent = np.log(glass_grey) / np.log(np.clip((glass - black) / (white - black), 1e-3, 0.999))
    return {
        "beam_um": beam_um,
        "blur_sigma_px": float(np.hypot(beam_um / pixel_size_um, 0.35)),
        "charging_amplitude": float(rng.uniform(0.01, 0.08)) if charging else 0.0,
        "charging_decay_px": float(log_uniform(rng, (3.0, 60.0))),
        "charging_row_duty": float(rng.uniform(0.1, 1.0)),
        "charging_row_correlation": float(rng.uniform(1.0, 8.0)),
        "drift_amplitude_px": float(rng.uniform(0.0, 0.8)) if drifting else 0.0,
        "drift_period_rows": float(log_uniform(rng, (8.0, 400.0))),
        "drift_phase": float(rng.uniform(0, 2 * np.pi)),
        "drift_creep_px": float(rng.uniform(-0.5, 0.5)) if drifting else 0.0,
        "dose_electrons": float(log_uniform(rng, (300.0, 30000.0))),
        "scanline_sigma": float(log_uniform(rng, (0.0003, 0.004))) if banding else 0.0,
        "scanline_correlation": float(rng.uniform(0.0, 0.9)),
        "black_level": black,
        "white_level": white,
        "response": "gamma" if gamma else "monotone",
        "glass_grey_target": glass_grey if gamma else None,
        "gamma": float(np.clip(exponent, 0.5, 2.0)) if gamma else None,
        "response_knots": knots.tolist() if not gamma else [],
        "bit_depth": 8 if eight_bit else 16,
        "jpeg_quality": int(rng.integers(60, 96)) if eight_bit and rng.random() < 0.5 else None,
        "full_scale_16": float(rng.uniform(0.3, 1.0) * 65535),
    }


def _charging(insulating: np.ndarray, params: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Charge along each row: builds over epoxy, decays after it; bursts of charging rows."""
    keep = np.exp(-1.0 / params["charging_decay_px"])
    charge = lfilter([1.0 - keep], [1.0, -keep], insulating.astype(np.float32), axis=1)
    rows = (rng.random(insulating.shape[0]) < params["charging_row_duty"]).astype(np.float32)
    rows = gaussian_filter1d(rows * rng.lognormal(0.0, 0.5, rows.shape), params["charging_row_correlation"])
    return (charge * (params["charging_amplitude"] * rows / max(float(rows.max()), 1e-6))[:, None]).astype(np.float32)


def _drift(signal: np.ndarray, params: dict[str, Any]) -> np.ndarray:
    """Shift every row by its sub-pixel drift (linear interpolation along the row, edges held).

    Rows are grouped by the integer part of their shift (a handful of values), so each group
    is two slices of an edge-padded copy instead of a full-size gather (0.16 s at 1024 px).
    """
    h, w = signal.shape
    r = np.arange(h)
    shift = params["drift_amplitude_px"] * np.sin(2 * np.pi * r / params["drift_period_rows"] + params["drift_phase"])
    shift = shift + params["drift_creep_px"] * (r / max(h - 1, 1) - 0.5)
    step = np.floor(-shift).astype(int)
    frac = (-shift - step).astype(np.float32)[:, None]
    pad = int(np.abs(step).max()) + 1
    padded = np.pad(signal, ((0, 0), (pad, pad)), mode="edge")
    out = np.empty_like(signal)
    for k in np.unique(step):
        rows = step == k
        left = padded[rows, pad + k : pad + k + w]
        right = padded[rows, pad + k + 1 : pad + k + 1 + w]
        out[rows] = left + (right - left) * frac[rows]
    return out


def render(eta: np.ndarray, insulating: np.ndarray, params: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """Turn a noise-free eta map into the detector's image (uint8 or uint16).

    Args:
        eta: (H, W) float32 backscatter coefficient.
        insulating: (H, W) bool, where the surface charges (epoxy).
        params: From :func:`detector_params`.
        rng: The noise stream.
    """
    signal = gaussian_filter(eta.astype(np.float32), params["blur_sigma_px"], truncate=3.0)
    if params["charging_amplitude"]:
        signal += _charging(insulating, params, rng)
    if params["drift_amplitude_px"] or params["drift_creep_px"]:
        signal = _drift(signal, params)
    np.maximum(signal, 0.0, out=signal)
    signal += np.sqrt(signal / np.float32(params["dose_electrons"])) * rng.standard_normal(
        signal.shape, dtype=np.float32
    )
    if params["scanline_sigma"]:
        rho = params["scanline_correlation"]
        offsets = lfilter(
            [np.sqrt(1 - rho * rho)], [1.0, -rho], rng.standard_normal(signal.shape[0]) * params["scanline_sigma"]
        )
        signal += offsets.astype(np.float32)[:, None]
    black, white = params["black_level"], params["white_level"]
    t = np.clip((signal - np.float32(black)) / np.float32(white - black), 0.0, 1.0)
    if params["response"] == "gamma":
        t = t ** np.float32(params["gamma"])
    else:
        knots = np.asarray(params["response_knots"])
        t = np.interp(t, np.linspace(0.0, 1.0, len(knots)), knots).astype(np.float32)
    if params["bit_depth"] == 16:
        return np.rint(t * np.float32(params["full_scale_16"])).astype(np.uint16)
    image = np.rint(t * np.float32(255.0)).astype(np.uint8)
    if params["jpeg_quality"] is not None:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=params["jpeg_quality"])
        image = np.array(Image.open(io.BytesIO(buffer.getvalue())))
    return image
