"""Where training sections come from: generator families by weight, fresh seeds or a cached pool.

``porphyritic`` sections are drawn with the training config's domain-randomised
``SynthConfig`` (``TrainConfig.synth``); the other families with their own ranges. Seeds
are drawn below 2**31, never from the benchmark range
(:data:`ml_backend.synthetic.families.TEST_SEED_START`).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, cast

import numpy as np

from active_learning.fingerprints import fingerprint
from active_learning.training.config import TrainConfig
from label_config.catalogue import Catalogue
from ml_backend.synthetic import generate_section
from ml_backend.synthetic.families import generate_field

SEED_LIMIT = 2**31


class SectionSource:
    """Draws ``(raw image, uint8 classes)`` training sections for a config.

    Args:
        config: ``families`` (name -> weight), ``section_size``, ``synth`` overrides,
            ``section_pool`` (0: a fresh seed every draw; N: one of the first N seeds of the
            family) and ``pool_dir`` (cache folder for pooled sections; None: no cache).
        catalogue: Classes to draw.
    """

    def __init__(self, config: TrainConfig, catalogue: Catalogue) -> None:
        self.config = config
        self.catalogue = catalogue
        self.synth = config.synth_config()
        self.names = sorted(config.families)
        weights = np.array([config.families[name] for name in self.names], np.float64)
        self.p = weights / weights.sum()
        self.cache = Path(config.pool_dir) if config.pool_dir and config.section_pool else None
        # the porphyritic sections depend on the synth overrides too: they name their cache folder
        self.folders = {name: name for name in self.names}
        self.folders["porphyritic"] = f"porphyritic-{fingerprint(self.synth.to_dict())}"

    def draw(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One section of a family chosen by weight (the choice and seed come from ``rng``)."""
        family = self.names[int(rng.choice(len(self.names), p=self.p))]
        seed = int(rng.integers(self.config.section_pool or SEED_LIMIT))
        return self.section(family, seed)

    def section(self, family: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Section ``seed`` of ``family`` at the config's size, from the cache when it is there."""
        path = (
            self.cache / self.folders[family] / f"{self.config.section_size}-{seed}.npz"
            if self.cache is not None
            else None
        )
        if path is not None and path.is_file():
            with np.load(path, allow_pickle=False) as saved:
                return saved["image"], saved["classes"]
        size = self.config.section_size
        if family == "porphyritic":
            drawn = generate_section(size, seed, self.synth, self.catalogue)
        else:
            drawn = generate_field(family, size, seed, self.catalogue)
        if path is not None:
            _save_atomically(path, image=drawn.image, classes=drawn.classes)
        return drawn.image, drawn.classes


def _save_atomically(path: Path, **arrays: np.ndarray) -> None:
    """Write an ``.npz`` under a temporary name and rename it (parallel loaders never read half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
    with os.fdopen(handle, "wb") as stream:
        # numpy's stub also lists ``allow_pickle: bool`` as a keyword, which mypy matches ``**arrays`` against.
        np.savez(stream, **cast("dict[str, Any]", arrays))
    os.replace(tmp, path)
