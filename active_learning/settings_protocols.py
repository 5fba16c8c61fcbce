"""What this room reads from the settings object, as protocols.

The settings object lives in the composition room (``scraiber.settings.Settings``) and has
these fields; functions here take anything that has them, so this room never imports the
room above it. Kept free of heavy imports: ``python -m scraiber.commands.training`` uses it
without MLflow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from ml_backend.settings_protocols import S3Settings

#: Registered model name and alias of the model the backend serves, unless the settings name others.
DEFAULT_MODEL_NAME = "scraiber-minerals"
DEFAULT_CHAMPION_ALIAS = "champion"


class TrackingSettings(Protocol):
    """Where MLflow is and what the model is called there (the composition room's settings have these)."""

    mlflow_tracking_uri: str | None
    data_dir: Path
    model_name: str
    champion_alias: str

    @property
    def resolved_mlflow_uri(self) -> str:
        """The tracking URI, with the embedded default filled in."""
        ...


class IngestSettings(S3Settings, Protocol):
    """Where section tiles go: Label Studio's local-files root, or an S3 bucket."""

    local_files_document_root: Path | None


class TrainingSettings(TrackingSettings, Protocol):
    """A training run: MLflow (when it registers), the data dir for checkpoints, the catalogue."""

    catalogue: Path | None


class CycleSettings(TrainingSettings, Protocol):
    """A retraining cycle: its policy, the query strategy that re-scores open tasks, torch threads."""

    threads: int
    retrain_every: int
    retrain_on_start_training: bool
    query_strategy: str
