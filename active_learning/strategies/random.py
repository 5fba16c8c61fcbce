"""Random scoring: the baseline every strategy must beat, reproducible per image and seed."""

from __future__ import annotations

import hashlib

import numpy as np

from active_learning.strategies.base import Scorer
from ml_backend.segmenters.base import Segmenter


class RandomScorer(Scorer):
    """A uniform number in [0, 1) drawn from the seed and the image's pixels.

    The value depends on the image content and the seed only, not on the order tasks are
    scored in, so a rerun (or another worker process) gives every task the same score.

    Args:
        seed: Non-negative integer; another seed gives another random order.
    """

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"random scorer seed must be a non-negative integer, got {seed!r}")
        self.seed = int(seed)

    def score(self, image: np.ndarray, segmenter: Segmenter, probs: np.ndarray | None = None) -> float:
        """Uniform in [0, 1): the top 53 bits of BLAKE2b(seed, shape, dtype, pixels)."""
        digest = hashlib.blake2b(digest_size=8)
        digest.update(self.seed.to_bytes(8, "little"))
        digest.update(f"{image.shape}{image.dtype.str}".encode())
        digest.update(np.ascontiguousarray(image).tobytes())
        return (int.from_bytes(digest.digest(), "little") >> 11) / float(2**53)
