"""MLflow tracking of a retraining cycle: params, config, metrics, curves, data fingerprints, model files.

Everything goes through an explicit :class:`mlflow.MlflowClient` built from the settings
(no process-global ``mlflow.set_tracking_uri``). The tracking URI is
``settings.resolved_mlflow_uri``: by default a SQLite file under the data dir with
artefacts in ``<data_dir>/mlartifacts/<experiment>``; when it names an MLflow server, the server keeps
the artefacts (``--artifacts-destination s3://...``)::

    with start_run(settings, run_name="cycle-7") as run:
        run.log_config(train_config)
        run.log_dataset("val", {sample_id: sha256, ...})
        run.log_curve("train/loss", losses)
        miou = run.log_class_iou({"Olivine": 0.8, ...})
        run.log_model(model.state_dict(), model_config)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus
from mlflow.exceptions import MlflowException
from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH

from active_learning.fingerprints import fingerprint
from active_learning.model_files import WEIGHTS_FILE, save_model_dir, weights_folder

if TYPE_CHECKING:
    from active_learning.settings_protocols import TrackingSettings

TAG_PREFIX = "scraiber."
MODEL_ARTIFACT_PATH = "model"
WEIGHTS_SHA256_TAG = f"{TAG_PREFIX}weights_sha256"
_UNSAFE_NAME = re.compile(r"[^\w\-. /:]")


def mlflow_client(settings: TrackingSettings) -> MlflowClient:
    """An MLflow client for ``settings.resolved_mlflow_uri`` (tracking and registry alike).

    Creates the data dir when the URI is the embedded SQLite default.
    """
    uri = settings.resolved_mlflow_uri
    if settings.mlflow_tracking_uri is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def artifact_location(settings: TrackingSettings, experiment_name: str) -> str | None:
    """Artefact root for a new experiment: the server's choice for ``http(s)`` URIs, else ``<data_dir>/mlartifacts/<name>``."""
    if settings.resolved_mlflow_uri.startswith(("http://", "https://")):
        return None
    return (settings.data_dir / "mlartifacts" / experiment_name).resolve().as_uri()


def experiment_id(client: MlflowClient, name: str, location: str | None) -> str:
    """Id of the experiment ``name``, created (with artefacts at ``location``) if missing."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException as exc:  # created meanwhile by another process
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        existing = client.get_experiment_by_name(name)
        if existing is None:  # deleted again meanwhile
            raise
        return existing.experiment_id


def config_dict(config: Any) -> dict[str, Any]:
    """A config object as a JSON-ready dict (pydantic model, dataclass or mapping)."""
    if hasattr(config, "model_dump"):
        data = config.model_dump(mode="json")
    elif dataclasses.is_dataclass(config) and not isinstance(config, type):
        data = dataclasses.asdict(config)
    elif isinstance(config, Mapping):
        data = dict(config)
    else:
        raise ValueError(f"config must be a pydantic model, a dataclass or a mapping, got {type(config).__name__}")
    return json.loads(json.dumps(data, default=str))


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested mappings as ``{"a.b.c": "value"}``; lists become JSON text, long values are cut to MLflow's limit."""
    flat: dict[str, str] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            text = value if isinstance(value, str) else json.dumps(value)
            flat[name] = text if len(text) <= MAX_PARAM_VAL_LENGTH else text[: MAX_PARAM_VAL_LENGTH - 3] + "..."
    return flat


def metric_name(name: str) -> str:
    """``name`` with characters MLflow refuses in metric names replaced by ``_``."""
    return _UNSAFE_NAME.sub("_", name)


class TrainingRun:
    """One MLflow run of a retraining cycle (an MLflow client and a run id)."""

    def __init__(self, client: MlflowClient, run_id: str) -> None:
        self.client = client
        self.run_id = run_id

    def __repr__(self) -> str:
        return f"TrainingRun({self.run_id!r})"

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log parameters (nested mappings flattened to dotted names)."""
        self.client.log_batch(self.run_id, params=[Param(k, v) for k, v in flatten(params).items()])

    def log_config(self, config: Any) -> dict[str, Any]:
        """Log the whole config as ``config.json`` and as flattened ``config.*`` params; return it as a dict."""
        data = config_dict(config)
        self.client.log_dict(self.run_id, data, "config.json")
        self.log_params({"config": data})
        return data

    def log_dataset(self, role: str, samples: Mapping[str, str] | Iterable[str]) -> str:
        """Log a data set's fingerprint (tag ``scraiber.data.<role>``) and sample list (``data/<role>.json``).

        Args:
            role: What the data is for, e.g. ``"train"`` or ``"val"``.
            samples: Sample ids or sample id -> content hash, as for :func:`fingerprint`.

        Returns:
            The fingerprint.
        """
        samples = dict(samples) if isinstance(samples, Mapping) else list(samples)
        digest = fingerprint(samples)
        self.client.set_tag(self.run_id, f"{TAG_PREFIX}data.{role}", digest)
        listing = samples if isinstance(samples, dict) else sorted(samples)
        self.client.log_dict(
            self.run_id, {"role": role, "fingerprint": digest, "samples": listing}, f"data/{role}.json"
        )
        return digest

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        """Log several metrics at one ``step``."""
        now = int(time.time() * 1000)
        batch = [Metric(metric_name(key), float(value), now, step) for key, value in metrics.items()]
        self.client.log_batch(self.run_id, metrics=batch)

    def log_curve(self, name: str, values: Sequence[float], start_step: int = 0) -> None:
        """Log a whole curve (loss per epoch, ...) as metric ``name`` with steps ``start_step, start_step+1, ...``."""
        now = int(time.time() * 1000)
        key = metric_name(name)
        batch = [Metric(key, float(value), now, start_step + i) for i, value in enumerate(values)]
        self.client.log_batch(self.run_id, metrics=batch)

    def log_class_iou(self, iou: Mapping[str, float], prefix: str = "val", step: int = 0) -> float:
        """Log per-class IoU as ``<prefix>/iou/<class>`` and their mean over classes with a value as ``<prefix>/miou``.

        Classes absent from both prediction and truth have IoU NaN; they are logged but
        left out of the mean.

        Raises:
            ValueError: if no class has a finite IoU or a value is outside [0, 1].
        """
        finite = [float(value) for value in iou.values() if not math.isnan(value)]
        if not finite:
            raise ValueError(f"no class has a finite IoU: {dict(iou)}")
        if any(value < 0 or value > 1 for value in finite):
            raise ValueError(f"IoU values must lie in [0, 1], got {dict(iou)}")
        miou = sum(finite) / len(finite)
        self.log_metrics(
            {**{f"{prefix}/iou/{name}": value for name, value in iou.items()}, f"{prefix}/miou": miou}, step
        )
        return miou

    def log_model(
        self,
        state_dict: Mapping[str, torch.Tensor],
        model_config: Mapping[str, Any],
        artifact_path: str = MODEL_ARTIFACT_PATH,
    ) -> str:
        """Log weights (safetensors) and construction config as ``<artifact_path>/`` of this run.

        An FCN construction config makes it an MLflow Model (pyfunc flavour from code, with
        signature and input example: :mod:`active_learning.mlflow_model`) that
        ``mlflow.pyfunc.load_model`` loads; any other config logs the bare folder.

        Returns:
            The model's URI, ``runs:/<run_id>/<artifact_path>``.
        """
        from active_learning.mlflow_model import is_fcn_config, save_pyfunc_model

        with tempfile.TemporaryDirectory(prefix="scraiber-model-") as tmp:
            if is_fcn_config(model_config):
                folder = save_pyfunc_model(Path(tmp) / artifact_path, state_dict, model_config)
            else:
                folder = save_model_dir(Path(tmp) / artifact_path, state_dict, model_config)
            weights = (weights_folder(folder) / WEIGHTS_FILE).read_bytes()
            self.client.log_artifacts(self.run_id, str(folder), artifact_path)
        # served FCNs are named fcn-<sha256 prefix of their weights file>: this tag finds their run again
        self.client.set_tag(self.run_id, WEIGHTS_SHA256_TAG, hashlib.sha256(weights).hexdigest())
        return f"runs:/{self.run_id}/{artifact_path}"


@contextmanager
def start_run(
    settings: TrackingSettings,
    *,
    run_name: str | None = None,
    tags: Mapping[str, str] | None = None,
    experiment_name: str | None = None,
) -> Iterator[TrainingRun]:
    """Open a run in experiment ``experiment_name`` (default: ``settings.model_name``).

    The run ends FINISHED when the block succeeds, FAILED when it raises (KILLED on
    Ctrl-C); the exception propagates.
    """
    client = mlflow_client(settings)
    name = experiment_name or settings.model_name
    exp_id = experiment_id(client, name, artifact_location(settings, name))
    run = client.create_run(exp_id, run_name=run_name, tags=dict(tags or {}))
    status = RunStatus.to_string(RunStatus.FAILED)
    try:
        yield TrainingRun(client, run.info.run_id)
        status = RunStatus.to_string(RunStatus.FINISHED)
    except KeyboardInterrupt:
        status = RunStatus.to_string(RunStatus.KILLED)
        raise
    finally:
        client.set_terminated(run.info.run_id, status)
