"""Monte Carlo dropout for a trained FCN: several stochastic predictions of one image.

The smp networks scrAiber trains (U-Net, FPN, DeepLabV3+) have no dropout in the
encoder, and a U-Net none in its decoder either. What they all have is a segmentation
head: one convolution on the decoder's output. Dropping whole channels of that output
(``Dropout2d``, rescaled by ``1 / (1 - p)``) before the head, with an independent mask per
sample, gives stochastic predictions without retraining (FPN trains with exactly this
dropout, ``decoder_dropout``). Encoder and decoder run once per tile; only the head runs
``n`` times, so ``n`` samples cost little more than one prediction.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import cast

import numpy as np
import torch

from ml_backend.fcn.model_config import FCNConfig, network_input
from ml_backend.fcn.model_files import FOLDER_WEIGHTS, load_fcn
from ml_backend.normalise import IntensityRange
from ml_backend.tiling import predict_tiled

_STRIDE = 32


@lru_cache(maxsize=2)
def _network(weights: str, device: str) -> tuple[torch.nn.Module, FCNConfig]:
    """A torch copy of a saved network (the served one may be ONNX), kept per process."""
    path = Path(weights)
    loaded = load_fcn(path.parent if path.name == FOLDER_WEIGHTS else path)  # a folder's weights file: read the folder
    return loaded.network().to(device), loaded.config


def _tile_fn(
    network: torch.nn.Module,
    intensity: IntensityRange,
    n: int,
    dropout: float,
    generator: torch.Generator,
    device: torch.device,
):
    # torch types a submodule attribute as ``Tensor | Module``
    head = cast(torch.nn.Module, network.segmentation_head)

    def run(batch: np.ndarray) -> np.ndarray:
        x = network_input(np.asarray(batch), intensity)
        h, w = x.shape[-2:]
        x = np.pad(x, ((0, 0), (0, -h % _STRIDE), (0, -w % _STRIDE)), mode="symmetric")
        tensor = torch.from_numpy(np.ascontiguousarray(x)).unsqueeze(1).to(device)
        with torch.inference_mode():
            decoded = cast(torch.nn.Module, network.decoder)(cast(torch.nn.Module, network.encoder)(tensor))
            samples = []
            for _ in range(n):
                keep = torch.rand(decoded.shape[:2] + (1, 1), generator=generator, device=device) >= dropout
                logits = head(decoded * keep.to(decoded.dtype) / (1.0 - dropout))
                samples.append(torch.softmax(logits.float(), dim=1)[:, :, :h, :w])
        return torch.cat(samples, dim=1).cpu().numpy()  # (B, n * C, h, w), sample-major

    return run


def dropout_samples(
    weights: str | Path,
    image: np.ndarray,
    n: int,
    dropout: float = 0.2,
    seed: int = 0,
    device: torch.device | str = "cpu",
    tile: int | None = None,
    overlap: int | None = None,
) -> np.ndarray:
    """(n, C, H, W) float32 probabilities of ``n`` dropout passes of the FCN saved at ``weights``.

    Args:
        weights: The model's folder, weights file or config (``FCNSegmenter.model_path``).
        image: Raw 2-D grey image.
        n: Number of samples (>= 1).
        dropout: Probability of dropping a decoder channel, in [0, 1); 0 gives ``n``
            identical deterministic predictions.
        seed: Seed of the dropout masks: the same seed gives the same samples.
        device: Torch device.
        tile, overlap: Tiling (default: the model config's).

    Raises:
        ValueError: for ``n < 1`` or ``dropout`` outside [0, 1).
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"number of dropout samples must be a positive integer, got {n!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout probability must be in [0, 1), got {dropout}")
    device = torch.device(device)
    network, config = _network(str(weights), str(device))
    network.eval()
    generator = torch.Generator(device=device)
    generator.manual_seed(int(seed))
    n_classes = len(config.classes)
    intensity = config.intensity(image)
    blended = predict_tiled(
        _tile_fn(network, intensity, int(n), float(dropout), generator, device),
        image,
        int(n) * n_classes,
        tile=tile or config.tile,
        overlap=config.overlap if overlap is None else overlap,
        halo=config.halo,
        batch_size=1,
    )
    return blended.reshape(int(n), n_classes, *image.shape)
