"""``scraiber bench segment``: speed and peak memory of the unsupervised segmenter per image size.

Images are synthetic sections (:func:`ml_backend.synthetic.generate_section`, 1024 px)
mirrored into 2 x 2 and 4 x 4 mosaics for 4 and 16 MPix, so that only the size changes.
Each size is segmented in a fresh child process (``spawn``): the child's resident-memory
high-water mark (``getrusage``) minus the mark after loading the image and importing
the segmenter is what segmenting that image costs, with nothing left from another size.
Prediction is timed as wall clock and as CPU time of the process (all threads): on a
machine shared with other work the CPU time is the steadier figure.
"""

from __future__ import annotations

import multiprocessing
import resource
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

import click
import numpy as np

from ml_backend.tiling import tile_windows

_SECTION = 1024


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _measure(conn: Connection, path: str, options: dict) -> None:
    """Child process: fit and segment the image in ``path``; send timings and memory back."""
    from label_config.catalogue import load_catalogue
    from ml_backend.segmenters import create_segmenter

    image = np.load(path)
    segmenter = create_segmenter("unsupervised", load_catalogue(), **options)
    before = _peak_rss_mib()
    start = time.perf_counter()
    model = segmenter.fit(image)
    fitted, cpu_fitted = time.perf_counter(), time.process_time()
    mask = segmenter.predict_with(model, image, labels=True)
    done, cpu_done = time.perf_counter(), time.process_time()
    conn.send(
        {
            "fit_s": fitted - start,
            "predict_s": done - fitted,
            "predict_cpu_s": cpu_done - cpu_fitted,
            "clusters": model.mixture.n_components,
            "classes": int(np.unique(mask).size),
            "rss_before_mib": before,
            "peak_rss_mib": _peak_rss_mib(),
        }
    )
    conn.close()


def _mirrored(tile: np.ndarray, repeats: int) -> np.ndarray:
    """``repeats`` x ``repeats`` mosaic of ``tile`` and its mirror images (no edges between copies)."""
    row = [tile if i % 2 == 0 else tile[:, ::-1] for i in range(repeats)]
    strip = np.concatenate(row, axis=1)
    return np.concatenate([strip if i % 2 == 0 else strip[::-1] for i in range(repeats)], axis=0)


def measure(image: np.ndarray, workdir: Path, options: dict) -> dict:
    """Segment ``image`` in a fresh process; timings (s) and resident memory (MiB)."""
    path = workdir / f"image-{image.shape[0]}x{image.shape[1]}.npy"
    np.save(path, image)
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_measure, args=(sender, str(path), options))
    child.start()
    sender.close()
    try:
        result = receiver.recv()
    except EOFError:
        raise RuntimeError(f"benchmark child for {image.shape} died (exit code {child.exitcode})") from None
    finally:
        child.join()
        path.unlink()
    return result


@click.command("segment")
@click.option(
    "--sizes", default="1,2,4", show_default=True, help="Image sides in multiples of 1024 px (1,2,4 = 1, 4, 16 MPix)."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the synthetic section.")
@click.option("--n-clusters", type=int, help="Number of clusters (default: 12, merged by naming).")
def segment_bench(sizes: str, seed: int, n_clusters: int | None) -> None:
    """Milliseconds per megapixel (wall and CPU) and peak memory of the unsupervised segmenter at 1, 4 and 16 MPix."""
    from ml_backend.segmenters.unsupervised import UnsupervisedConfig
    from ml_backend.synthetic import generate_section

    try:
        repeats = [int(part) for part in sizes.split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--sizes must be comma-separated whole numbers, got {sizes!r}") from None
    if not repeats or min(repeats) < 1 or max(repeats) > 8:
        raise ValueError(f"--sizes must be whole numbers from 1 to 8, got {sizes!r}")
    options = {} if n_clusters is None else {"n_clusters": n_clusters}
    config = UnsupervisedConfig(**options)
    section = generate_section(_SECTION, seed).image
    click.echo(
        f"unsupervised segmenter, synthetic section seed {seed} ({_SECTION} px, mirrored to larger sizes); "
        f"tile {config.tile} px, overlap {config.overlap}, halo {config.halo}; one fresh process per size; "
        "MPix = 2^20 px; memory = resident-set high-water mark (getrusage)"
    )
    header = (
        f"{'image':>11} {'MPix':>5} {'tiles':>5} {'clusters':>8} {'fit s':>6} {'predict ms/MPix':>15} {'CPU ms/MPix':>11} "
        f"{'total ms/MPix':>13} {'RSS before MiB':>14} {'peak RSS MiB':>12} {'peak-before MiB':>15}"
    )
    click.echo(header)
    with tempfile.TemporaryDirectory(prefix="scraiber-bench-") as workdir:
        for n in repeats:
            image = _mirrored(section, n)
            mpix = image.size / 2**20
            r = measure(image, Path(workdir), options)
            tiles = len(tile_windows(image.shape, config.tile, config.overlap))
            click.echo(
                f"{image.shape[0]:>5} x {image.shape[1]:<5}{mpix:>5.0f} {tiles:>5} {r['clusters']:>8} {r['fit_s']:>6.2f} "
                f"{1e3 * r['predict_s'] / mpix:>15.0f} {1e3 * r['predict_cpu_s'] / mpix:>11.0f} "
                f"{1e3 * (r['fit_s'] + r['predict_s']) / mpix:>13.0f} "
                f"{r['rss_before_mib']:>14.0f} {r['peak_rss_mib']:>12.0f} {r['peak_rss_mib'] - r['rss_before_mib']:>15.0f}"
            )
