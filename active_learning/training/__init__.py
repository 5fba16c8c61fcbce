"""FCN training: config, on-the-fly synthetic data (+ harvested labels), loss, validation, checkpoints.

Entry point for every way of running it (CLI, Modal)::

    from active_learning.training import TrainConfig, run_training

    result = run_training(TrainConfig(arch="unet-resnet18", steps=2000), settings)

Imports stay light (torch, smp, numpy, scipy): MLflow is imported only to register.
"""

from active_learning.training.config import TRAINING_SYNTH, TrainConfig
from active_learning.training.data import HarvestedSample
from active_learning.training.loop import run_training
from active_learning.training.result import TrainingResult
from active_learning.training.validation import ValidationSample

__all__ = ["TRAINING_SYNTH", "HarvestedSample", "TrainConfig", "TrainingResult", "ValidationSample", "run_training"]
