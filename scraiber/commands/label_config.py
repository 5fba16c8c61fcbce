"""``scraiber label-config``: regenerate the Label Studio configs from a catalogue."""

from __future__ import annotations

from pathlib import Path

import click

from label_config.catalogue import load_catalogue
from label_config.generate import CONFIG_DIR, write_configs


@click.command("label-config")
@click.option("--catalogue", type=click.Path(dir_okay=False, path_type=Path), help="Your own catalogue TOML file.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=CONFIG_DIR, show_default=True)
def label_config(catalogue: Path | None, out: Path) -> None:
    """Write minerals.xml and crystals.xml generated from the mineral catalogue."""
    for path in write_configs(load_catalogue(catalogue), out):
        click.echo(f"wrote {path}")
