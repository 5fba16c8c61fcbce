"""A model on disk: ``weights.safetensors`` + ``config.json`` in one folder (no pickle anywhere).

The construction config sits beside the weights so any logged version can be rebuilt
without the code that trained it knowing about MLflow. An FCN logged as an MLflow Model
(:mod:`active_learning.mlflow_model`) keeps that folder as ``artifacts/fcn`` of the MLflow
model folder; :func:`weights_folder` finds it in either layout.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

WEIGHTS_FILE = "weights.safetensors"
CONFIG_FILE = "config.json"
PYFUNC_WEIGHTS = Path("artifacts") / "fcn"  # where an MLflow pyfunc model folder keeps them


def save_model_dir(directory: Path, state_dict: Mapping[str, torch.Tensor], model_config: Mapping[str, Any]) -> Path:
    """Write ``state_dict`` and ``model_config`` into ``directory`` (created) and return it.

    Raises:
        ValueError: if a value is not a tensor or the config is not JSON-serialisable.
    """
    for name, tensor in state_dict.items():
        if not isinstance(tensor, torch.Tensor):
            raise ValueError(f"state_dict entry {name!r} is a {type(tensor).__name__}, not a torch.Tensor")
    try:
        config_text = json.dumps(dict(model_config), indent=2, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"model_config must be plain JSON (str, numbers, lists, dicts): {exc}") from exc
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {name: tensor.detach().to("cpu").contiguous() for name, tensor in state_dict.items()}
    save_file(tensors, str(directory / WEIGHTS_FILE), metadata={"format": "pt"})
    (directory / CONFIG_FILE).write_text(config_text + "\n", encoding="utf-8")
    return directory


def load_model_dir(directory: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read the state dict (on CPU, via safetensors) and the construction config from ``directory``.

    Raises:
        FileNotFoundError: naming the missing file.
    """
    for name in (WEIGHTS_FILE, CONFIG_FILE):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"model folder {directory} has no {name}")
    state_dict = load_file(str(directory / WEIGHTS_FILE), device="cpu")
    config = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
    return state_dict, config


def weights_folder(directory: Path) -> Path:
    """The folder holding ``weights.safetensors`` + ``config.json``: ``directory`` itself, or its
    ``artifacts/fcn`` when ``directory`` is an MLflow pyfunc model folder (has an ``MLmodel`` file)."""
    directory = Path(directory)
    if not (directory / WEIGHTS_FILE).is_file() and (directory / "MLmodel").is_file():
        return directory / PYFUNC_WEIGHTS
    return directory
