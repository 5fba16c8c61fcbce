"""``scraiber bench crystals``: the crystal analysis end to end on a synthetic section of ~20 000 crystals.

The section is a mosaic of independent synthetic sections (``generate_section``, seeds
``seed .. seed + rows * cols - 1``) with a fixed 2 µm pixel and smaller crystals than the
generator's defaults, so that 4 x 5 tiles of 2048 px (8192 x 10240 px, 84 Mpx) hold about
20 000 crystals. Drawing the mosaic is not timed; the analysis (instances, measurements,
zoning, populations, CSD, modes) and the Label Studio polygons are. The generator's
instance maps give the matched-instance F1 (IoU >= 0.5) as a check that the speed is not
bought with quality.
"""

from __future__ import annotations

import resource
import time

import click
import numpy as np
from tqdm import tqdm

from ml_backend.crystals.analysis import analyse_crystals
from ml_backend.crystals.config import CrystalConfig
from ml_backend.crystals.evaluate import match_instances
from ml_backend.crystals.polygons import polygons_from_table
from ml_backend.synthetic import SynthConfig, generate_section

BENCH_CONFIG = SynthConfig(
    pixel_size_um=(2.0, 2.0),
    olivine_size_um=(20.0, 400.0),
    clinopyroxene_size_um=(20.0, 300.0),
    plagioclase_length_um=(30.0, 400.0),
    oxide_size_um=(6.0, 40.0),
    # one acquisition for the whole mosaic
    gain_dn=(200000.0, 200000.0),
    offset_dn=(0.0, 0.0),
    dose_electrons=(20000.0, 20000.0),
    read_noise_dn=(100.0, 100.0),
    blur_sigma_px=(0.8, 0.8),
)


def synthetic_mosaic(rows: int, cols: int, tile: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image, classes, instances) of a rows x cols mosaic of synthetic sections (instance ids kept unique)."""
    image = np.zeros((rows * tile, cols * tile), np.uint16)
    classes = np.zeros(image.shape, np.uint8)
    instances = np.zeros(image.shape, np.int32)
    offset = 0
    for k in tqdm(range(rows * cols), desc="drawing mosaic", unit="tile"):
        section = generate_section(tile, seed + k, BENCH_CONFIG)
        window = np.s_[(k // cols) * tile : (k // cols + 1) * tile, (k % cols) * tile : (k % cols + 1) * tile]
        image[window], classes[window] = section.image, section.classes
        instances[window] = np.where(section.instances > 0, section.instances + offset, 0)
        offset += int(section.instances.max())
    return image, classes, instances


@click.command("crystals")
@click.option("--rows", type=int, default=4, show_default=True, help="Tiles down.")
@click.option("--cols", type=int, default=5, show_default=True, help="Tiles across.")
@click.option("--tile", type=int, default=2048, show_default=True, help="Tile side, px.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the first tile.")
def crystals_bench(rows: int, cols: int, tile: int, seed: int) -> None:
    """Crystals per second, total time and peak memory of the crystal analysis (~20 000 crystals by default)."""
    if rows < 1 or cols < 1 or seed < 0:
        raise ValueError(f"--rows and --cols must be >= 1 and --seed >= 0, got {rows}, {cols}, {seed}")
    image, classes, truth = synthetic_mosaic(rows, cols, tile, seed)
    config = CrystalConfig()
    pixel_size = BENCH_CONFIG.pixel_size_um[0]
    start = time.perf_counter()
    analysis = analyse_crystals(image, classes, pixel_size, config=config, progress=True)
    analysed = time.perf_counter()
    polygons = polygons_from_table(analysis.table, analysis.instances, config.polygon_tolerance_px)
    done = time.perf_counter()
    n = len(analysis.table)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    match = match_instances(analysis.instances.labels, truth, 0.5, config.min_area_px)
    click.echo(
        f"crystals bench: {image.shape[0]} x {image.shape[1]} px ({image.size / 1e6:.0f} Mpx, {rows * cols} tiles), {n} crystals\n"
        f"  analysis {analysed - start:.1f} s ({n / (analysed - start):.0f} crystals/s), "
        f"polygons {done - analysed:.1f} s, total {done - start:.1f} s ({n / (done - start):.0f} crystals/s)\n"
        f"  peak RSS {peak_mib:.0f} MiB (mosaic and truth included)\n"
        f"  matched-instance F1 vs generator truth (IoU >= 0.5, >= {config.min_area_px} px): {match.f1:.3f} "
        f"(precision {match.precision:.3f}, recall {match.recall:.3f}); {len(polygons)} polygons"
    )
