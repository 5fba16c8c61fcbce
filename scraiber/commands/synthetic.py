"""``scraiber synth``: write N synthetic thin sections with ground truth into a folder."""

from __future__ import annotations

import os
from pathlib import Path

import click
from tqdm import tqdm

from label_config.catalogue import load_catalogue
from ml_backend.synthetic.config import SynthConfig
from ml_backend.synthetic.section import MAX_SIZE, MIN_SIZE, generate_section
from ml_backend.synthetic.writer import write_section
from scraiber.settings import settings_from


def _writable_dir(out: Path) -> Path:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(f"cannot create output folder {out} ({exc.strerror or exc}); choose a writable --out") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise OSError(f"output folder {out} is not writable; choose a writable --out")
    return out


@click.command("synth")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Folder to write field_000... into.")
@click.option("--n", "count", type=int, default=1, show_default=True, help="Number of sections.")
@click.option("--size", type=int, default=1024, show_default=True, help=f"Side length in px ({MIN_SIZE}-{MAX_SIZE}).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the first section (then seed+1, ...).")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML/JSON overrides of SynthConfig ranges.",
)
@click.option(
    "--catalogue", type=click.Path(dir_okay=False, path_type=Path), help="Your own catalogue TOML (default: settings)."
)
@click.pass_context
def synth_command(
    ctx: click.Context, out: Path, count: int, size: int, seed: int, config_path: Path | None, catalogue: Path | None
) -> None:
    """Write synthetic BSE thin sections (image, class mask, crystal instances, crystal table)."""
    if count < 1:
        raise ValueError(f"--n must be at least 1, got {count}")
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"--size must be between {MIN_SIZE} and {MAX_SIZE} px, got {size}")
    if seed < 0:
        raise ValueError(f"--seed must not be negative, got {seed}")
    config = SynthConfig.from_file(config_path) if config_path is not None else SynthConfig()
    cat = load_catalogue(catalogue if catalogue is not None else settings_from(ctx).catalogue)
    out = _writable_dir(out)
    width = max(3, len(str(count - 1)))
    for k in tqdm(range(count), desc="synth", unit="section"):
        section = generate_section(size, seed + k, config, cat)
        write_section(section, out, f"field_{k:0{width}d}")
    click.echo(f"wrote {count} section(s) of {size} x {size} px to {out}")
