"""``scraiber bench fcn``: FCN speed (ms per megapixel) and the quality of each runtime.

1. Forward time of each candidate architecture (random weights: speed does not depend on
   them) on one square tile, eager torch and the kept runtime.
2. The default (shipped) model end to end on a synthetic image of ``--size`` px (grey range,
   tiling, network, blending, argmax) with every runtime, and its per-class IoU on fixed
   synthetic sections: a runtime may replace eager torch only with every class IoU within
   0.01 of eager's.

Times are the minimum of ``--repeat`` runs (the machine is shared; the minimum is the least
disturbed run).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import click
import numpy as np
import torch

from label_config.catalogue import IGNORE_INDEX, load_catalogue
from ml_backend.fcn.model_config import FCNConfig
from ml_backend.fcn.model_files import load_fcn, shipped_model_path
from ml_backend.fcn.runtime import RUNTIMES
from ml_backend.fcn.segmenter import FCNPredictor, FCNSegmenter, default_runtime, resolve_device, use_torch_threads
from ml_backend.normalise import IntensityRange
from ml_backend.synthetic import generate_section

CANDIDATES = ("unet-resnet18", "unet-mobilenet_v2", "deeplabv3plus-resnet18", "fpn-mobilenet_v2")
QUALITY_TOLERANCE = 0.01


def _best_of(fn, repeat: int) -> tuple[float, float]:
    """(wall, process CPU) seconds of ``fn``: minima over ``repeat`` runs after a warm-up.

    CPU time is what a run costs when others share the cores (it includes thread spinning).
    """
    fn()  # warm-up (oneDNN primitive creation, ONNX Runtime allocations)
    wall, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return min(wall), min(cpu)


def class_iou_of(segmenter: FCNSegmenter, sections: list) -> dict[str, float]:
    """Per-class IoU of ``segmenter`` over synthetic ``sections`` (their true classes)."""
    n = len(segmenter.catalogue)
    confusion = np.zeros((n, n), np.int64)
    for section in sections:
        predicted = segmenter.segment(section.image)
        keep = section.classes != IGNORE_INDEX
        confusion += np.bincount(section.classes[keep].astype(np.int64) * n + predicted[keep], minlength=n * n).reshape(
            n, n
        )
    tp = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - tp
    return {name: float(tp[i] / union[i]) if union[i] else math.nan for i, name in enumerate(segmenter.catalogue.names)}


@click.command("fcn")
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or auto.")
@click.option("--threads", type=int, default=0, show_default=True, help="CPU threads (0 = all cores).")
@click.option("--size", type=int, default=1024, show_default=True, help="Side (px) of the end-to-end test image.")
@click.option("--tile", type=int, default=1024, show_default=True, help="Tile side for the architecture timings.")
@click.option("--repeat", type=int, default=3, show_default=True, help="Timed runs (minimum reported).")
@click.option("--arch", "archs", multiple=True, help=f"Architectures to time (default: {', '.join(CANDIDATES)}).")
@click.option("--model", type=click.Path(path_type=Path), help="Model for the end-to-end part (default: shipped).")
@click.option(
    "--runtime", "runtimes", multiple=True, help=f"Runtimes end to end (default: all of {', '.join(RUNTIMES)})."
)
@click.option(
    "--val-sections", type=int, default=4, show_default=True, help="512 px synthetic sections for IoU (0: skip)."
)
def fcn_bench(device: str, threads: int, size: int, tile: int, repeat: int, archs: tuple[str, ...], model: Path | None,
              runtimes: tuple[str, ...], val_sections: int) -> None:  # fmt: skip
    """Time FCN inference per megapixel and compare runtimes at equal quality."""
    catalogue = load_catalogue()
    dev = resolve_device(device)
    cuda = dev.type == "cuda"
    kept = default_runtime(dev)
    mpix = tile * tile / 1e6
    use_torch_threads(threads)  # eager runs: the bench's thread count for the whole process
    click.echo(f"device {dev}, threads {threads or 'all'}, torch {torch.__version__}; kept runtime: {kept}")
    click.echo(f"\n1. forward of one {tile} x {tile} tile (ms/MPix wall (CPU), min of {repeat})")
    click.echo("| arch | params (M) | eager | " + kept + " |\n| --- | --- | --- | --- |")
    x = np.random.default_rng(0).random((1, tile, tile), dtype=np.float32)
    unit = IntensityRange(0.0, 1.0)
    for arch in archs or CANDIDATES:
        config = FCNConfig.for_architecture(arch, catalogue.names)
        network = config.build()
        params = sum(p.numel() for p in network.parameters()) / 1e6
        cells = []
        for runtime in dict.fromkeys(("eager", kept)):
            predictor = FCNPredictor(network, config, device=device, runtime=runtime, threads=threads)
            wall, cpu = _best_of(lambda: predictor.predict_tiles(x, unit), repeat)
            cells.append(f"{wall / mpix * 1000:.0f} ({cpu / mpix * 1000:.0f})")
        if len(cells) == 1:
            cells *= 2
        click.echo(f"| {arch} | {params:.1f} | {' | '.join(cells)} |")

    path = model or shipped_model_path(catalogue)
    if path is None:
        raise ValueError("no model for the end-to-end part: pass --model or ship one in ml_backend/weights")
    image = generate_section(size, 424242).image
    sections = [generate_section(512, 2_000_000 + k) for k in range(val_sections)]
    names = list(runtimes or [r for r in RUNTIMES if not (cuda and r.startswith("onnx"))])
    arch = load_fcn(path).config.arch
    click.echo(f"\n2. {arch} ({path.name}) end to end on {size} x {size} px (s per MPix wall (CPU), min of {repeat}); "
               f"IoU on {val_sections} synthetic 512 px sections")  # fmt: skip
    header = " | ".join(catalogue.names)
    click.echo(f"| runtime | s/MPix | {header} | max |dIoU| vs eager |\n|" + " --- |" * (len(catalogue) + 3))
    reference: dict[str, float] | None = None
    for runtime in names:
        segmenter = FCNSegmenter(catalogue, path, device=device, runtime=runtime, threads=threads)
        wall, cpu = (t / (size * size / 1e6) for t in _best_of(lambda: segmenter.segment(image), repeat))
        iou = class_iou_of(segmenter, sections) if sections else {}
        reference = reference if reference is not None else iou
        delta = max((abs(iou[k] - reference[k]) for k in iou if not math.isnan(iou[k])), default=0.0)
        cells = " | ".join(f"{iou.get(name, math.nan):.3f}" for name in catalogue.names)
        click.echo(
            f"| {runtime} | {wall:.2f} ({cpu:.2f}) | {cells} | {delta:.4f}{' (over)' * (delta > QUALITY_TOLERANCE)} |"
        )
