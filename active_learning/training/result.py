"""What a training run returns (shared by the loop, its MLflow log and the Modal app)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ml_backend.fcn.model_config import FCNConfig


@dataclass
class TrainingResult:
    """What a training run produced.

    Attributes:
        model_path: Weights file of the best model (its ``.json`` config beside it or, for a
            folder, ``config.json``).
        model_config: The best model's construction config (with training provenance).
        val_iou, val_miou: Per-class IoU and score (the expert mIoU with held-out expert labels,
            else the synthetic mIoU: :class:`~active_learning.training.validation.Evaluation`),
            best validation.
        val_synthetic_miou: mIoU on the synthetic sections at the best validation (forgetting guard).
        val_per_tile: mIoU per champion-only validation tile at the best validation (champion test).
        val_fingerprint: Fingerprint of the validation set.
        best_step, steps_done: Step of the best validation; steps trained in all.
        stopped_early: Whether early stopping ended the run.
        seconds: Wall time of this invocation.
        losses: Training loss per step (all steps, resumed ones included).
        validations: One dict per validation (step, mIoU, per-class IoU, mean loss).
        run_id, model_version, promoted, promotion_reason: MLflow results when registered.
    """

    model_path: Path
    model_config: FCNConfig
    val_iou: dict[str, float]
    val_miou: float
    val_fingerprint: str
    best_step: int
    steps_done: int
    stopped_early: bool
    seconds: float
    losses: list[float] = field(default_factory=list)
    validations: list[dict[str, Any]] = field(default_factory=list)
    run_id: str | None = None
    model_version: int | None = None
    promoted: bool | None = None
    promotion_reason: str | None = None
    val_synthetic_miou: float | None = None
    val_per_tile: dict[str, float] | None = None
