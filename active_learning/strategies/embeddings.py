"""Task embeddings for diversity: the FCN encoder's deepest features, and BADGE gradient embeddings.

* :func:`encoder_embedding_map`: the last encoder stage of the FCN (stride 32; 1280 channels for
  MobileNetV2) over a whole image, so a tile's embedding (:func:`pooled_embedding`, the mean over
  its cells) sees the tile in its field's context. What the network has learnt to tell apart,
  unlike grey-level histograms.
* :func:`gradient_embedding`: BADGE's gradient of the cross-entropy with respect to a linear head
  on per-pixel features ``h`` (the decoder's last feature maps), with the predicted class as the
  label: ``mean_pixels (p - onehot(argmax p)) outer [h, 1]``. Its length grows with uncertainty.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import numpy as np


def encoder_embedding_map(model_path: str | Path, image: np.ndarray) -> np.ndarray:
    """(E, ceil(H / 32), ceil(W / 32)) float32 deepest encoder features of a raw image (eager torch, CPU, on the
    process's torch threads)."""
    import torch

    from ml_backend.fcn.model_config import network_input
    from ml_backend.fcn.model_files import load_fcn

    loaded = load_fcn(model_path)
    network = loaded.network()
    x = network_input(image.astype(np.float32), loaded.config.intensity(image))
    h, w = x.shape
    x = np.pad(x, ((0, -h % 32), (0, -w % 32)), mode="symmetric")
    with torch.inference_mode():
        # torch types a submodule attribute as ``Tensor | Module``
        encoder = cast("torch.nn.Module", network.encoder)
        stages = encoder(torch.from_numpy(np.ascontiguousarray(x))[None, None])
    return stages[-1][0].float().numpy()


def pooled_embedding(
    feature_map: np.ndarray, box: tuple[int, int, int, int], image_shape: tuple[int, int]
) -> np.ndarray:
    """(E,) mean of ``feature_map`` over the cells covering the pixel box ``(top, left, height, width)``."""
    top, left, height, width = box

    def span(start: int, size: int, cells: int, pixels: int) -> slice:
        first = start * cells // pixels
        return slice(first, max(first + 1, -(-(start + size) * cells // pixels)))

    rows = span(top, height, feature_map.shape[1], image_shape[0])
    cols = span(left, width, feature_map.shape[2], image_shape[1])
    return feature_map[:, rows, cols].mean(axis=(1, 2))


def gradient_embedding(probs: np.ndarray, features: np.ndarray) -> np.ndarray:
    """(C * (D + 1),) float32 BADGE embedding from (C, N) probabilities and (D, N) per-pixel features.

    Raises:
        ValueError: if the pixel counts differ.
    """
    if probs.ndim != 2 or features.ndim != 2 or probs.shape[1] != features.shape[1]:
        raise ValueError(f"need (C, N) probabilities and (D, N) features, got {probs.shape} and {features.shape}")
    residual = probs.astype(np.float64).copy()
    residual[np.argmax(probs, axis=0), np.arange(probs.shape[1])] -= 1.0
    h = np.vstack([features.astype(np.float64), np.ones((1, features.shape[1]))])
    return (residual @ h.T / probs.shape[1]).ravel().astype(np.float32)
