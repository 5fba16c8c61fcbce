"""The benchmark's data: simulated samples, cut into pool, test and validation tiles, with cached features.

One *seed* of the benchmark draws ``samples`` fields (simulated thin sections) of the generator
families, alternating families; each field is cut into ``tile`` px tiles, and each field gives
``test_per_sample`` tiles to the fixed test set, ``val_per_sample`` to the champion rule's
validation set and the rest to the pool the experts label from. Test and validation tiles come
from the same sections as the pool (the product's case: the expert corrects some tiles of a
section, the model must get the rest of it right) and are never labelled for training.

Everything the learner needs per pixel is computed once per seed with the base FCN
(:func:`ml_backend.segmenters.fast_learner.learner_features`: grey filters, FCN probabilities,
decoder features) and kept as float16; tile embeddings come from the FCN encoder. Every curve
point then refits the forest from these features: no FCN pass per point.

Seeds: sample ``j`` of benchmark seed ``s`` is field seed ``seed_base + 100 s + j`` with
``seed_base`` above :data:`~ml_backend.synthetic.families.TEST_SEED_START`, so no field was
ever trained on; tuning seeds (100 and up) and reporting seeds (0-99) never share a field.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from active_learning.strategies.embeddings import encoder_embedding_map, pooled_embedding
from benchmarks.experts import contrast_matrix
from label_config import Catalogue
from ml_backend.fcn import FCNSegmenter
from ml_backend.segmenters.fast_learner import FastLearnerConfig, base_columns, learner_features
from ml_backend.synthetic.families import TEST_SEED_START, generate_field

SEED_BASE = TEST_SEED_START + 20_000


@dataclass(frozen=True)
class PoolConfig:
    """Size of one seed's data.

    Attributes:
        families: Generator families, alternated over the samples.
        samples: Simulated sections (fields) per seed.
        field: Field side (px).
        tile: Tile side (px); ``field`` must be a multiple.
        test_per_sample, val_per_sample: Tiles each field gives to the test and validation sets.
        region: Side (px) of the regions region-level arms label (``tile`` must be a multiple).
        score_stride: Grid step (px) of the pool pixels the strategies score.
        eval_stride: Grid step (px) of the test and validation pixels the metrics are computed on.
        seed_base: Field seed of sample 0 of benchmark seed 0.
    """

    families: tuple[str, ...] = ("vitrophyric", "intergranular")
    samples: int = 10
    field: int = 896
    tile: int = 128
    test_per_sample: int = 5
    val_per_sample: int = 2
    region: int = 64
    score_stride: int = 4
    eval_stride: int = 2
    seed_base: int = SEED_BASE

    def __post_init__(self) -> None:
        if self.field % self.tile or self.tile % self.region or self.region % self.score_stride:
            raise ValueError("field must be a multiple of tile, tile of region, region of score_stride")
        if self.test_per_sample + self.val_per_sample >= (self.field // self.tile) ** 2:
            raise ValueError("test and validation tiles leave no pool tiles")
        if not self.families or self.samples < 1:
            raise ValueError("need at least one family and one sample")

    @property
    def tiles_per_sample(self) -> int:
        """Tiles cut from one field."""
        return (self.field // self.tile) ** 2


@dataclass(frozen=True)
class Box:
    """A labelling unit: a tile or a region of one sample.

    Attributes:
        id: Unique within a seed (tiles: sample * tiles_per_sample + index; regions: 4 * tile id + quadrant, offset).
        sample: Index of the sample.
        top, left, size: Pixel box in the sample's field.
        tile: Id of the tile it lies in (its own id for a tile).
    """

    id: int
    sample: int
    top: int
    left: int
    size: int
    tile: int

    @property
    def slices(self) -> tuple[slice, slice]:
        """Row and column slices of the box."""
        return slice(self.top, self.top + self.size), slice(self.left, self.left + self.size)

    @property
    def area(self) -> int:
        """Pixels."""
        return self.size * self.size


@dataclass
class Sample:
    """One simulated section with its cached per-pixel features."""

    family: str
    seed: int
    image: np.ndarray
    truth: np.ndarray
    features: np.ndarray  # (F, H, W) float16
    encoder: np.ndarray  # (E, h, w) float32, stride 32
    pixel_size_um: float
    contrast: np.ndarray


@dataclass
class Pool:
    """One seed's samples, tile split and the score/evaluation grids.

    Attributes:
        config: Sizes.
        seed: Benchmark seed.
        samples: The sections.
        pool, test, val: Tiles of each set.
        regions: The pool tiles' regions (for region-level arms).
        learner: The fast learner's configuration (feature layout).
        names: Catalogue class names.
    """

    config: PoolConfig
    seed: int
    samples: list[Sample]
    pool: list[Box]
    test: list[Box]
    val: list[Box]
    regions: list[Box]
    learner: FastLearnerConfig
    names: list[str]
    base_version: str = ""
    _grids: dict = field(default_factory=dict, repr=False)

    @property
    def n_classes(self) -> int:
        """Catalogue size."""
        return len(self.names)

    def features(self, box: Box) -> np.ndarray:
        """(F, h, w) float32 features of a box."""
        rows, cols = box.slices
        return self.samples[box.sample].features[:, rows, cols].astype(np.float32)

    def truth(self, box: Box) -> np.ndarray:
        """(h, w) uint8 true classes of a box."""
        rows, cols = box.slices
        return self.samples[box.sample].truth[rows, cols]

    def grid(self, boxes: list[Box], stride: int) -> tuple[np.ndarray, np.ndarray]:
        """((F, N) float32 features, (N,) truth) of the boxes' pixels on the grid ``[::stride, ::stride]``, box after box.

        Each box gives ``(size // stride) ** 2`` consecutive columns, row-major.
        """
        key = (tuple(b.id for b in boxes), stride)
        if key not in self._grids:
            feats = [self.samples[b.sample].features[:, b.slices[0], b.slices[1]][:, ::stride, ::stride] for b in boxes]
            truth = [self.truth(b)[::stride, ::stride] for b in boxes]
            self._grids[key] = (
                np.concatenate([f.reshape(f.shape[0], -1) for f in feats], axis=1).astype(np.float32),
                np.concatenate([t.ravel() for t in truth]),
            )
        return self._grids[key]

    def base_probabilities(self, features: np.ndarray) -> np.ndarray:
        """The FCN's own probabilities inside (F, ...) features."""
        return features[base_columns(self.learner, self.n_classes)]

    def decoder_features(self, features: np.ndarray) -> np.ndarray:
        """The FCN decoder's channels inside (F, ...) features (the last ones)."""
        return features[base_columns(self.learner, self.n_classes).stop :]

    def embedding(self, box: Box) -> np.ndarray:
        """(E,) the FCN encoder's features averaged over the box."""
        sample = self.samples[box.sample]
        return pooled_embedding(sample.encoder, (box.top, box.left, box.size, box.size), sample.truth.shape)

    def composition(self) -> dict[str, object]:
        """What the pool holds: tiles, samples per family, pixel sizes, redundant and rare tiles."""
        counts = {"groundmass_only": 0, "olivine_rich": 0, "oxide_rich": 0}
        index = {name: self.names.index(name) for name in ("Groundmass", "Olivine", "Fe-Ti oxide")}
        for box in self.pool:
            shares = np.bincount(self.truth(box).ravel(), minlength=self.n_classes) / box.area
            counts["groundmass_only"] += int(shares[index["Groundmass"]] >= 0.9)
            counts["olivine_rich"] += int(shares[index["Olivine"]] >= 0.2)
            counts["oxide_rich"] += int(shares[index["Fe-Ti oxide"]] >= 0.05)
        return {
            "pool_tiles": len(self.pool), "test_tiles": len(self.test), "val_tiles": len(self.val),
            "samples": [{"family": s.family, "seed": s.seed, "pixel_size_um": round(s.pixel_size_um, 3),
                         "modal": [round(float(v), 3) for v in np.bincount(s.truth.ravel(), minlength=self.n_classes)
                                   / s.truth.size]} for s in self.samples],
            **counts,
        }  # fmt: skip


def model_digest(path: str | Path) -> str:
    """First 12 hex digits of the SHA-256 of a weights file (which base the figures are for)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def build_pool(
    seed: int, config: PoolConfig, base: FCNSegmenter, catalogue: Catalogue, learner: FastLearnerConfig | None = None
) -> Pool:
    """Draw one seed's samples, compute their features once, and split their tiles."""
    learner = learner or FastLearnerConfig()
    n = len(catalogue)
    samples, pool, test, val, regions = [], [], [], [], []
    per_side = config.field // config.tile
    quarter = config.tile // config.region
    region_offset = config.samples * config.tiles_per_sample
    for j in range(config.samples):
        family = config.families[j % len(config.families)]
        field_seed = config.seed_base + 100 * seed + j
        section = generate_field(family, config.field, field_seed, catalogue)
        _, features = learner_features(section.image, base, learner)
        encoder = encoder_embedding_map(base.model_path, section.image)
        samples.append(Sample(family, field_seed, section.image, section.classes, features.astype(np.float16), encoder,
                              float(section.pixel_size_um), contrast_matrix(section.image, section.classes, n)))  # fmt: skip
        order = np.random.default_rng([seed, j, 11]).permutation(config.tiles_per_sample)
        for rank, index in enumerate(order):
            top, left = divmod(int(index), per_side)
            box = Box(j * config.tiles_per_sample + int(index), j, top * config.tile, left * config.tile, config.tile,
                      j * config.tiles_per_sample + int(index))  # fmt: skip
            if rank < config.test_per_sample:
                test.append(box)
            elif rank < config.test_per_sample + config.val_per_sample:
                val.append(box)
            else:
                pool.append(box)
                for q in range(quarter * quarter):
                    r, c = divmod(q, quarter)
                    regions.append(Box(region_offset + box.id * quarter * quarter + q, j, box.top + r * config.region,
                                       box.left + c * config.region, config.region, box.id))  # fmt: skip
    key = lambda b: b.id  # noqa: E731
    return Pool(config, seed, samples, sorted(pool, key=key), sorted(test, key=key), sorted(val, key=key),
                sorted(regions, key=key), learner, list(catalogue.names), base.version)  # fmt: skip
