"""``scraiber ingest`` and ``scraiber stitch``: whole sections to Label Studio tiles and back."""

from __future__ import annotations

from pathlib import Path

import click

from active_learning.sections.ingest import STORAGES, ingest_mosaic, make_target
from active_learning.sections.stitch import SOURCES, Stitcher
from label_config.catalogue import load_catalogue
from ml_backend.label_studio import LabelStudioClient
from ml_backend.mosaic.reader import MosaicReader
from scraiber.settings import Settings, settings_from


def _client(settings: Settings) -> LabelStudioClient:
    if settings.label_studio_api_key is None:
        raise ValueError("LABEL_STUDIO_API_KEY is not set; give the token of a Label Studio user of the project")
    return LabelStudioClient(settings.label_studio_url, settings.label_studio_api_key.get_secret_value(), timeout=300)


@click.command("ingest")
@click.argument("mosaic", type=click.Path(path_type=Path))
@click.option("--project", "project_id", type=int, required=True, help="Label Studio project id.")
@click.option("--tile", type=int, default=1024, show_default=True, help="Tile side in px.")
@click.option("--overlap", type=int, default=64, show_default=True, help="Px shared by neighbouring tiles.")
@click.option("--storage", type=click.Choice(STORAGES), default="upload", show_default=True, help="Where tiles go.")
@click.option("--pixel-size", type=float, help="Pixel size in µm when the mosaic's metadata has none.")
@click.option(
    "--local-dir", default="scraiber-sections", show_default=True, help="local-files: folder under the document root."
)
@click.option("--s3-uri", help="s3: s3://BUCKET/PREFIX for the tiles.")
@click.pass_context
def ingest_command(
    ctx: click.Context,
    mosaic: Path,
    project_id: int,
    tile: int,
    overlap: int,
    storage: str,
    pixel_size: float | None,
    local_dir: str,
    s3_uri: str | None,
) -> None:
    """Cut a whole-section MOSAIC into overlapping tiles, one Label Studio task per tile."""
    settings = settings_from(ctx)
    if not 0 <= overlap < tile:
        raise ValueError(f"--overlap must satisfy 0 <= overlap < tile ({tile}), got {overlap}")
    if pixel_size is not None and not pixel_size > 0:
        raise ValueError(f"--pixel-size must be a positive number of micrometres, got {pixel_size}")
    target = make_target(storage, settings, local_folder=local_dir, s3_uri=s3_uri)
    try:
        with MosaicReader(mosaic, pixel_size_um=pixel_size) as reader, _client(settings) as client:
            catalogue = load_catalogue(settings.catalogue)
            result = ingest_mosaic(reader, client, project_id, target, catalogue, tile, overlap, progress=True)
    finally:
        target.close()
    click.echo(f"created {len(result.task_ids)} tasks in project {project_id} from {mosaic.name} ({storage})")


@click.command("stitch")
@click.option("--project", "project_id", type=int, required=True, help="Label Studio project id.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output mask .tif (+ .json sidecar).")
@click.option("--source", type=click.Choice(SOURCES), default="annotations", show_default=True, help="What to stitch.")
@click.option("--mosaic", help="Mosaic name, when the project holds tiles of several.")
@click.pass_context
def stitch_command(ctx: click.Context, project_id: int, out: Path, source: str, mosaic: str | None) -> None:
    """Reassemble the tiles of a section (annotations or predictions) into one class mask."""
    settings = settings_from(ctx)
    with _client(settings) as client:
        stitcher = Stitcher(client, project_id, load_catalogue(settings.catalogue), source, mosaic)
        path, _ = stitcher.write(out, progress=True)
    click.echo(f"wrote {path} ({stitcher.labelled} of {len(stitcher.tiles)} tiles labelled, {source})")
