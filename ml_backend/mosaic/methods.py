"""Segmentation methods prepared for a whole section: fit once on a sample, then predict windows.

Whatever a segmenter derives from the whole image (the grey-level range, and for the
unsupervised segmenter the mixture and the names of its clusters) is computed once from a
sample of the mosaic (:meth:`ml_backend.mosaic.reader.MosaicReader.sample`), so that every
window is normalised and classified the same way and windows meet without seams. The
result is a :class:`SectionModel`: a function from one raw window (with ``halo`` px of
context) to class probabilities, plus the window layout it wants.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from importlib import import_module
from typing import Any, cast

import numpy as np

from label_config.catalogue import Catalogue
from ml_backend.segmenters import create_segmenter


@dataclass(frozen=True)
class SectionModel:
    """A segmentation method ready to run window by window over one section.

    Attributes:
        predict: Raw window with ``halo`` px of context -> ``(C, h, w)`` probabilities
            (numpy, or a torch tensor on the method's device) of the same size.
        halo: Context px read around every window and cropped from the result.
        tile: Window side in px.
        overlap: Px shared by neighbouring windows (blended).
        version: The segmenter's ``model_version``.
        info: JSON-ready facts for the mask sidecar (intensity range, cluster names...).
    """

    predict: Callable[[np.ndarray], Any]
    halo: int
    tile: int
    overlap: int
    version: str
    info: dict[str, Any] = field(default_factory=dict)


def unsupervised_model(catalogue: Catalogue, sample: np.ndarray, device: str = "cpu", **options: Any) -> SectionModel:
    """Unsupervised clusters fitted once on ``sample``; each window is classified by the fitted model.

    The windows are the segmenter's own tiles (``config.tile``, ``config.overlap``,
    ``config.halo``), so a section equals what the in-memory segmenter gives when the
    sample is the whole image.

    Raises:
        ValueError: for a device other than ``cpu`` (or ``auto``) or options the segmenter does not take.
    """
    if device not in ("cpu", "auto"):
        raise ValueError(f"the unsupervised method runs on the CPU only, not on {device!r}")
    from ml_backend.segmenters.unsupervised import UnsupervisedSegmenter

    segmenter = create_segmenter("unsupervised", catalogue, **options)
    assert isinstance(segmenter, UnsupervisedSegmenter)  # the class registered as "unsupervised"
    fitted = segmenter.fit(sample)
    config = segmenter.config
    info = {
        "intensity_range": [fitted.intensity.low, fitted.intensity.high],
        "clusters": fitted.naming.table(catalogue),
    }
    return SectionModel(
        partial(fitted.tile_proba, config=config), config.halo, config.tile, config.overlap, segmenter.version, info
    )


def fcn_model(catalogue: Catalogue, sample: np.ndarray, device: str = "cpu", **options: Any) -> SectionModel:
    """The FCN with the grey-level range of ``sample``; each window through the network.

    On the CPU windows go through :class:`ml_backend.fcn.FCNPredictor` (its measured best
    runtime). On CUDA the network runs here and returns probabilities as tensors on the
    GPU, so that the blending stays on the device and only uint8 classes come back
    (copying float probabilities to the host costs more than the network on an H100).

    Args:
        catalogue: The classes (they must be the model's).
        sample: A representative sample of the section.
        device: ``cpu``, ``cuda``, ``cuda:N`` or ``auto``.
        **options: ``model`` (folder or weights file; default the shipped model) and the
            other options of :class:`ml_backend.fcn.FCNSegmenter`.
    """
    from ml_backend.fcn import FCNSegmenter

    segmenter = FCNSegmenter(catalogue, device=device, **options)
    predictor = segmenter.predictor
    intensity = predictor.config.intensity(sample)
    if predictor.device.type == "cuda":
        predict = _on_device(segmenter, intensity)
    else:

        def predict(window: np.ndarray) -> np.ndarray:
            return predictor.predict_tiles(window[None], intensity)[0]

    info = {"intensity_range": [intensity.low, intensity.high], "model": segmenter.model_path.name}
    return SectionModel(predict, predictor.halo, predictor.tile, predictor.overlap, segmenter.version, info)


def _on_device(segmenter: Any, intensity: Any) -> Callable[[np.ndarray], Any]:
    """Window -> (C, h, w) probabilities as a tensor on the segmenter's GPU (its runtime's
    memory format and bf16 autocast), sides mirror-padded to the networks' stride of 32."""
    import torch

    from ml_backend.fcn import load_fcn, network_input

    predictor = segmenter.predictor
    device = predictor.device
    layout = torch.contiguous_format if predictor.runtime == "eager" else torch.channels_last
    # cast: torch's Module.to overloads omit device with memory_format, a combination it accepts at run time
    network = cast(Any, load_fcn(segmenter.model_path).network()).to(device=device, memory_format=layout)

    def predict(window: np.ndarray) -> torch.Tensor:
        h, w = window.shape
        x = torch.from_numpy(network_input(window, intensity)).to(device)[None, None]
        x = torch.nn.functional.pad(x, (0, -w % 32, 0, -h % 32), mode="reflect").contiguous(memory_format=layout)
        with torch.inference_mode(), torch.autocast(device.type, torch.bfloat16, enabled=predictor.runtime == "bf16"):
            logits = network(x)
        return torch.softmax(logits[0, :, :h, :w].float(), dim=0)

    return predict


_REGISTRY: dict[str, str] = {
    "fcn": "ml_backend.mosaic.methods:fcn_model",
    "unsupervised": "ml_backend.mosaic.methods:unsupervised_model",
}


def method_names() -> list[str]:
    """Methods that can segment whole sections, sorted."""
    return sorted(_REGISTRY)


def prepare_method(
    name: str, catalogue: Catalogue, sample: np.ndarray, device: str = "cpu", **options: Any
) -> SectionModel:
    """The method ``name`` prepared on ``sample`` (a representative sample of the section) for ``device``.

    Raises:
        ValueError: for an unknown method (listing the valid ones) or options it does not take.
    """
    try:
        module, _, attribute = _REGISTRY[name].partition(":")
    except KeyError:
        raise ValueError(f"unknown segmentation method {name!r}; valid methods: {', '.join(method_names())}") from None
    return getattr(import_module(module), attribute)(catalogue, sample, device=device, **options)
