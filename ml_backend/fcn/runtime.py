"""Ways to run an FCN on a batch of tiles: eager torch, channels-last, bf16, ONNX Runtime (fp32, int8).

Every runner maps a ``(B, h, w)`` float32 batch of network inputs (see
:func:`~ml_backend.fcn.model_config.network_input`) to ``(B, C, h, w)`` float32 class
probabilities. Tiles whose sides are not multiples of 32 (the networks' output stride)
are mirror-padded and cropped back.
"""

from __future__ import annotations

import io
import logging
import warnings
from collections.abc import Callable, Iterable
from typing import Any, cast

import numpy as np
import torch

RUNTIMES = ("eager", "channels-last", "bf16", "onnx", "onnx-int8")
_STRIDE = 32

Runner = Callable[[np.ndarray], np.ndarray]


def _pad_to_stride(batch: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Mirror-pad the tile sides up to multiples of 32; return the padded batch and the old sides."""
    h, w = batch.shape[-2:]
    ph, pw = -h % _STRIDE, -w % _STRIDE
    if ph or pw:
        batch = np.pad(batch, ((0, 0), (0, ph), (0, pw)), mode="symmetric")
    return batch, h, w


def check_runtime(name: str) -> str:
    """``name`` if it is a known runtime.

    Raises:
        ValueError: listing the valid runtimes.
    """
    if name not in RUNTIMES:
        raise ValueError(f"unknown FCN runtime {name!r}; valid runtimes: {', '.join(RUNTIMES)}")
    return name


def torch_runner(network: torch.nn.Module, device: torch.device, runtime: str = "eager") -> Runner:
    """A runner on ``network`` itself (no copy; it is put in eval mode on ``device``).

    ``channels-last`` stores activations NHWC (oneDNN's preferred layout on CPU);
    ``bf16`` adds bfloat16 autocast (AMX/AVX-512-BF16 on recent Intel CPUs, tensor cores on GPUs).
    """
    check_runtime(runtime)
    if runtime.startswith("onnx"):
        raise ValueError(f"runtime {runtime!r} is not a torch runtime; use onnx_runner")
    memory_format = torch.contiguous_format if runtime == "eager" else torch.channels_last
    # cast: torch's Module.to overloads omit device with memory_format, a combination it accepts at run time
    cast(Any, network.eval()).to(device=device, memory_format=memory_format)
    autocast = runtime == "bf16"

    def run(batch: np.ndarray) -> np.ndarray:
        padded, h, w = _pad_to_stride(np.asarray(batch, dtype=np.float32))
        x = torch.from_numpy(np.ascontiguousarray(padded)).unsqueeze(1).to(device)
        x = x.contiguous(memory_format=memory_format)
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = network(x)
        probs = torch.softmax(logits.float(), dim=1)[:, :, :h, :w]
        return probs.cpu().numpy()

    return run


def cpu_has_bf16() -> bool:
    """Whether oneDNN runs bfloat16 natively on this CPU (AVX-512 BF16 / AMX); emulated bf16 is slower."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def feature_runner(network: torch.nn.Module, device: torch.device) -> Runner:
    """A runner returning class probabilities and the decoder's last feature maps, stacked on channels.

    Output ``(B, C + D, h, w)``: ``C`` softmax probabilities, then the ``D`` channels the
    segmentation head reads (smp networks' ``segmentation_head`` input): what the network
    "sees" at each pixel, for a pixel classifier on top of it (the fast learner). Runs in
    bfloat16 autocast where the hardware has it (measured on a 2-core AVX-512-BF16 CPU,
    shipped U-Net, 1024 x 1024 px: 1.1 s against 2.9 s channels-last fp32).
    """
    # cast: torch's Module.to overloads omit device with memory_format, a combination it accepts at run time
    cast(Any, network.eval()).to(device=device, memory_format=torch.channels_last)
    autocast = device.type == "cuda" or cpu_has_bf16()
    captured: list[torch.Tensor] = []
    head = network.segmentation_head
    assert isinstance(head, torch.nn.Module)  # smp networks' segmentation head is a submodule
    head.register_forward_hook(lambda _module, inputs, _output: captured.append(inputs[0]))

    def run(batch: np.ndarray) -> np.ndarray:
        padded, h, w = _pad_to_stride(np.asarray(batch, dtype=np.float32))
        x = torch.from_numpy(np.ascontiguousarray(padded)).unsqueeze(1).to(device)
        captured.clear()
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = network(x.contiguous(memory_format=torch.channels_last))
        features = captured.pop()
        if features.shape[-2:] != logits.shape[-2:]:  # heads that upsample (DeepLabV3+): follow them
            features = torch.nn.functional.interpolate(features, size=logits.shape[-2:], mode="bilinear")
        out = torch.cat([torch.softmax(logits.float(), dim=1), features.float()], dim=1)[:, :, :h, :w]
        return out.cpu().numpy()

    return run


class _Softmax(torch.nn.Module):
    def __init__(self, network: torch.nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.network(x), dim=1)


def export_onnx(network: torch.nn.Module, tile: int = 256) -> bytes:
    """The network (with softmax) as an ONNX model with dynamic batch and tile sides."""
    # cast: torch's Module.to overloads omit device with memory_format, a combination it accepts at run time
    network = cast(Any, network.eval()).to("cpu", memory_format=torch.contiguous_format)
    buffer = io.BytesIO()
    example = torch.zeros(1, 1, tile, tile)
    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            # cast: torch's annotation of f omits the file objects its TorchScript exporter (dynamo=False) writes to
            _Softmax(network), (example,), cast(Any, buffer), input_names=["x"], output_names=["p"],
            dynamic_axes={"x": axes, "p": axes}, opset_version=17, dynamo=False,
        )  # fmt: skip
    return buffer.getvalue()


def quantise_onnx(model: bytes, calibration: Iterable[np.ndarray]) -> bytes:
    """Static int8 quantisation (QDQ, per-channel weights) of an ONNX model, calibrated on input batches."""
    import tempfile
    from pathlib import Path

    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"x": b[:, None].astype(np.float32)} for b in calibration])

        def get_next(self) -> dict | None:
            return next(self.batches, None)

    root = logging.getLogger()
    was_disabled, root.disabled = root.disabled, True  # it advises pre-processing: measured, no gain here
    try:
        with tempfile.TemporaryDirectory(prefix="scraiber-onnx-") as tmp:
            source, target = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
            source.write_bytes(model)
            quantize_static(
                str(source), str(target), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            )  # fmt: skip
            return target.read_bytes()
    finally:
        root.disabled = was_disabled


def onnx_runner(model: bytes, threads: int) -> Runner:
    """A runner on ONNX Runtime's CPU provider with ``threads`` intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    def run(batch: np.ndarray) -> np.ndarray:
        padded, h, w = _pad_to_stride(np.asarray(batch, dtype=np.float32))
        probs = session.run(None, {"x": np.ascontiguousarray(padded[:, None])})[0]
        return np.ascontiguousarray(probs[:, :, :h, :w], dtype=np.float32)

    return run
