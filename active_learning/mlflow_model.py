"""A trained FCN as an MLflow Model: pyfunc flavour, models-from-code, weights as safetensors.

Every model a run logs with an FCN construction config (:meth:`active_learning.tracking.TrainingRun.log_model`)
is an MLflow Model folder that MLflow's own API loads, with no pickle anywhere::

    model/
      MLmodel                     pyfunc flavour, model_code_path: mlflow_model_code.py, signature
      mlflow_model_code.py        the code (``set_model(MineralSegmentationModel())``), copied by MLflow
      artifacts/fcn/weights.safetensors
      artifacts/fcn/config.json   construction config (classes, normalisation, tiling, training provenance)
      input_example.json, serving_input_example.json, requirements.txt, python_env.yaml, conda.yaml

so that, with the tracking URI set::

    model = mlflow.pyfunc.load_model("models:/scraiber-minerals@champion")
    mask = model.predict(image.astype("float32"))   # (H, W) raw BSE grey levels -> (H, W) uint8 classes

The input is one raw 2-D grey image (any size: it is tiled); the
output is the most probable class per pixel, indices into ``config.json``'s ``classes``.
MLflow enforces the signature's dtype, so pass ``image.astype("float32")`` (exact for 8- and
16-bit grey levels; the model normalises by the image's own percentiles anyway).
``model_config`` (``mlflow.pyfunc.load_model(uri, model_config={...})``) picks ``device``
(``cpu`` by default), ``runtime`` (``eager`` by default: no ONNX export at load time) and ``threads``.
Loading needs the ``scraiber`` package installed (the code file imports it); its
third-party requirements are pinned in ``requirements.txt``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import torch
from mlflow.pyfunc import PythonModel

from active_learning.model_files import save_model_dir

CODE_FILE = Path(__file__).with_name("mlflow_model_code.py")
FCN_ARTIFACT = "fcn"
DEFAULT_MODEL_CONFIG = {"device": "cpu", "runtime": "eager", "threads": 0}
_REQUIREMENTS = (
    "torch",
    "segmentation-models-pytorch",
    "timm",
    "safetensors",
    "numpy",
    "scipy",
    "scikit-image",
    "mlflow",
)


def is_fcn_config(model_config: Mapping[str, Any]) -> bool:
    """True for an FCN construction config (:class:`ml_backend.fcn.model_config.FCNConfig`'s dict)."""
    from ml_backend.fcn.model_config import FORMAT

    return model_config.get("format") == FORMAT


def input_example(size: int = 64) -> np.ndarray:
    """A small deterministic grey image (a synthetic field, 16-bit grey levels as float32) showing the input."""
    from ml_backend.synthetic import generate_section

    image = generate_section(size, seed=0).image.astype(np.float32)
    return np.round(image / max(float(image.max()), 1.0) * 60000.0).astype(np.float32)


def signature() -> Any:
    """Input: one (H, W) grey image as float32 (any grey-level range: 8- or 16-bit values cast exactly);
    output: (H, W) uint8 class indices (MLflow tensor specs; MLflow enforces the dtype)."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1))]),
        outputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, -1))]),
    )


def _requirements() -> list[str]:
    pins = []
    for name in _REQUIREMENTS:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            pins.append(name)
    return pins


def save_pyfunc_model(path: Path, state_dict: Mapping[str, torch.Tensor], model_config: Mapping[str, Any]) -> Path:
    """Write an FCN as an MLflow pyfunc model folder at ``path`` (must not exist); return ``path``.

    Raises:
        ValueError: if ``model_config`` is not an FCN construction config.
    """
    if not is_fcn_config(model_config):
        raise ValueError(
            f"an MLflow pyfunc model needs an FCN construction config, got format {model_config.get('format')!r}"
        )
    with tempfile.TemporaryDirectory(prefix="scraiber-fcn-") as tmp:
        folder = save_model_dir(Path(tmp) / FCN_ARTIFACT, state_dict, model_config)
        mlflow.pyfunc.save_model(
            path=str(path),
            python_model=str(CODE_FILE),
            artifacts={FCN_ARTIFACT: str(folder)},
            model_config=dict(DEFAULT_MODEL_CONFIG),
            signature=signature(),
            input_example=input_example(),
            pip_requirements=_requirements(),
            metadata={"scraiber_classes": list(model_config["classes"]), "scraiber_format": "scraiber-fcn"},
        )
    return path


class MineralSegmentationModel(PythonModel):
    """The pyfunc model: raw grey image -> uint8 class mask, with :class:`ml_backend.fcn.FCNPredictor`."""

    def load_context(self, context: Any) -> None:
        """Rebuild the network from ``artifacts/fcn`` (safetensors + JSON config)."""
        from ml_backend.fcn.model_files import load_fcn
        from ml_backend.fcn.segmenter import FCNPredictor

        options = {**DEFAULT_MODEL_CONFIG, **(context.model_config or {})}
        loaded = load_fcn(Path(context.artifacts[FCN_ARTIFACT]))
        self.classes = list(loaded.config.classes)
        self.predictor = FCNPredictor(
            loaded.network(), loaded.config, device=str(options["device"]), runtime=str(options["runtime"]),
            threads=int(options["threads"]), cache_key=loaded.sha256,
        )  # fmt: skip

    def predict(self, context, model_input, params=None):  # no type hints: MLflow would read them as a schema
        """(H, W) uint8 most probable class per pixel of one (H, W) raw grey image.

        Raises:
            ValueError: if the input is not one 2-D numeric image.
        """
        image = np.asarray(model_input.to_numpy() if hasattr(model_input, "to_numpy") else model_input)
        if image.ndim == 3 and image.shape[0] == 1:
            image = image[0]
        if image.ndim != 2 or 0 in image.shape or image.dtype.kind not in "uif":
            raise ValueError(
                f"expected one 2-D grey image, got an array of shape {image.shape} and dtype {image.dtype}"
            )
        return self.predictor.predict(image, reduce=_argmax)


def _argmax(block: np.ndarray) -> np.ndarray:
    return np.argmax(block, axis=0).astype(np.uint8)
