"""FCN inference: tiled, batched, blended prediction of class probabilities for any image size.

:class:`FCNPredictor` runs a network (injected, or rebuilt from saved weights) over a raw
image: one grey-level range for the whole image, overlapping tiles blended with
raised-cosine weights (``ml_backend.tiling``), batches of tiles through the chosen runtime.
:class:`FCNSegmenter` is the registered segmenter (``create_segmenter("fcn", catalogue,
model=PATH)``) on top of it. For whole sections too large for memory, call
:func:`segment_array_tiles` on a memory-mapped array: it keeps only one band of tile
probabilities in memory and writes uint8 classes.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from label_config.catalogue import Catalogue
from ml_backend.fcn.model_config import FCNConfig, network_input
from ml_backend.fcn.model_files import load_fcn, shipped_model_path
from ml_backend.fcn.runtime import check_runtime, export_onnx, feature_runner, onnx_runner, quantise_onnx, torch_runner
from ml_backend.normalise import IntensityRange
from ml_backend.segmenters.base import Segmenter
from ml_backend.tiling import predict_tiled

# Kept by measurement (``scraiber bench fcn``, README section "FCN"), shipped unet-mobilenet_v2,
# one 1024 x 1024 image end to end on this project's 2-core Xeon (AVX-512 VNNI, AMX), quietest
# of three runs on the shared machine: eager 4.45 s, channels-last 1.55 s, bf16 autocast 2.09 s,
# ONNX Runtime fp32 1.25 s, ONNX Runtime static int8 0.82 s (fastest in all three runs); every
# class IoU within 0.003 of eager's. ONNX Runtime dynamic int8 (ConvInteger) was 2x slower than
# fp32. int8 is kept where the CPU has VNNI (elsewhere u8 x s8 products can saturate: fp32 ONNX
# Runtime is used).
# On an H100 eager fp32 was fastest (92 ms/MPix vs 106 channels-last, 110 bf16, 4096^2 px).
CPU_RUNTIME = "onnx-int8"
CPU_RUNTIME_WITHOUT_VNNI = "onnx"
CUDA_RUNTIME = "eager"
_ONNX_CACHE: dict[tuple[str, str], bytes] = {}  # (weights sha256, runtime) -> ONNX model, per process
_ONNX_CACHE_SIZE = 4


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def use_torch_threads(threads: int) -> None:
    """Set torch's CPU threads for the whole process (0: all cores); called once where a process or job starts."""
    torch.set_num_threads(threads or available_cores())


def cpu_has_vnni() -> bool:
    """Whether the CPU has int8 dot-product instructions (AVX-512 VNNI, AVX-VNNI or AMX-INT8); Linux only."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="ignore")
    except OSError:
        return False
    return any(flag in flags for flag in ("avx512_vnni", "avx_vnni", "amx_int8"))


def default_runtime(device: torch.device) -> str:
    """The measured best runtime for ``device`` (see ``CPU_RUNTIME``)."""
    if device.type == "cuda":
        return CUDA_RUNTIME
    return CPU_RUNTIME if cpu_has_vnni() else CPU_RUNTIME_WITHOUT_VNNI


def resolve_device(device: str) -> torch.device:
    """``"auto"`` (CUDA when present, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.

    Raises:
        ValueError: for another name, or CUDA asked for where there is none.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"unknown device {device!r}; use auto, cpu, cuda or cuda:N")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} asked for, but torch finds no CUDA device here; use --device cpu")
    return torch.device(device)


def _built(network: torch.nn.Module | Callable[[], torch.nn.Module]) -> torch.nn.Module:
    return network if isinstance(network, torch.nn.Module) else network()


def _write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file, so a reader never sees half a model."""
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}.part")
    draft.write_bytes(data)
    draft.replace(path)


CALIBRATION = "cal4x256"  # calibration_batches' defaults: part of a cached int8 model's name


def calibration_batches(config: FCNConfig, n: int = 4, size: int = 256) -> list[np.ndarray]:
    """Network inputs of ``n`` fixed synthetic sections, for int8 calibration."""
    from ml_backend.synthetic import generate_section

    batches = []
    for seed in range(n):
        image = generate_section(size, 7_000_000 + seed).image
        batches.append(network_input(image, config.intensity(image))[None])
    return batches


class FCNPredictor:
    """Tiled prediction with one network.

    Args:
        network: The network (its weights are used as they are; it is put in eval mode), or a
            function building it: then it is built only if needed (not for an ONNX model already
            in ``onnx_cache``, which saves importing the network's libraries).
        config: Its construction config (normalisation and tiling).
        device: ``auto``, ``cpu`` or ``cuda[:N]``.
        runtime: One of ``ml_backend.fcn.runtime.RUNTIMES`` or ``auto`` (the measured best,
            :func:`default_runtime`). ONNX runtimes are CPU only.
        threads: Intra-op threads of ONNX Runtime sessions; 0 = all cores. Eager torch runs use
            the process's thread count, set once where the process starts (``scraiber``'s
            wiring, a benchmark): a predictor never changes it for the whole process.
        batch_size: Tiles per forward pass (default 1 on CPU, 8 on CUDA).
        tile, overlap, halo: Override the config's tiling.
        cache_key: An id of the weights (their SHA-256): ONNX exports and int8 quantisation
            (seconds) are then done once per process.
        onnx_cache: Folder keeping ONNX models (with ``cache_key``) across processes: the int8
            quantisation (10-30 s on 2 cores) is then done once per machine, not per process.
    """

    def __init__(
        self,
        network: torch.nn.Module | Callable[[], torch.nn.Module],
        config: FCNConfig,
        device: str = "auto",
        runtime: str = "auto",
        threads: int = 0,
        batch_size: int | None = None,
        tile: int | None = None,
        overlap: int | None = None,
        halo: int | None = None,
        cache_key: str | None = None,
        onnx_cache: str | Path | None = None,
    ) -> None:
        self.config = config
        self.onnx_cache = Path(onnx_cache) if onnx_cache is not None else None
        self.device = resolve_device(device)
        cuda = self.device.type == "cuda"
        self.runtime = check_runtime(runtime if runtime != "auto" else default_runtime(self.device))
        if cuda and self.runtime.startswith("onnx"):
            raise ValueError(f"runtime {self.runtime!r} runs on CPU only; use eager, channels-last or bf16 on CUDA")
        if threads < 0:
            raise ValueError(f"threads must be >= 0 (0 = all cores), got {threads}")
        self.threads = threads or available_cores()
        self.batch_size = batch_size or (8 if cuda else 1)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.tile = tile or config.tile
        self.overlap = config.overlap if overlap is None else overlap
        self.halo = config.halo if halo is None else halo
        if self.runtime.startswith("onnx"):
            self._run = onnx_runner(self._onnx_model(network, cache_key), self.threads)
        else:
            self._run = torch_runner(_built(network), self.device, self.runtime)

    def _onnx_model(self, network: torch.nn.Module | Callable[[], torch.nn.Module], cache_key: str | None) -> bytes:
        key = (cache_key or "", self.runtime)
        if cache_key and key in _ONNX_CACHE:
            return _ONNX_CACHE[key]
        stored = self._onnx_file(cache_key)
        try:
            model = stored.read_bytes() if stored is not None else None
        except OSError:
            model = None
        if not model:
            model = export_onnx(_built(network))
            if self.runtime == "onnx-int8":
                model = quantise_onnx(model, calibration_batches(self.config))
            if stored is not None:
                _write_atomically(stored, model)
        if cache_key:
            while len(_ONNX_CACHE) >= _ONNX_CACHE_SIZE:
                _ONNX_CACHE.pop(next(iter(_ONNX_CACHE)))
            _ONNX_CACHE[key] = model
        return model

    def _onnx_file(self, cache_key: str | None) -> Path | None:
        """Where the ONNX model of these weights and this runtime is kept (None: no disk cache).

        The name holds everything the model depends on: weights, runtime, the calibration
        and the versions of torch (export) and ONNX Runtime (quantisation).
        """
        if self.onnx_cache is None or not cache_key:
            return None
        import onnxruntime

        name = (
            f"{cache_key[:32]}-{self.runtime}-{CALIBRATION}-torch{torch.__version__}-ort{onnxruntime.__version__}.onnx"
        )
        return self.onnx_cache / name.replace("+", "_")

    def predict_tiles(self, tiles: np.ndarray, intensity: IntensityRange) -> np.ndarray:
        """(B, C, h, w) float32 probabilities of a (B, h, w) batch of raw tiles, normalised with ``intensity``."""
        return self._run(network_input(np.asarray(tiles), intensity))

    def predict(
        self,
        image: np.ndarray,
        progress: bool = False,
        reduce: Callable[[np.ndarray], np.ndarray] | None = None,
        intensity: IntensityRange | None = None,
    ) -> np.ndarray:
        """Blended (C, H, W) float32 probabilities of a raw 2-D image, or ``reduce`` of them.

        Args:
            image: 2-D array (a ``numpy.memmap`` works: only tiles are read at a time).
            progress: tqdm bar over tiles on stderr.
            reduce: Maps (C, h, W) blocks to what is stored (e.g. argmax -> uint8 (h, W)).
            intensity: Grey-level range to use; default: the config's percentiles of ``image``.
        """
        intensity = intensity or self.config.intensity(image)
        return predict_tiled(
            lambda batch: self.predict_tiles(batch, intensity),
            image,
            len(self.config.classes),
            tile=self.tile,
            overlap=self.overlap,
            halo=self.halo,
            progress=progress,
            batch_size=self.batch_size,
            reduce=reduce,
        )


def _argmax(block: np.ndarray) -> np.ndarray:
    return np.argmax(block, axis=0).astype(np.uint8)


class FCNSegmenter(Segmenter):
    """The trained fully convolutional network as a segmenter.

    Args:
        catalogue: The classes; the model's class names must be these, in this order.
        model: Weights + config as a folder, ``.safetensors`` or ``.json`` path; default:
            the shipped model matching the catalogue (``shipped_model_path``).
        **options: ``device``, ``runtime``, ``threads``, ``batch_size``, ``tile``,
            ``overlap``, ``halo``, ``onnx_cache`` of :class:`FCNPredictor`.

    Raises:
        ValueError: when no model is given and none is shipped for these classes, or the
            model's classes differ from the catalogue's.
    """

    def __init__(
        self,
        catalogue: Catalogue,
        model: str | Path | None = None,
        device: str = "auto",
        runtime: str = "auto",
        threads: int = 0,
        batch_size: int | None = None,
        tile: int | None = None,
        overlap: int | None = None,
        halo: int | None = None,
        onnx_cache: str | Path | None = None,
    ) -> None:
        path = Path(model) if model is not None else shipped_model_path(catalogue)
        if path is None:
            raise ValueError(
                f"no FCN model given and none shipped for the classes {list(catalogue.names)}; "
                "train one with `scraiber train` and pass its folder or weights file"
            )
        loaded = load_fcn(path)
        if list(loaded.config.classes) != list(catalogue.names):
            raise ValueError(
                f"FCN model {path} predicts classes {list(loaded.config.classes)}, "
                f"but the catalogue has {list(catalogue.names)}"
            )
        self.catalogue = catalogue
        self.model_path = loaded.path
        self.version = f"fcn-{loaded.sha256[:12]}"
        self.predictor = FCNPredictor(
            loaded.network,
            loaded.config,
            device,
            runtime,
            threads,
            batch_size,
            tile,
            overlap,
            halo,
            loaded.sha256,
            onnx_cache,
        )
        self._features: Callable[[np.ndarray], np.ndarray] | None = None
        self._features_lock = threading.Lock()

    def predict_proba(self, image: np.ndarray, progress: bool = False) -> np.ndarray:
        """float32 (C, H, W) class probabilities of a raw grey image, summing to 1 over C."""
        self._validate_inputs(image)
        return self.predictor.predict(image, progress)

    def segment(self, image: np.ndarray, progress: bool = False) -> np.ndarray:
        """uint8 (H, W) classes, holding probabilities one band of tiles at a time."""
        self._validate_inputs(image)
        return segment_array_tiles(self, image, progress=progress)

    def predict_with_features(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Class probabilities ``(C, H, W)`` and the decoder's feature maps ``(D, H, W)`` of a raw image.

        Runs the network in eager torch (the feature maps are not in the int8 ONNX model), tiled
        and blended like :meth:`predict_proba`; built on first use.
        """
        self._validate_inputs(image)
        p = self.predictor
        with self._features_lock:
            if self._features is None:
                self._features = feature_runner(load_fcn(self.model_path).network(), p.device)
            run = self._features
        intensity = p.config.intensity(image)
        n_classes = len(p.config.classes)
        probe = run(network_input(np.zeros((1, 32, 32), np.float32), intensity))
        stacked = predict_tiled(
            lambda batch: run(network_input(np.asarray(batch), intensity)), image, probe.shape[1],
            tile=p.tile, overlap=p.overlap, halo=p.halo, batch_size=p.batch_size,
        )  # fmt: skip
        return stacked[:n_classes], stacked[n_classes:]

    def predict_proba_samples(self, image: np.ndarray, n: int, dropout: float = 0.2, seed: int = 0) -> np.ndarray:
        """(n, C, H, W) float32 probabilities of ``n`` Monte Carlo dropout passes (``ml_backend.fcn.mc_dropout``)."""
        from ml_backend.fcn.mc_dropout import dropout_samples

        self._validate_inputs(image)
        p = self.predictor
        return dropout_samples(self.model_path, image, n, dropout, seed, p.device, p.tile, p.overlap)


def segment_array_tiles(
    segmenter: FCNSegmenter,
    image: np.ndarray,
    intensity: IntensityRange | None = None,
    progress: bool = False,
) -> np.ndarray:
    """uint8 (H, W) most probable classes of a large 2-D array, band by band.

    The entry point for whole sections: ``image`` may be a ``numpy.memmap`` (e.g.
    ``tifffile.memmap``); only one band of tile rows of probabilities is in memory. Pass
    ``intensity`` to reuse a grey-level range computed elsewhere (e.g. on an overview).
    """
    return segmenter.predictor.predict(image, progress=progress, reduce=_argmax, intensity=intensity)
