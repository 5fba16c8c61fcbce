"""``scraiber crystals`` end to end, and its one-line errors on bad input."""

from __future__ import annotations

import json

import imagecodecs
import numpy as np
import pandas as pd
import pytest
import tifffile
from click.testing import CliRunner
from skimage.draw import disk

from label_config.catalogue import load_catalogue
from ml_backend.masks import write_mask
from ml_backend.synthetic import generate_section, write_section
from scraiber.cli import main
from scraiber.commands.crystals import parse_sizes
from scraiber.settings import Settings

CAT = load_catalogue()
GROUNDMASS, OLIVINE, CPX = CAT.index_of("Groundmass"), CAT.index_of("Olivine"), CAT.index_of("Clinopyroxene")
CENTRES = [(40, 40), (40, 120), (120, 40), (120, 120), (40, 200)]
LEVELS = [20000, 22000, 24000, 26000, 28000]  # olivine grey levels, darkest = most magnesian


def _fo(level: float) -> float:
    return 95.0 - (level - 20000) / 8000 * 20  # 95 -> 75 Fo over the five crystals


def _run(args: list[str]):
    return CliRunner().invoke(main, args, obj={"settings": Settings(_env_file=None)})


@pytest.fixture()
def field(tmp_path):
    """Five unzoned olivine discs of known Fo and one clinopyroxene on groundmass, with a probe file."""
    mask = np.full((160, 240), GROUNDMASS, np.uint8)
    image = np.full(mask.shape, 15000.0)
    for centre, level in zip(CENTRES, LEVELS):
        rr, cc = disk(centre, 25, shape=mask.shape)
        mask[rr, cc], image[rr, cc] = OLIVINE, level
    mask[80:120, 190:220], image[80:120, 190:220] = CPX, 30000
    image += np.random.default_rng(0).normal(0, 150, image.shape)
    tifffile.imwrite(tmp_path / "field.tif", np.clip(image, 0, 65535).astype(np.uint16))
    write_mask(tmp_path / "mask.png", mask, CAT, pixel_size_um=2.0)
    probe = pd.DataFrame({"x": [c[1] for c in CENTRES], "y": [c[0] for c in CENTRES], "Fo": [_fo(v) for v in LEVELS]})
    probe.to_csv(tmp_path / "probe.csv", index=False)
    return tmp_path


def test_crystals_command_writes_every_output(field):
    out = field / "out"
    result = _run(
        [
            "crystals",
            str(field / "field.tif"),
            "--mask",
            str(field / "mask.png"),
            "--out",
            str(out),
            "--probe",
            str(field / "probe.csv"),
            "--sizes",
            "30,300",
        ]
    )
    assert result.exit_code == 0, result.output
    assert "6 crystals, sizes in µm" in result.output and "calibration Fo =" in result.output
    names = {p.name for p in out.iterdir()}
    assert names == {
        "crystals.csv", "crystals.parquet", "modal.csv", "modal.json", "size_distribution.csv", "size_distribution.png",
        "zoning_summary.csv", "zoning_summary.json", "clusters.csv", "summary.json", "calibration.json",
        "calibration_points.csv", "composition_Fo.tif",
    }  # fmt: skip
    table = pd.read_parquet(out / "crystals.parquet")
    pd.testing.assert_frame_equal(
        table, pd.read_csv(out / "crystals.csv"), check_dtype=False, check_exact=False, atol=1e-9
    )
    olivine = table[table["class_name"] == "Olivine"].sort_values("core_level")
    assert len(olivine) == 5 and (olivine["zoning"] == "unzoned").all()
    assert olivine["ecd_um"].tolist() == pytest.approx([2.0 * np.sqrt(4 * len(disk((0, 0), 25)[0]) / np.pi)] * 5)
    assert olivine["population"].tolist() == ["microphenocryst"] * 5  # 100 µm
    np.testing.assert_allclose(olivine["core_Fo"], [_fo(v) for v in LEVELS], atol=0.5)
    summary = json.loads((out / "summary.json").read_text())
    assert (
        summary["crystals"] == 6
        and summary["pixel_size_um"] == 2.0
        and summary["source"]["pixel_size_source"] == "mask sidecar"
    )
    modal = json.loads((out / "modal.json").read_text())
    assert {row["class_name"]: row["area_px"] for row in modal}["Clinopyroxene"] == 1200
    fo_map = tifffile.imread(out / "composition_Fo.tif")
    assert fo_map.dtype == np.float32 and np.isnan(fo_map[0, 0]) and fo_map[40, 40] == pytest.approx(95.0, abs=1.0)
    assert (out / "size_distribution.png").read_bytes()[:4] == b"\x89PNG"


def test_synthetic_section_without_sidecar_and_unknown_pixel_size(tmp_path):
    paths = write_section(generate_section(256, 4), tmp_path, "field")
    result = _run(["crystals", str(paths["image"]), "--mask", str(paths["classes"]), "--out", str(tmp_path / "a")])
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["source"]["pixel_size_source"] == "fei" and summary["size_unit"] == "um"
    # a PNG export carries no pixel size: px units, said so
    png = tmp_path / "plain.png"
    png.write_bytes(imagecodecs.png_encode(tifffile.imread(paths["image"])))
    result = _run(["crystals", str(png), "--mask", str(paths["classes"]), "--out", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    assert "sizes in px (pixel size unknown)" in result.output and "note: pixel size unknown" in result.output
    assert "ecd_um" not in pd.read_csv(tmp_path / "b" / "crystals.csv").columns


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda f: ["--mask", str(f / "missing.png")], "cannot read mask"),
        (lambda f: ["--sizes", "300,30"], "--sizes must be increasing"),
        (lambda f: ["--min-area-px", "0"], "--min-area-px must be at least 1"),
        (lambda f: ["--probe", str(f / "two.csv")], "2 usable probe point"),
        (lambda f: ["--probe", str(f / "far.csv"), "--extrapolation-margin", "1"], "beyond the calibrated"),
        (lambda f: ["--mask", str(f / "small.png")], "differ in shape"),
    ],
    ids=["missing-mask", "sizes", "min-area", "too-few-points", "extrapolation", "shape"],
)
def test_bad_input_is_one_line_and_exit_1(field, change, message):
    pd.DataFrame({"x": [40, 120], "y": [40, 40], "Fo": [95.0, 90.0]}).to_csv(field / "two.csv", index=False)
    # three points on the two darkest crystals only: the three brighter ones lie far beyond the calibration
    pd.DataFrame({"x": [40, 45, 120], "y": [40, 40, 40], "Fo": [95.0, 95.1, 90.0]}).to_csv(
        field / "far.csv", index=False
    )
    imagecodecs_png = imagecodecs.png_encode(np.full((10, 10), GROUNDMASS, np.uint8))
    (field / "small.png").write_bytes(imagecodecs_png)
    base = ["crystals", str(field / "field.tif"), "--mask", str(field / "mask.png"), "--out", str(field / "out")]
    result = _run(base + change(field))
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("scraiber: error:") and message in lines[-1], result.output


def test_mask_from_another_catalogue_is_refused(field, tmp_path):
    mask = np.full((160, 240), 1, np.uint8)
    (tmp_path / "other.png").write_bytes(imagecodecs.png_encode(mask))
    (tmp_path / "other.json").write_text(json.dumps({"classes": {"0": "Glass", "1": "Quartz"}, "shape": [160, 240]}))
    result = _run(
        ["crystals", str(field / "field.tif"), "--mask", str(tmp_path / "other.png"), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 1 and "differ from the catalogue" in result.output


def test_parse_sizes():
    assert parse_sizes("100,500") == (100.0, 500.0)
    with pytest.raises(ValueError, match="two numbers"):
        parse_sizes("100")
