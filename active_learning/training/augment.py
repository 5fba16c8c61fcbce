"""Augmentations that do not depend on one generator: detector response, noise, blur, quantisation, scale.

The synthetic families each have their own detector; these transforms widen what a
network sees beyond all of them, so it cannot learn one instrument's grey-level ladder or
noise. They act on a whole section before its grey range is computed (as a new microscope
would change the whole image), in the order: scale jitter, response curve, low-frequency
shading, blur, noise, scan-line offsets, quantisation. Geometric ones change the labels
the same way (nearest neighbour); none reverses the brightness order of the phases.

Every transform is a pure function of the random generator passed in, so a batch stays a
pure function of ``(seed, step)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from label_config.catalogue import IGNORE_INDEX


@dataclass(frozen=True)
class IntensityAugment:
    """Probabilities and strengths of the section-level augmentations (0 switches one off).

    Attributes:
        scale: Probability of resampling the section by a log-uniform factor in ``scale_range``.
        scale_range: Smallest and largest zoom factor.
        curve: Probability of a random monotone grey-level curve (piecewise linear, 6 knots).
        gamma: Probability of a power law ``x ** g`` with ``g`` log-uniform in ``gamma_range``.
        gamma_range: Smallest and largest exponent.
        shading: Probability of a smooth multiplicative field of amplitude up to ``shading_amplitude``.
        shading_amplitude: Largest relative amplitude of that field.
        blur: Probability of a Gaussian blur with sigma up to ``blur_sigma`` px.
        blur_sigma: Largest blur sigma (px).
        noise: Probability of signal-dependent Gaussian noise up to ``noise_sigma`` (in [0, 1] grey units).
        noise_sigma: Largest noise standard deviation at full brightness.
        scan_lines: Probability of random row offsets (scan-line noise).
        quantise: Probability of quantising to between 16 and 256 grey levels.
    """

    scale: float = 0.3
    scale_range: tuple[float, float] = (0.6, 1.6)
    curve: float = 0.5
    gamma: float = 0.3
    gamma_range: tuple[float, float] = (0.5, 2.0)
    shading: float = 0.3
    shading_amplitude: float = 0.25
    blur: float = 0.3
    blur_sigma: float = 2.0
    noise: float = 0.5
    noise_sigma: float = 0.08
    scan_lines: float = 0.2
    quantise: float = 0.2

    def apply(self, rng: np.random.Generator, image: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Augment one section: ``image`` float32 in [0, 1], ``label`` uint8 of the same shape.

        Returns:
            (float32 image, uint8 labels); the shape changes only with scale jitter.
        """
        if rng.random() < self.scale:
            image, label = rescale(image, label, float(np.exp(rng.uniform(*np.log(self.scale_range)))))
        if rng.random() < self.curve:
            image = monotone_curve(rng, image)
        if rng.random() < self.gamma:
            image = image ** np.float32(np.exp(rng.uniform(*np.log(self.gamma_range))))
        if rng.random() < self.shading:
            image = image * smooth_field(rng, image.shape, float(rng.uniform(0, self.shading_amplitude)))
        if rng.random() < self.blur:
            image = ndimage.gaussian_filter(image, float(rng.uniform(0.3, self.blur_sigma)), truncate=3.0)
        if rng.random() < self.noise:
            sigma = float(rng.uniform(0.005, self.noise_sigma))
            floor = float(rng.uniform(0.0, 0.5))  # share of the noise that does not grow with the signal
            scale = sigma * np.sqrt(floor + (1 - floor) * np.clip(image, 0, None))
            image = image + rng.standard_normal(image.shape, dtype=np.float32) * scale.astype(np.float32)
        if rng.random() < self.scan_lines:
            image = image + rng.normal(0, rng.uniform(0.005, 0.04), (image.shape[0], 1)).astype(np.float32)
        if rng.random() < self.quantise:
            levels = int(rng.integers(16, 257))
            low, high = np.percentile(image, [0.1, 99.9])
            step = max(float(high - low), 1e-6) / (levels - 1)
            image = np.round((image - low) / step) * np.float32(step) + np.float32(low)
        return np.ascontiguousarray(image, dtype=np.float32), label


def rescale(image: np.ndarray, label: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """Zoom image (linear) and labels (nearest) by ``factor``: a different pixel size of the same scene."""
    image = ndimage.zoom(image, factor, order=1, mode="reflect", grid_mode=True)
    label = ndimage.zoom(label, factor, order=0, mode="nearest", grid_mode=True)
    return image.astype(np.float32), label.astype(np.uint8)


def monotone_curve(rng: np.random.Generator, image: np.ndarray, knots: int = 6) -> np.ndarray:
    """A random increasing map of grey levels: piecewise linear through ``knots`` random points.

    Increments are Dirichlet-distributed (concentration 2), so the curve stretches some grey
    ranges and compresses others, as a non-linear detector or a contrast setting would,
    without ever swapping the order of two grey levels.
    """
    x = np.linspace(0.0, 1.0, knots + 1)
    y = np.concatenate(([0.0], np.cumsum(rng.dirichlet(np.full(knots, 2.0)))))
    low, high = float(image.min()), float(image.max())
    span = max(high - low, 1e-6)
    return (np.interp((image - low) / span, x, y) * span + low).astype(np.float32)


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], amplitude: float) -> np.ndarray:
    """1 + ``amplitude`` times a random low-frequency field scaled to max |value| = 1."""
    coarse = rng.standard_normal((4, 4)).astype(np.float32)
    field = ndimage.zoom(coarse, (shape[0] / 4, shape[1] / 4), order=3, mode="nearest", grid_mode=True)
    field = field[: shape[0], : shape[1]]
    field /= max(float(np.abs(field).max()), 1e-6)
    return 1.0 + np.float32(amplitude) * field


def pad_to(image: np.ndarray, label: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Mirror-pad the image and pad the labels with ``IGNORE_INDEX`` up to ``size`` per side (no-op if large enough)."""
    ph, pw = max(size - image.shape[0], 0), max(size - image.shape[1], 0)
    if not (ph or pw):
        return image, label
    image = np.pad(image, ((0, ph), (0, pw)), mode="reflect")
    label = np.pad(label, ((0, ph), (0, pw)), constant_values=IGNORE_INDEX)
    return image, label
