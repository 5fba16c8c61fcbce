"""Training batches: synthetic thin sections of several generator families, optionally mixed with harvested labels.

Batch ``k`` is a pure function of ``(config.seed, k)``: its families, sections, crops,
augmentations and mix are drawn from ``numpy.random.default_rng([seed, k])``. So the data
stream needs no state to checkpoint, any number of loader workers gives the same batches,
and a resumed run sees exactly the batches it would have seen. With ``section_pool`` the
sections come from a finite pool of seeds per family, cached on disk (the same arrays the
generator would draw, so still a pure function of the step).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch

from active_learning.training.augment import IntensityAugment, pad_to
from active_learning.training.config import TrainConfig
from active_learning.training.sections import SectionSource
from label_config.catalogue import IGNORE_INDEX, Catalogue
from ml_backend.fcn.model_config import INPUT_SCALE, FCNConfig, network_input
from ml_backend.normalise import IntensityRange, percentile_range


@dataclass(frozen=True)
class HarvestedSample:
    """One labelled image from the annotation loop (implicit labels harvested from corrections).

    Attributes:
        image: Raw 2-D grey image (any numeric dtype).
        label: uint8 class indices of the same shape, ``IGNORE_INDEX`` (255) = no label.
        weight: float32 per-pixel confidence in [0, 1] (0 = ignore).
        intensity: Grey-level range of the whole image it was cut from (None: this image's
            own percentiles).
    """

    image: np.ndarray
    label: np.ndarray
    weight: np.ndarray
    intensity: IntensityRange | None = None

    def __post_init__(self) -> None:
        if self.image.ndim != 2 or self.label.shape != self.image.shape or self.weight.shape != self.image.shape:
            raise ValueError(
                f"harvested sample: image, label and weight must be 2-D of one shape, got "
                f"{self.image.shape}, {self.label.shape}, {self.weight.shape}"
            )
        if self.label.dtype != np.uint8:
            raise ValueError(f"harvested sample: label must be uint8 (255 = no label), got {self.label.dtype}")


@dataclass(frozen=True)
class Batch:
    """Inputs ``(B, 1, P, P)`` float32, labels ``(B, P, P)`` int64 (255 = ignore), weights ``(B, P, P)`` float32."""

    image: torch.Tensor
    label: torch.Tensor
    weight: torch.Tensor


def _crop(rng: np.random.Generator, shape: tuple[int, int], size: int) -> tuple[slice, slice]:
    y = int(rng.integers(0, shape[0] - size + 1))
    x = int(rng.integers(0, shape[1] - size + 1))
    return slice(y, y + size), slice(x, x + size)


def _pad(array: np.ndarray, size: int, value: float) -> np.ndarray:
    ph, pw = max(size - array.shape[0], 0), max(size - array.shape[1], 0)
    return np.pad(array, ((0, ph), (0, pw)), constant_values=value) if ph or pw else array


class TrainingBatches(torch.utils.data.Dataset):
    """Map-style dataset whose item ``k`` is the whole batch of step ``k`` (use ``batch_size=None``).

    Args:
        config: Training config.
        catalogue: Classes (the synthetic generator's catalogue).
        harvested: Harvested samples; ``config.harvest_ratio`` of each batch comes from them.
    """

    def __init__(
        self, config: TrainConfig, catalogue: Catalogue, harvested: Iterable[HarvestedSample] | None = None
    ) -> None:
        self.config = config
        self.catalogue = catalogue
        self.sections = SectionSource(config, catalogue)
        self.intensity_augment = IntensityAugment() if config.intensity_augment else None
        self.harvested = list(harvested or ())
        self.inputs = FCNConfig.for_architecture(config.arch, catalogue.names, percentiles=config.percentiles)

    def __len__(self) -> int:
        return self.config.steps

    def n_harvested(self) -> int:
        """Harvested samples per batch."""
        return round(self.config.harvest_ratio * self.config.batch_size) if self.harvested else 0

    def __getitem__(self, step: int) -> Batch:
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, int(step)])
        n_harvest = self.n_harvested()
        images: list[np.ndarray] = []
        labels: list[np.ndarray] = []
        weights: list[np.ndarray] = []
        n_synth = cfg.batch_size - n_harvest
        while len(images) < n_synth:
            image, classes = self.sections.draw(rng)
            if self.intensity_augment is not None:
                grey = self.inputs.intensity(image).apply(image)
                image, classes = pad_to(*self.intensity_augment.apply(rng, grey, classes), cfg.patch)
            intensity = self.inputs.intensity(image)
            for _ in range(min(cfg.patches_per_section, n_synth - len(images))):
                window = _crop(rng, image.shape, cfg.patch)
                images.append(network_input(image[window], intensity))
                labels.append(classes[window])
                weights.append((classes[window] != IGNORE_INDEX).astype(np.float32))
        for _ in range(n_harvest):
            sample = self.harvested[int(rng.integers(len(self.harvested)))]
            intensity = sample.intensity or percentile_range(sample.image, *cfg.percentiles)
            image = _pad(sample.image, cfg.patch, 0)
            window = _crop(rng, image.shape, cfg.patch)
            images.append(network_input(image[window], intensity))
            labels.append(_pad(sample.label, cfg.patch, IGNORE_INDEX)[window])
            weights.append(_pad(sample.weight.astype(np.float32), cfg.patch, 0.0)[window])
        image, label, weight = np.stack(images), np.stack(labels), np.stack(weights)
        if cfg.augment:
            image, label, weight = augment(rng, image, label, weight)
        if cfg.intensity_jitter:
            gain = rng.uniform(1 - cfg.intensity_jitter, 1 + cfg.intensity_jitter, (len(image), 1, 1))
            offset = rng.uniform(-cfg.intensity_jitter, cfg.intensity_jitter, (len(image), 1, 1))
            image = image * gain.astype(np.float32) + (offset / INPUT_SCALE).astype(np.float32)
        return Batch(
            torch.from_numpy(np.ascontiguousarray(image, np.float32)).unsqueeze(1),
            torch.from_numpy(np.ascontiguousarray(label).astype(np.int64)),
            torch.from_numpy(np.ascontiguousarray(weight, np.float32)),
        )


def augment(
    rng: np.random.Generator, image: np.ndarray, label: np.ndarray, weight: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same random flip and 90-degree rotation applied to each sample's image, label and weight."""
    out = []
    arrays: Sequence[np.ndarray]
    for arrays in zip(image, label, weight):
        k, flip = int(rng.integers(4)), bool(rng.integers(2))
        arrays = [np.rot90(a, k) for a in arrays]
        out.append([a[:, ::-1] if flip else a for a in arrays])
    return cast("tuple[np.ndarray, np.ndarray, np.ndarray]", tuple(np.stack(parts) for parts in zip(*out)))


def collate_none(batch: Batch) -> Batch:
    """Identity collate for ``DataLoader(batch_size=None)`` (the dataset makes whole batches)."""
    return batch
