"""MLflow side of a training run, through ``active_learning.tracking`` and ``active_learning.registry``.

Logs params and the whole config, the validation set's fingerprint, loss and per-class IoU
curves, then the best model (safetensors + construction config), registers it as
``settings.model_name`` and moves the champion alias only if its validation mIoU on the
same validation set is not worse.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from active_learning.registry import ModelRegistry
from active_learning.settings_protocols import TrackingSettings
from active_learning.tracking import TrainingRun, start_run
from active_learning.training.config import TrainConfig
from active_learning.training.result import TrainingResult


class MlflowTrainingLog:
    """A ``TrainingLog`` writing to one MLflow run."""

    def __init__(self, settings: TrackingSettings, run: TrainingRun) -> None:
        self.settings = settings
        self.run = run

    @classmethod
    @contextmanager
    def open(cls, settings: TrackingSettings, config: TrainConfig) -> Iterator[MlflowTrainingLog]:
        """A log on a new run of experiment ``settings.model_name`` (ended FAILED if training raises)."""
        tags = {"scraiber.kind": "fcn-training", "scraiber.arch": config.arch}
        with start_run(settings, run_name=f"train-{config.arch}", tags=tags) as run:
            yield cls(settings, run)

    def start(self, config: TrainConfig, val_samples: dict[str, str], class_weights: list[float]) -> None:
        """Log the config (``config.json`` + params), the class weights and the validation set."""
        self.run.log_config(config)
        self.run.log_params({"class_weights_used": class_weights})
        self.run.log_dataset("val", val_samples)

    def metrics(self, values: dict[str, float], step: int) -> None:
        """Log metrics at ``step``."""
        self.run.log_metrics(values, step)

    def class_iou(self, iou: dict[str, float], step: int) -> None:
        """Log ``val/iou/<class>`` and ``val/miou`` at ``step``."""
        self.run.log_class_iou(iou, "val", step)

    def finish(self, result: TrainingResult, state_dict: dict[str, torch.Tensor]) -> None:
        """Log the loss curve and the best model, register it and apply the champion rule; fill ``result``."""
        self.run.log_curve("train/loss_step", result.losses)
        self.run.log_metrics({"best/val_miou": result.val_miou, "best/step": result.best_step}, result.steps_done)
        self.run.log_model(state_dict, result.model_config.to_dict())
        registry = ModelRegistry.from_settings(self.settings)
        version = registry.register(self.run.run_id)
        decision = registry.promote_if_not_worse(
            version, result.val_miou, result.val_fingerprint, result.val_synthetic_miou, per_tile=result.val_per_tile
        )
        result.run_id = self.run.run_id
        result.model_version = version
        result.promoted = decision.promoted
        result.promotion_reason = decision.reason
