"""``scraiber segment`` (whole sections streamed, fields in memory) and ``scraiber synth-mosaic``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from label_config.catalogue import load_catalogue
from ml_backend.mosaic.reader import MosaicReader
from ml_backend.mosaic.segment import SAMPLE_PIXELS, STREAM_ABOVE_PIXELS, segment_image, segment_mosaic, should_stream
from ml_backend.mosaic.synthetic import write_synthetic_mosaic
from ml_backend.synthetic import SynthConfig
from scraiber.settings import settings_from


@click.command("segment")
@click.argument("image", type=click.Path(path_type=Path))
@click.option(
    "--out", required=True, type=click.Path(path_type=Path), help="Mask: .tif (tiled) or .png (in memory only)."
)
@click.option("--method", default="unsupervised", show_default=True, help="Segmentation method.")
@click.option(
    "--stream/--no-stream",
    default=None,
    help="Read window by window (default: for tiled TIFF, BigTIFF, or images above --stream-above).",
)
@click.option("--stream-above", type=float, default=STREAM_ABOVE_PIXELS / 2**20, show_default=True, help="MPix.")
@click.option("--pixel-size", type=float, help="Pixel size in µm when the image metadata has none.")
@click.option(
    "--sample",
    "sample_mpix",
    type=float,
    default=SAMPLE_PIXELS / 2**20,
    show_default=True,
    help="MPix the method is fitted on.",
)
@click.option(
    "--model-uri",
    help="fcn: weights folder or .safetensors file, models:/NAME@ALIAS or runs:/RUN/model (default: shipped).",
)
@click.option("--device", default="auto", show_default=True, help="fcn: auto (CUDA when present), cpu, cuda or cuda:N.")
@click.option("--n-clusters", type=int, help="unsupervised: number of clusters (default: 12, merged by naming).")
@click.option("--catalogue", type=click.Path(dir_okay=False, path_type=Path), help="Your mineral catalogue TOML.")
@click.pass_context
def segment_command(
    ctx: click.Context,
    image: Path,
    out: Path,
    method: str,
    stream: bool | None,
    stream_above: float,
    pixel_size: float | None,
    sample_mpix: float,
    model_uri: str | None,
    device: str,
    n_clusters: int | None,
    catalogue: Path | None,
) -> None:
    """Segment IMAGE (a field or a whole-section mosaic) into a class mask with a JSON sidecar."""
    settings = settings_from(ctx)
    if not image.is_file():
        raise ValueError(f"{image}: no such image file")
    if pixel_size is not None and not pixel_size > 0:
        raise ValueError(f"--pixel-size must be a positive number of micrometres, got {pixel_size}")
    classes = load_catalogue(catalogue or settings.catalogue)
    options: dict[str, Any] = {}
    if n_clusters is not None:
        if method != "unsupervised":
            raise ValueError("--n-clusters applies to --method unsupervised only")
        options["n_clusters"] = n_clusters
    if model_uri is not None:
        from ml_backend.fcn.model_files import resolve_model_uri

        options["model"] = str(resolve_model_uri(model_uri, settings))
    if method == "fcn":  # the int8 model is quantised once per machine, not once per command
        options["onnx_cache"] = str(settings.data_dir / "cache" / "onnx")
    if stream is None:
        stream = should_stream(image, int(stream_above * 2**20))
    if stream:
        with MosaicReader(image, pixel_size_um=pixel_size) as reader:
            path, _ = segment_mosaic(
                reader, out, method, classes, options, int(sample_mpix * 2**20), device, progress=True
            )
    else:
        if device != "auto":
            options["device"] = device
        path, _ = segment_image(
            image, out, method, classes, pixel_size, options, max_pixels=settings.max_image_pixels, progress=True
        )
    click.echo(f"wrote {path} ({'streamed' if stream else 'in memory'}, {method})")


@click.command("synth-mosaic")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Output mosaic .tif.")
@click.option("--size", type=int, default=16384, show_default=True, help="Side length in px.")
@click.option("--tile", type=int, default=2048, show_default=True, help="Section and TIFF tile side in px.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed (tile i uses seed + i).")
@click.option("--unique", type=int, help="Draw only this many sections and reuse them rotated (benchmarks).")
@click.option("--truth", type=click.Path(dir_okay=False, path_type=Path), help="Also write the true class mosaic here.")
@click.option("--workers", type=int, default=os.cpu_count() or 1, show_default=True, help="Processes drawing sections.")
@click.option(
    "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), help="TOML/JSON SynthConfig overrides."
)
@click.pass_context
def synth_mosaic_command(
    ctx: click.Context,
    out: Path,
    size: int,
    tile: int,
    seed: int,
    unique: int | None,
    truth: Path | None,
    workers: int,
    config_path: Path | None,
) -> None:
    """Write a synthetic whole-section mosaic (tiled BigTIFF, one synthetic section per tile)."""
    config = SynthConfig.from_file(config_path) if config_path is not None else SynthConfig()
    catalogue = load_catalogue(settings_from(ctx).catalogue)
    pixel_size = write_synthetic_mosaic(
        out, size, tile, seed, config, catalogue, truth_path=truth, unique=unique, workers=workers, progress=True
    )
    click.echo(f"wrote {out}: {size} x {size} px, {pixel_size:.3f} µm/px, tiles of {tile} px")
