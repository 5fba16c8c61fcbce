"""Each logged FCN is an MLflow Model: ``mlflow.pyfunc.load_model("models:/NAME@champion")`` predicts a mask.

On the embedded SQLite default and (slow) on a real MLflow server with S3 artefacts. No pickle:
the pyfunc flavour is models-from-code and the weights are safetensors.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import mlflow
import numpy as np
import pytest
import yaml
from mlflow.exceptions import MlflowException

from active_learning.model_files import WEIGHTS_FILE
from active_learning.registry import ModelRegistry
from active_learning.tracking import mlflow_client, start_run
from label_config import load_catalogue
from ml_backend.fcn import FCNSegmenter, load_fcn, shipped_model_path
from ml_backend.synthetic import generate_section
from scraiber.settings import Settings
from tests.active_learning.test_tracking import backend  # noqa: F401 - the embedded / MLflow-server fixture


def register_shipped_champion(settings: Settings) -> tuple[int, str]:
    """Log the shipped FCN as a run's model (as a retraining cycle's baseline does), register and promote it."""
    loaded = load_fcn(shipped_model_path(load_catalogue()))
    with start_run(settings, run_name="shipped-baseline", tags={"scraiber.kind": "shipped"}) as run:
        run.log_model(loaded.state_dict, loaded.config.to_dict())
    registry = ModelRegistry.from_settings(settings)
    version = registry.register(run.run_id)
    assert registry.promote_if_not_worse(version, 0.8894, "val-shipped").promoted
    return version, run.run_id


@pytest.mark.slow  # registers and loads a model through MLflow
def test_champion_loads_and_predicts_through_mlflows_own_api(
    backend: dict, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = Settings(_env_file=None, model_name=f"pyfunc-{uuid.uuid4().hex[:8]}", **backend)
    version, run_id = register_shipped_champion(settings)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", settings.resolved_mlflow_uri)

    model = mlflow.pyfunc.load_model(f"models:/{settings.model_name}@champion")
    image = generate_section(160, seed=11).image  # uint16, like a 16-bit BSE export
    mask = model.predict(image.astype(np.float32))
    expected = FCNSegmenter(load_catalogue(), runtime="eager", device="cpu").segment(image)
    assert mask.dtype == np.uint8 and mask.shape == image.shape
    assert np.array_equal(mask, expected) and len(np.unique(mask)) >= 3
    assert model.metadata.get_input_schema().to_dict() == [
        {"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": (-1, -1)}}
    ]
    with pytest.raises(MlflowException, match="dtype of input uint16 does not match expected dtype float32"):
        model.predict(image)

    # no pickle anywhere: the flavour is code plus safetensors weights
    folder = Path(mlflow_client(settings).download_artifacts(run_id, "model", str(tmp_path)))
    flavour = yaml.safe_load((folder / "MLmodel").read_text())["flavors"]["python_function"]
    assert flavour["model_code_path"].endswith("mlflow_model_code.py") and "python_model" not in flavour
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert "artifacts/fcn/weights.safetensors" in files and "input_example.json" in files
    assert not [f for f in files if f.endswith((".pkl", ".pickle", ".pt", ".pth", ".ckpt"))]
    # the backend's own path is unchanged: the registry hands out the weights folder
    weights = ModelRegistry.from_settings(settings).download_model(version)
    assert (weights / WEIGHTS_FILE).is_file() and load_fcn(weights).sha256 == load_fcn(
        shipped_model_path(load_catalogue())
    ).sha256
