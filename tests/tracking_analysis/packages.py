"""Helpers of the export tests: the recorded session's images, and an export of it through the CLI."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from PIL import Image

from label_config import load_catalogue
from ml_backend.synthetic import generate_section
from scraiber.cli import main
from scraiber.settings import Settings
from tests.tracking_analysis.record_session import DATA, SEEDS, SIZE

CREATOR = "Carberry, Josiah|0000-0002-1825-0097|Brown University https://ror.org/05gq02987"
OPTED_IN = "Example, Annotator B|0000-0003-1415-9269|Example Institute https://ror.org/00example|u-358a221f4caa6386"


def session_images(folder: Path) -> Path:
    """The session's fields as Label Studio got them (``field-<seed>.png``, 16-bit), in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for seed in SEEDS:
        section = generate_section(SIZE, seed=seed, catalogue=load_catalogue())
        Image.fromarray(section.image).save(folder / f"field-{seed}.png")
    return folder


def export_session(out: Path, images: Path, *args: str, settings: Settings | None = None) -> str:
    """``scraiber export`` of the recorded session; returns its output (fails the test if it fails)."""
    settings = settings or Settings(_env_file=None, data_dir=out.parent / "data-dir")
    result = CliRunner().invoke(
        main, ["export", "--snapshot", str(DATA / "session.json"), "--out", str(out), "--images", str(images), *args],
        obj={"settings": settings},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return result.output
