"""``scraiber bench section``: whole-section throughput (MPix/s) and peak memory per size.

For each size a synthetic mosaic is written once (``bench-out/section/``), then segmented
in a fresh child process (``spawn``), so that the child's resident-memory high-water mark
(``getrusage``) is the segmentation's alone. Flat memory shows as the same peak for a
small and a 16x larger section.

Runs where only numpy, scipy, scikit-learn, tifffile, torch, timm, smp, pandas, click and
tqdm are installed (a GPU machine): nothing here imports Label Studio, MLflow, pydantic
or imagecodecs. Without the ``scraiber`` command::

    python -m benchmarks.section --method fcn --device cuda   # 1-gigapixel section
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import time
from multiprocessing.connection import Connection
from pathlib import Path

import click

CPU_SIZES = "4096,16384"
CUDA_SIZES = "32768"


def _measure(conn: Connection, mosaic: str, out: str, method: str, device: str, options: dict) -> None:
    """Child process: segment ``mosaic`` and send timings and memory back."""
    from label_config.catalogue import load_catalogue
    from ml_backend.mosaic.reader import MosaicReader
    from ml_backend.mosaic.segment import prepare_section, write_section_mask

    catalogue = load_catalogue()
    start = time.perf_counter()
    with MosaicReader(mosaic) as reader:
        model = prepare_section(reader, method, catalogue, options, device=device)
        fitted = time.perf_counter()
        rss_fitted = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        write_section_mask(reader, model, out, catalogue, method)
        pixels = reader.shape[0] * reader.shape[1]
    result = {
        "pixels": pixels,
        "fit_s": fitted - start,
        "total_s": time.perf_counter() - start,
        "rss_fitted_mib": rss_fitted / 1024,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if device == "cuda":
        import torch

        result["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
        result["gpu"] = torch.cuda.get_device_name()
    conn.send(result)
    conn.close()


def measure_section(mosaic: Path, out: Path, method: str, device: str, options: dict | None = None) -> dict:
    """Segment ``mosaic`` in a fresh process; its timings (s) and peak memory (MiB)."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_measure, args=(send, str(mosaic), str(out), method, device, options or {}))
    child.start()
    send.close()
    try:
        result = receive.recv()
    except EOFError:
        result = None
    child.join()
    if result is None or child.exitcode != 0:
        raise RuntimeError(f"segmenting {mosaic} failed in the child process (exit code {child.exitcode})")
    return result


def fcn_options(workdir: Path, model: Path | None, arch: str | None, runtime: str, device: str = "cpu") -> dict:
    """FCN options: ``model``, else the shipped model, else random weights of ``arch``
    (the speed of a network does not depend on its weights), with an ONNX cache in ``workdir``
    that is filled here, untimed: building the int8 model is a one-off per machine
    (``scraiber segment`` keeps it in the data dir), not part of segmenting a section."""
    from label_config.catalogue import load_catalogue
    from ml_backend.fcn import FCNConfig, FCNSegmenter, save_fcn, shipped_model_path

    catalogue = load_catalogue()
    if model is None and arch is None:
        model = shipped_model_path(catalogue)
    if model is None:
        arch = arch or "unet-resnet18"
        config = FCNConfig.for_architecture(arch, catalogue.names)
        model = save_fcn(workdir / f"random-{arch}", config.build().state_dict(), config)
        click.echo(f"FCN {arch} with random weights: {model}")
    options = {"model": str(model), "runtime": runtime, "onnx_cache": str(workdir / "onnx-cache")}
    if device == "cpu":  # ONNX runtimes are CPU only
        start = time.perf_counter()
        chosen = FCNSegmenter(catalogue, device=device, **options).predictor.runtime
        click.echo(f"FCN runtime {chosen} ready in {time.perf_counter() - start:.1f} s "
                   f"(once per machine, cached in {workdir / 'onnx-cache'})")  # fmt: skip
    return options


@click.command("section")
@click.option(
    "--size", "sizes", help=f"Comma-separated sides in px [default: {CPU_SIZES} on cpu, {CUDA_SIZES} on cuda]."
)
@click.option("--method", default="unsupervised", show_default=True, help="Segmentation method.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option(
    "--workdir", type=click.Path(file_okay=False, path_type=Path), default=Path("bench-out/section"), show_default=True
)
@click.option("--tile", type=int, default=2048, show_default=True, help="Mosaic TIFF tile (= synthetic section) side.")
@click.option("--unique", type=int, default=16, show_default=True, help="Distinct synthetic sections per mosaic.")
@click.option("--workers", type=int, default=os.cpu_count() or 1, show_default=True, help="Processes drawing sections.")
@click.option("--model", type=click.Path(path_type=Path), help="fcn: model folder or weights [default: shipped model].")
@click.option("--arch", help="fcn: time this architecture with random weights instead of a model.")
@click.option("--runtime", default="auto", show_default=True, help="fcn: eager, channels-last, bf16, onnx, ...")
def section_bench(
    sizes: str | None,
    method: str,
    device: str,
    workdir: Path,
    tile: int,
    unique: int,
    workers: int,
    model: Path | None,
    arch: str | None,
    runtime: str,
) -> None:
    """Whole-section segmentation: MPix/s and peak RSS per mosaic size (each in a fresh process)."""
    from ml_backend.mosaic.synthetic import write_synthetic_mosaic

    try:
        sides = [int(s) for s in (sizes or (CUDA_SIZES if device == "cuda" else CPU_SIZES)).split(",")]
    except ValueError:
        raise ValueError(f"--size takes comma-separated integers, got {sizes!r}") from None
    workdir.mkdir(parents=True, exist_ok=True)
    options = fcn_options(workdir, model, arch, runtime, device) if method == "fcn" else {}
    for side in sides:
        mosaic = workdir / f"mosaic_{side}_t{tile}_u{unique}.tif"
        if not mosaic.exists():
            start = time.perf_counter()
            draft = mosaic.with_suffix(".part.tif")
            write_synthetic_mosaic(draft, side, tile, seed=0, unique=unique, workers=workers)
            draft.rename(mosaic)
            click.echo(f"wrote {mosaic} in {time.perf_counter() - start:.1f} s")
        r = measure_section(mosaic, workdir / f"mask_{side}_{method}_{device}.tif", method, device, options)
        mpix = r["pixels"] / 1e6
        windows_s = r["total_s"] - r["fit_s"]
        gpu = f", {r['gpu']}, peak GPU memory {r['peak_gpu_mib']:.0f} MiB" if "gpu" in r else ""
        click.echo(
            f"section {side} x {side} px ({mpix:.0f} MPix) {method} on {device}: {r['total_s']:.1f} s "
            f"({mpix / r['total_s']:.2f} MPix/s; fit on sample {r['fit_s']:.1f} s, windows {mpix / windows_s:.2f} MPix/s); "
            f"peak RSS {r['peak_rss_mib']:.0f} MiB (after fit {r['rss_fitted_mib']:.0f} MiB){gpu}"
        )


if __name__ == "__main__":
    section_bench()
