"""Low-frequency random fields as a sum of a few plane waves (carbon coat, nucleation density)."""

from __future__ import annotations

import numpy as np


class WaveField:
    """Sum of ``n_waves`` random plane waves of ``cycles`` per ``span`` px, scaled to about [-1, 1].

    Unlike a quadratic shading surface it can have several bumps and saddles across a field.
    """

    def __init__(self, rng: np.random.Generator, n_waves: int, cycles: tuple[float, float], span: float) -> None:
        direction = rng.uniform(0.0, 2.0 * np.pi, n_waves)
        freq = rng.uniform(*cycles, n_waves) * 2.0 * np.pi / span
        self.k_row, self.k_col = freq * np.sin(direction), freq * np.cos(direction)
        self.phase = rng.uniform(0.0, 2.0 * np.pi, n_waves)
        weight = rng.uniform(0.3, 1.0, n_waves)
        self.weight = weight / np.sqrt(0.5 * np.sum(weight**2)) / 2.0  # rms ~0.5: peaks near +-1

    def at(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Values at points."""
        phase = np.outer(rows, self.k_row) + np.outer(cols, self.k_col) + self.phase
        return np.cos(phase) @ self.weight

    def grid(self, shape: tuple[int, int]) -> np.ndarray:
        """(H, W) float32 values on the pixel grid (separable: two outer products per wave)."""
        rows, cols = np.arange(shape[0]), np.arange(shape[1])
        out = np.zeros(shape, np.float32)
        for kr, kc, ph, w in zip(self.k_row, self.k_col, self.phase, self.weight):
            r, c = rows * kr + ph, cols * kc
            out += np.outer((w * np.cos(r)).astype(np.float32), np.cos(c).astype(np.float32))
            out -= np.outer((w * np.sin(r)).astype(np.float32), np.sin(c).astype(np.float32))
        return out
