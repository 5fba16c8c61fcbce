"""FCN weights on disk: safetensors + JSON construction config, never pickle.

Two layouts are read and written:

* a file pair ``NAME.safetensors`` + ``NAME.json`` (the shipped models in ``ml_backend/weights``);
* a folder holding ``weights.safetensors`` + ``config.json`` (what MLflow runs log, see
  ``active_learning.model_files``).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from label_config.catalogue import Catalogue
from ml_backend.fcn.model_config import FCNConfig

FOLDER_WEIGHTS = "weights.safetensors"
FOLDER_CONFIG = "config.json"
SHIPPED_DIR = Path(__file__).resolve().parent.parent / "weights"
_PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".bin")
#: Entry point group of model URI resolvers: scheme -> ``resolve(uri, settings) -> Path``
#: (``models`` and ``runs`` are MLflow's, registered by ``active_learning``).
URI_RESOLVERS = "scraiber.model_uris"
_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]+):/")


@dataclass(frozen=True)
class LoadedModel:
    """Weights and construction config read from disk.

    Attributes:
        state_dict: Tensors on CPU.
        config: The construction config.
        sha256: Hex digest of the weights file (identifies the version).
        path: The weights file.
    """

    state_dict: dict[str, torch.Tensor]
    config: FCNConfig
    sha256: str
    path: Path

    def network(self) -> torch.nn.Module:
        """The network rebuilt from the config with these weights, in eval mode, on CPU."""
        net = self.config.build()
        net.load_state_dict(self.state_dict)
        return net.eval()


def model_paths(path: str | Path) -> tuple[Path, Path]:
    """(weights file, config file) of a model: a folder (or a file in it), a ``.safetensors`` or a ``.json`` path.

    Raises:
        ValueError: for a pickle-format file name (``.pt``, ``.pth``, ...) or another suffix.
    """
    path = Path(path)
    if path.is_dir():
        return path / FOLDER_WEIGHTS, path / FOLDER_CONFIG
    if path.name in (FOLDER_WEIGHTS, FOLDER_CONFIG):  # a file of the folder layout
        return path.parent / FOLDER_WEIGHTS, path.parent / FOLDER_CONFIG
    suffix = path.suffix.lower()
    if suffix in _PICKLE_SUFFIXES:
        raise ValueError(f"{path}: pickled checkpoints are refused; give safetensors weights with a JSON config")
    if suffix not in (".safetensors", ".json"):
        raise ValueError(f"{path}: expected a model folder, a .safetensors file or its .json config")
    return path.with_suffix(".safetensors"), path.with_suffix(".json")


def save_fcn(path: str | Path, state_dict: Mapping[str, torch.Tensor], config: FCNConfig) -> Path:
    """Write weights and config as a folder (``path`` without suffix) or a file pair (``path.safetensors``).

    Returns:
        The weights file written.
    """
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        weights, config_file = path, path.with_suffix(".json")
    else:
        weights, config_file = path / FOLDER_WEIGHTS, path / FOLDER_CONFIG
    weights.parent.mkdir(parents=True, exist_ok=True)
    tensors = {name: tensor.detach().to("cpu").contiguous() for name, tensor in state_dict.items()}
    save_file(tensors, str(weights), metadata={"format": "pt"})
    config_file.write_text(json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return weights


def load_fcn(path: str | Path) -> LoadedModel:
    """Read an FCN saved by :func:`save_fcn` (or logged to MLflow).

    Raises:
        FileNotFoundError: naming the missing weights or config file.
        ValueError: for a pickle file, a file that is not safetensors, or a bad config.
    """
    weights, config_file = model_paths(path)
    for name in (weights, config_file):
        if not name.is_file():
            raise FileNotFoundError(f"FCN model {path}: missing {name}")
    data = weights.read_bytes()
    try:
        state_dict = load_file(str(weights), device="cpu")
    except SafetensorError as exc:
        raise ValueError(
            f"{weights} is not a safetensors file ({exc}); pickled checkpoints are refused, "
            "convert them with safetensors.torch.save_file"
        ) from None
    try:
        raw = json.loads(config_file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{config_file}: not valid JSON ({exc})") from None
    config = FCNConfig.from_dict(raw, source=str(config_file))
    return LoadedModel(state_dict, config, hashlib.sha256(data).hexdigest(), weights)


def shipped_model_path(catalogue: Catalogue, directory: Path = SHIPPED_DIR) -> Path | None:
    """The shipped weights (``ml_backend/weights/*.safetensors``) whose classes are ``catalogue``'s, or None.

    A model matches only if its class names are the catalogue's names in the same order.
    Several matches: the first by file name.
    """
    for config_file in sorted(directory.glob("*.json")):
        weights = config_file.with_suffix(".safetensors")
        try:
            classes = json.loads(config_file.read_text(encoding="utf-8")).get("classes")
        except (OSError, json.JSONDecodeError, AttributeError):
            continue
        if weights.is_file() and classes == list(catalogue.names):
            return weights
    return None


def resolve_model_uri(uri: str, settings: Any = None) -> Path:
    """A local model path from a path or a URI such as ``models:/NAME@ALIAS`` or ``runs:/RUN_ID/model``.

    URIs are resolved (downloaded) by the resolver registered for their scheme in the
    ``scraiber.model_uris`` entry point group, with ``settings`` (MLflow URI, data dir).

    Raises:
        ValueError: for a scheme no resolver handles (listing those that exist).
        FileNotFoundError: for a local path that does not exist.
    """
    match = _SCHEME.match(uri)
    if match:
        resolvers = {ep.name: ep for ep in entry_points(group=URI_RESOLVERS)}
        if match.group(1) not in resolvers:
            known = ", ".join(f"{name}:/" for name in sorted(resolvers)) or "none installed"
            raise ValueError(f"no resolver for model URI {uri!r}; known schemes: {known}; or give a local path")
        return Path(resolvers[match.group(1)].load()(uri, settings))
    path = Path(uri).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"model {uri}: no such file or folder")
    return path
