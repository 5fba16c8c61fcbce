"""The one configuration object of FCN training (logged whole to MLflow with every run)."""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ml_backend.fcn.architectures import get_architecture
from ml_backend.synthetic import SynthConfig

#: Domain randomisation for training: ``SynthConfig`` ranges widened around the realistic
#: defaults (scale, detector gain/offset, dose, read noise, blur, shading, zoning, modes).
#: Validation uses the plain defaults, so it measures the realistic case.
TRAINING_SYNTH: dict[str, Any] = {
    "pixel_size_um": [0.7, 3.0],
    "olivine_fraction": [0.02, 0.22],
    "plagioclase_fraction": [0.02, 0.20],
    "clinopyroxene_fraction": [0.01, 0.14],
    "oxide_fraction": [0.002, 0.03],
    "vesicle_fraction": [0.0, 0.12],
    "olivine_zoning_delta_fo": [3.0, 20.0],
    "plagioclase_zoning_delta_an": [3.0, 35.0],
    "blur_sigma_px": [0.3, 2.0],
    "shading_multiplicative": [0.0, 0.3],
    "shading_additive": [0.0, 0.05],
    "dose_electrons": [1500.0, 60000.0],
    "read_noise_dn": [10.0, 600.0],
    "gain_dn": [100000.0, 300000.0],
    "offset_dn": [-15000.0, 5000.0],
}

SCHEDULES = ("cosine", "constant")

#: Generator families of the shipped model, equally weighted (``ml_backend.synthetic.families``).
TRAINING_FAMILIES: dict[str, float] = {"porphyritic": 1.0, "vitrophyric": 1.0, "intergranular": 1.0}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run; the same config and seed give the same batches.

    Attributes:
        arch: FCN registry name (``ml_backend.fcn.architecture_names()``).
        steps: Optimiser steps (batches); data are drawn on the fly, so there are no epochs.
        batch_size: Patches per step.
        patch: Patch side (px, multiple of 32).
        section_size: Side of each synthetic section drawn; ``patches_per_section`` patches
            are cropped from each (its grey range is computed on the whole section, as at inference).
        lr, weight_decay: AdamW.
        schedule: ``cosine`` (linear warm-up, then cosine to ``lr * final_lr_fraction``) or
            ``constant`` (after warm-up); the learning rate is a pure function of the step.
        ce_weight, dice_weight: Weights of the (class-weighted, focal if ``focal_gamma > 0``)
            cross-entropy and of the soft Dice loss.
        class_weights: Cross-entropy class weights; None: inverse square root of the class
            frequencies of the validation set, normalised to mean 1.
        seed: Seed of the training batches (and the network's initialisation).
        val_seed, val_sections, val_size: The fixed validation set: sections ``val_seed + k``
            of each validation family (the realistic defaults of each).
        val_families: Families of the validation set (None: those of ``families``); a family
            held out for testing must not be here, or checkpoints are chosen on it.
        val_every: Steps between validations (and checkpoints).
        patience: Validations without an mIoU gain of more than ``min_delta`` before
            stopping early; 0 never stops early.
        families: Generator families drawn for training, name -> relative weight.
        synth: ``SynthConfig`` overrides for ``porphyritic`` training sections (domain randomisation).
        section_pool: 0: a fresh seed for every section drawn; N: sections come from the first
            N seeds of each family (a finite pool, cached in ``pool_dir``: generation is then
            paid once).
        pool_dir: Cache folder of pooled sections (None: no cache).
        intensity_augment: Generator-independent augmentations of whole sections (response
            curves, gamma, shading, blur, noise, scan lines, quantisation, scale:
            :class:`~active_learning.training.augment.IntensityAugment`).
        harvest_ratio: Share of each batch taken from harvested labels when some are given.
        augment: Random flips and 90-degree rotations.
        intensity_jitter: Random gain and offset (fractions of the grey range) after normalisation.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda``.
        amp: Mixed precision: bfloat16 autocast on CUDA, and on CPUs with native bf16.
        threads: CPU threads (0 = all cores).
        workers: Data-loading processes (0 = in the training process).
        checkpoint_dir: Where checkpoints go (None: ``<data dir>/checkpoints/<arch>-seed<seed>``).
        resume: Continue from the last checkpoint in ``checkpoint_dir`` if there is one.
        tile, overlap, percentiles: Inference settings saved in the model's config.
        init_from: Fine-tune: start from these weights (model folder or ``.safetensors``) instead
            of a random initialisation; their architecture must be ``arch``.
        freeze_norm: Keep batch-norm statistics fixed (fine-tuning on few tiles in small batches).
    """

    arch: str = "unet-resnet18"
    steps: int = 2000
    batch_size: int = 8
    patch: int = 256
    section_size: int = 512
    patches_per_section: int = 4
    lr: float = 2e-3
    weight_decay: float = 1e-4
    schedule: str = "cosine"
    warmup_steps: int = 50
    final_lr_fraction: float = 0.02
    ce_weight: float = 1.0
    dice_weight: float = 1.0
    focal_gamma: float = 0.0
    class_weights: tuple[float, ...] | None = None
    seed: int = 0
    val_seed: int = 1_000_000
    val_sections: int = 8
    val_size: int = 512
    val_every: int = 100
    patience: int = 10
    min_delta: float = 0.0
    families: dict[str, float] = field(default_factory=lambda: dict(TRAINING_FAMILIES))
    val_families: tuple[str, ...] | None = None
    synth: dict[str, Any] = field(default_factory=lambda: dict(TRAINING_SYNTH))
    section_pool: int = 0
    pool_dir: str | None = None
    intensity_augment: bool = True
    harvest_ratio: float = 0.0
    augment: bool = True
    intensity_jitter: float = 0.05
    device: str = "auto"
    amp: bool = True
    threads: int = 0
    workers: int = 0
    checkpoint_dir: str | None = None
    resume: bool = False
    tile: int = 1024
    overlap: int = 64
    percentiles: tuple[float, float] = (0.5, 99.5)
    init_from: str | None = None
    freeze_norm: bool = False

    def __post_init__(self) -> None:
        get_architecture(self.arch)
        positive = (
            "steps",
            "batch_size",
            "patch",
            "section_size",
            "patches_per_section",
            "val_sections",
            "val_size",
            "val_every",
        )
        for name in positive:
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"training config: {name} must be a positive integer, got {getattr(self, name)!r}")
        if self.patch % 32 or self.patch > self.section_size:
            raise ValueError(
                f"training config: patch ({self.patch}) must be a multiple of 32 "
                f"and <= section_size ({self.section_size})"
            )
        if self.val_size % 32:
            raise ValueError(f"training config: val_size must be a multiple of 32, got {self.val_size}")
        if not (math.isfinite(self.lr) and self.lr >= 0) or self.weight_decay < 0:
            raise ValueError(f"training config: lr and weight_decay must be >= 0, got {self.lr}, {self.weight_decay}")
        if self.schedule not in SCHEDULES:
            raise ValueError(
                f"training config: unknown schedule {self.schedule!r}; valid schedules: {', '.join(SCHEDULES)}"
            )
        if (
            min(self.ce_weight, self.dice_weight, self.focal_gamma, self.warmup_steps, self.patience, self.min_delta)
            < 0
        ):
            raise ValueError(
                "training config: loss weights, focal_gamma, warmup_steps, patience and min_delta must be >= 0"
            )
        if self.ce_weight == 0 and self.dice_weight == 0:
            raise ValueError("training config: ce_weight and dice_weight cannot both be 0")
        if not 0 <= self.harvest_ratio <= 1 or not 0 <= self.intensity_jitter < 0.5:
            raise ValueError("training config: harvest_ratio must lie in [0, 1] and intensity_jitter in [0, 0.5)")
        if self.class_weights is not None and (not self.class_weights or min(self.class_weights) < 0):
            raise ValueError(f"training config: class_weights must be non-negative numbers, got {self.class_weights!r}")
        if self.threads < 0 or self.workers < 0 or self.seed < 0 or self.val_seed < 0:
            raise ValueError("training config: threads, workers and seeds must be >= 0")
        self.synth_config()  # validates the overrides
        from ml_backend.synthetic.families import family_names  # light: the registry only

        known = family_names()
        named = list(self.families) + list(self.val_families or ())
        unknown = sorted(set(named) - set(known))
        if unknown:
            raise ValueError(
                f"training config: unknown generator families {unknown}; valid families: {', '.join(known)}"
            )
        if not self.families or min(self.families.values()) < 0 or sum(self.families.values()) <= 0:
            raise ValueError(
                f"training config: families needs non-negative weights, some positive; got {self.families!r}"
            )
        if self.section_pool < 0:
            raise ValueError(f"training config: section_pool must be >= 0, got {self.section_pool}")

    def without_families(self, names: Iterable[str]) -> TrainConfig:
        """This config with the families ``names`` left out of training and validation.

        Raises:
            ValueError: for an unknown family, or when no family would be left.
        """
        names = set(names)
        unknown = sorted(names - set(self.families))
        if unknown:
            raise ValueError(f"cannot hold out {unknown}: the config trains on {sorted(self.families)}")
        families = {name: weight for name, weight in self.families.items() if name not in names}
        return self.replace(
            families=families, val_families=tuple(n for n in self.validation_families() if n not in names)
        )

    def validation_families(self) -> tuple[str, ...]:
        """Families of the fixed validation set."""
        return tuple(self.val_families) if self.val_families is not None else tuple(sorted(self.families))

    def synth_config(self) -> SynthConfig:
        """The ``SynthConfig`` training sections are drawn from."""
        return SynthConfig.from_dict(dict(self.synth), source="training config [synth]")

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "training config") -> TrainConfig:
        """Build from field names -> values; unknown keys are refused.

        Raises:
            ValueError: naming the unknown key(s) and the valid ones, or the bad value.
        """
        valid = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - valid)
        if unknown:
            raise ValueError(
                f"{source}: unknown training config key(s) {unknown}; valid keys: {', '.join(sorted(valid))}"
            )
        values = dict(data)
        for name in ("class_weights", "percentiles", "val_families"):
            if isinstance(values.get(name), list):
                values[name] = tuple(values[name])
        if "synth" in values:
            values["synth"] = {**TRAINING_SYNTH, **values["synth"]}
        try:
            return cls(**values)
        except TypeError as exc:
            raise ValueError(f"{source}: {exc}") from None

    @classmethod
    def from_file(cls, path: str | Path) -> TrainConfig:
        """Read a ``.toml`` or ``.json`` file of field names (``[synth]`` table for the synthetic overrides).

        Raises:
            ValueError: when the file is missing, unparsable or holds bad keys or values.
        """
        path = Path(path)
        parse = {".toml": tomllib.loads, ".json": json.loads}.get(path.suffix.lower())
        if parse is None:
            raise ValueError(f"{path}: training config must be a .toml or .json file")
        try:
            data = parse(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ValueError(f"{path}: cannot read training config ({exc.strerror or exc})") from None
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: not valid {path.suffix.lstrip('.').upper()} ({exc})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: training config must be a table of field names")
        return cls.from_dict(data, source=str(path))
