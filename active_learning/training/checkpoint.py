"""Training checkpoints without pickle: tensors in safetensors, everything else in JSON.

A checkpoint is a folder ``<checkpoint_dir>/last`` with ``model.safetensors`` (network),
``optimizer.safetensors`` (optimiser state tensors + RNG states) and ``state.json``
(step, optimiser hyper-parameters, history, best result, the training config). It is
written to a temporary folder and renamed into place, so a crash never leaves half a
checkpoint. The learning-rate schedule is a pure function of the step, so the step is its
whole state.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

LAST = "last"
_MODEL = "model.safetensors"
_TENSORS = "optimizer.safetensors"
_STATE = "state.json"


@dataclass
class TrainState:
    """What the loop needs to continue: the step, the curves and the best validation so far."""

    step: int = 0
    losses: list[float] = field(default_factory=list)
    validations: list[dict[str, Any]] = field(default_factory=list)
    best_miou: float = -1.0
    best_step: int = -1
    bad_rounds: int = 0


def _split_optimizer(state_dict: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, Any] = {}
    for pid, values in state_dict["state"].items():
        plain[str(pid)] = {}
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"opt.{pid}.{name}"] = value.detach().cpu().contiguous()
            else:
                plain[str(pid)][name] = value
    return tensors, {"state": plain, "param_groups": state_dict["param_groups"]}


def _join_optimizer(tensors: dict[str, torch.Tensor], plain: dict) -> dict:
    state: dict[int, dict[str, Any]] = {int(pid): dict(values) for pid, values in plain["state"].items()}
    for key, tensor in tensors.items():
        if key.startswith("opt."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = tensor
    return {"state": state, "param_groups": plain["param_groups"]}


def save_checkpoint(
    directory: Path,
    network: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    state: TrainState,
    config: dict[str, Any],
) -> Path:
    """Write ``directory/last`` atomically and return it."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=directory, prefix=".last-"))
    try:
        save_file({k: v.detach().cpu().contiguous() for k, v in network.state_dict().items()}, str(tmp / _MODEL))
        tensors, plain = _split_optimizer(optimizer.state_dict())
        tensors["rng.torch"] = torch.get_rng_state()
        if torch.cuda.is_available():
            for index, rng in enumerate(torch.cuda.get_rng_state_all()):
                tensors[f"rng.cuda.{index}"] = rng
        save_file(tensors, str(tmp / _TENSORS))
        body = {"train_state": state.__dict__, "optimizer": plain, "config": config}
        (tmp / _STATE).write_text(json.dumps(body, indent=1, allow_nan=True) + "\n", encoding="utf-8")
        final = directory / LAST
        if final.exists():
            old = directory / f".old-{os.getpid()}"
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return directory / LAST


def has_checkpoint(directory: Path) -> bool:
    """Whether ``directory/last`` holds a complete checkpoint."""
    return all((directory / LAST / name).is_file() for name in (_MODEL, _TENSORS, _STATE))


def load_checkpoint(
    directory: Path, network: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[TrainState, dict[str, Any]]:
    """Restore network, optimiser and RNG states from ``directory/last``; return the loop state and saved config.

    Raises:
        FileNotFoundError: if there is no complete checkpoint.
    """
    if not has_checkpoint(directory):
        raise FileNotFoundError(f"no complete checkpoint in {directory / LAST}")
    folder = directory / LAST
    body = json.loads((folder / _STATE).read_text(encoding="utf-8"))
    device = next(network.parameters()).device
    network.load_state_dict(load_file(str(folder / _MODEL), device=str(device)))
    tensors = load_file(str(folder / _TENSORS), device="cpu")
    optimizer.load_state_dict(_join_optimizer(tensors, body["optimizer"]))
    torch.set_rng_state(tensors["rng.torch"])
    cuda_keys = sorted((k for k in tensors if k.startswith("rng.cuda.")), key=lambda k: int(k.rsplit(".", 1)[1]))
    cuda_states = [tensors[key] for key in cuda_keys]
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states)
    return TrainState(**body["train_state"]), body["config"]
