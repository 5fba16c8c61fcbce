"""``scraiber bench interactive``: latency of interactive refinement at 512 and 1024 px.

A synthetic section is segmented by the unsupervised segmenter (or ``--segmenter fcn``); then an expert clicks one keypoint at a time, each time at the innermost pixel of
the largest crystal the current mask gets most wrong, and the refiner answers. The first
answer includes the model's prediction and the features (cold); the following ones reuse them
from the cache (warm), which is what the expert feels click after click.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace

import click
import numpy as np
from scipy import ndimage

from label_config import load_catalogue
from label_config.generate import minerals_xml
from ml_backend.metrics import tile_miou
from ml_backend.refine import InteractiveRefiner, RefineConfig
from ml_backend.regions import regions_to_class_map
from ml_backend.segmenters import create_segmenter
from ml_backend.synthetic import generate_section


class _Images:
    """Stands in for the image source (``fetch`` and ``open``): the bench measures refinement, not the download."""

    def __init__(self, pixels: np.ndarray) -> None:
        self.pixels = pixels

    def fetch(self, url: str, pixel_size_um: float | None = None) -> SimpleNamespace:
        return SimpleNamespace(pixels=self.pixels)

    @contextmanager
    def open(self, url: str, pixel_size_um: float | None = None) -> Iterator[SimpleNamespace]:
        yield self.fetch(url, pixel_size_um)


def _next_click(classes: np.ndarray, section, catalogue) -> dict:
    """Keypoint at the innermost pixel of the largest crystal (or groundmass blob) the mask gets wrong."""
    wrong = classes != section.classes
    labelled, _ = ndimage.label(wrong)
    sizes = np.bincount(labelled.ravel())
    sizes[0] = 0
    region = labelled == int(np.argmax(sizes))
    inside = ndimage.distance_transform_edt(region)
    row, col = np.unravel_index(np.argmax(inside), inside.shape)
    height, width = classes.shape
    label = catalogue.names[int(section.classes[row, col])]
    return {
        "type": "keypointlabels",
        "value": {"x": (col + 0.5) / width * 100, "y": (row + 0.5) / height * 100, "keypointlabels": [label]},
    }


@click.command("interactive")
@click.option("--sizes", default="512,1024", show_default=True, help="Image sides (px), comma-separated.")
@click.option("--clicks", default=6, show_default=True, help="Keypoints per image, one request each.")
@click.option("--seed", default=101, show_default=True, help="Synthetic section seed.")
@click.option(
    "--segmenter", "method", default="unsupervised", show_default=True, help="Model refined (fcn: the shipped one)."
)
def bench_interactive(sizes: str, clicks: int, seed: int, method: str) -> None:
    """Milliseconds per interactive refinement (cold and warm) and the mean IoU it reaches.

    Wall time depends on what else runs on the machine; the CPU time of this process
    (``time.process_time``) much less so: both are printed.
    """
    catalogue = load_catalogue()
    config_xml = minerals_xml(catalogue)
    for size in [int(s) for s in sizes.split(",") if s.strip()]:
        section = generate_section(size, seed)
        segmenter = create_segmenter(method, catalogue)
        refiner = InteractiveRefiner(catalogue, lambda: segmenter, _Images(section.image), RefineConfig())
        task = {"id": 1, "data": {"image": f"/data/upload/bench-{size}.png"}}
        context: dict = {"result": []}
        first = refiner.refine(task, {"result": []}, config_xml)[0]
        classes = regions_to_class_map(first["result"], section.classes.shape, catalogue)[0]
        ious = [tile_miou(section.classes, classes, len(catalogue))]
        times, cpu = [], []
        for _ in range(clicks):
            context["result"].append(_next_click(classes, section, catalogue))
            started, cpu_started = time.perf_counter(), time.process_time()
            prediction = refiner.refine(task, context, config_xml)[0]
            times.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - cpu_started) * 1000)
            classes = regions_to_class_map(prediction["result"], section.classes.shape, catalogue)[0]
            ious.append(tile_miou(section.classes, classes, len(catalogue)))
        cold = InteractiveRefiner(catalogue, lambda: segmenter, _Images(section.image), RefineConfig())
        started = time.perf_counter()
        cold.refine(task, {"result": context["result"][:1]}, config_xml)
        cold_ms = (time.perf_counter() - started) * 1000
        click.echo(
            f"{size} px, {segmenter.version}: cold {cold_ms:.0f} ms (model + features + refine), warm median "
            f"{statistics.median(times):.0f} ms (CPU {statistics.median(cpu):.0f} ms), max {max(times):.0f} ms "
            f"over {clicks} clicks; "
            f"mean IoU {ious[0]:.3f} -> {ious[-1]:.3f} ({' '.join(f'{v:.3f}' for v in ious)})"
        )
