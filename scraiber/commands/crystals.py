"""``scraiber crystals``: crystal table, modes, CSD, zoning and compositions of one BSE field."""

from __future__ import annotations

from pathlib import Path

import click
import imagecodecs
import numpy as np
import tifffile

from label_config.catalogue import Catalogue, load_catalogue
from ml_backend.bse_io import read_bse
from ml_backend.crystals.analysis import analyse_crystals
from ml_backend.crystals.calibration import read_probe_points
from ml_backend.crystals.config import CrystalConfig
from ml_backend.crystals.report import write_report
from ml_backend.masks import read_mask, sidecar_path
from scraiber.settings import settings_from


def parse_sizes(text: str) -> tuple[float, float]:
    """``"100,500"`` -> (100.0, 500.0): the microphenocryst and phenocryst thresholds in µm.

    Raises:
        ValueError: unless two increasing positive numbers separated by a comma.
    """
    try:
        low, high = (float(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"--sizes takes two numbers in µm separated by a comma, e.g. 30,300; got {text!r}") from None
    if not 0 < low < high:
        raise ValueError(f"--sizes must be increasing positive sizes (microphenocryst, phenocryst) in µm, got {text!r}")
    return low, high


def read_phase_mask(path: Path, catalogue: Catalogue) -> tuple[np.ndarray, float | None]:
    """A phase mask (uint8 catalogue indices) and the pixel size its sidecar gives, if any.

    A PNG with a JSON sidecar (``ml_backend.masks``) has its class names checked against
    the catalogue; a PNG or TIFF without one is taken to use the catalogue's indices.

    Raises:
        ValueError: naming the file and the problem.
    """
    if sidecar_path(path).exists():
        mask, sidecar = read_mask(path)
        names = [sidecar["classes"].get(str(i)) for i in range(len(sidecar["classes"]))]
        if names != catalogue.names[: len(names)]:
            raise ValueError(
                f"{path}: mask classes {names} differ from the catalogue's {catalogue.names}; pass the catalogue the mask was made with (--catalogue)"
            )
        return mask, sidecar.get("pixel_size_um")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read mask ({exc.strerror or exc})") from None
    try:
        mask = (
            tifffile.imread(path)
            if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
            else imagecodecs.png_decode(data)
        )
    except Exception as exc:  # imagecodecs and tifffile raise their own error types
        raise ValueError(f"{path}: not a readable PNG or TIFF mask ({exc})") from None
    if mask.ndim != 2 or mask.dtype != np.uint8:
        raise ValueError(
            f"{path}: a phase mask must be a grey uint8 image of class indices, got shape {mask.shape} dtype {mask.dtype}"
        )
    return mask, None


@click.command("crystals")
@click.argument("image", type=click.Path(path_type=Path))
@click.option(
    "--mask",
    "mask_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Phase mask: uint8 catalogue indices (PNG with sidecar, PNG or TIFF).",
)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder for the tables, plot and maps.")
@click.option(
    "--pixel-size", type=float, help="Pixel size in µm, used when neither the image nor the mask's sidecar carries one."
)
@click.option(
    "--probe",
    "probe_path",
    type=click.Path(path_type=Path),
    help="CSV of microprobe points: x, y (px) and one composition column (e.g. Fo).",
)
@click.option("--probe-column", help="Composition column of --probe (default: the only one besides x, y).")
@click.option(
    "--catalogue",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Catalogue TOML the mask's indices refer to (default: settings).",
)
@click.option(
    "--min-area-px", type=int, default=CrystalConfig.min_area_px, show_default=True, help="Smallest crystal kept, px."
)
@click.option(
    "--sizes",
    default=f"{CrystalConfig.microphenocryst_min_um:g},{CrystalConfig.phenocryst_min_um:g}",
    show_default=True,
    help="Microphenocryst and phenocryst thresholds (ECD, µm).",
)
@click.option(
    "--background-degree",
    type=int,
    default=0,
    show_default=True,
    help="Remove polynomial shading of this degree first (0 = none; 2 for shaded images).",
)
@click.option(
    "--extrapolation-margin",
    type=float,
    default=CrystalConfig.extrapolation_margin,
    show_default=True,
    help="Composition units a prediction may leave the calibrated range.",
)
@click.pass_context
def crystals_command(
    ctx: click.Context,
    image: Path,
    mask_path: Path,
    out: Path,
    pixel_size: float | None,
    probe_path: Path | None,
    probe_column: str | None,
    catalogue: Path | None,
    min_area_px: int,
    sizes: str,
    background_degree: int,
    extrapolation_margin: float,
) -> None:
    """Measure every crystal of a BSE field from its phase mask: size, shape, zoning, populations."""
    if min_area_px < 1:
        raise ValueError(f"--min-area-px must be at least 1, got {min_area_px}")
    micro, pheno = parse_sizes(sizes)
    config = CrystalConfig(
        min_area_px=min_area_px,
        microphenocryst_min_um=micro,
        phenocryst_min_um=pheno,
        background_degree=background_degree,
        extrapolation_margin=extrapolation_margin,
    )
    settings = settings_from(ctx)
    cat = load_catalogue(catalogue if catalogue is not None else settings.catalogue)
    bse = read_bse(image, pixel_size, max_pixels=settings.max_image_pixels)
    mask, mask_pixel_size = read_phase_mask(mask_path, cat)
    pixel_size_um = bse.pixel_size_um if bse.pixel_size_um is not None else mask_pixel_size
    probe = read_probe_points(probe_path, probe_column) if probe_path is not None else None
    analysis = analyse_crystals(bse.pixels, mask, pixel_size_um, cat, config, probe_points=probe, progress=True)
    source = {
        "image": str(image),
        "mask": str(mask_path),
        "probe": str(probe_path) if probe_path else None,
        "pixel_size_source": bse.pixel_size_source
        if bse.pixel_size_um is not None
        else ("mask sidecar" if mask_pixel_size else "unknown"),
    }
    paths = write_report(analysis, out, config, source)
    unit = "µm" if pixel_size_um is not None else "px (pixel size unknown)"
    click.echo(f"{len(analysis.table)} crystals, sizes in {unit}; wrote {len(paths)} files to {out}")
    for line in analysis.clusters["description"] if len(analysis.clusters) else ():
        click.echo(f"  {line}")
    if analysis.calibrated is not None:
        cal = analysis.calibrated.calibration
        click.echo(
            f"  calibration {cal.variable} = {cal.intercept:.2f} {cal.slope:+.2f} x level on {cal.n} points, residual sd {cal.residual_sd:.2f}"
        )
    for note in analysis.notes:
        click.echo(f"  note: {note}")
