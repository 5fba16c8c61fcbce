"""Mask PNG + JSON sidecar writing and reading."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from label_config.catalogue import IGNORE_INDEX, load_catalogue
from ml_backend.masks import palette_png, read_mask, read_palette_png, sidecar_path, write_mask


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


def test_round_trip(tmp_path, catalogue):
    mask = np.random.default_rng(0).integers(0, len(catalogue), (37, 53)).astype(np.uint8)
    mask[0, 0] = IGNORE_INDEX
    png, side = write_mask(
        tmp_path / "sub" / "field.png", mask, catalogue, 0.75, {"method": "unsupervised", "model_version": "v1"}
    )
    assert (png, side) == (tmp_path / "sub" / "field.png", tmp_path / "sub" / "field.json")
    back, sidecar = read_mask(png)
    np.testing.assert_array_equal(back, mask)
    assert back.dtype == np.uint8
    assert sidecar["classes"] == {str(i): name for i, name in enumerate(catalogue.names)}
    assert sidecar["classes"]["0"] == "Epoxy"
    assert sidecar["pixel_size_um"] == 0.75
    assert sidecar["ignore_index"] == IGNORE_INDEX
    assert sidecar["method"] == "unsupervised" and sidecar["model_version"] == "v1"
    assert json.loads(side.read_text())["shape"] == [37, 53]


def test_unknown_pixel_size_is_null(tmp_path, catalogue):
    png, _ = write_mask(tmp_path / "m.png", np.zeros((4, 4), np.uint8), catalogue, None)
    assert read_mask(png)[1]["pixel_size_um"] is None


@pytest.mark.parametrize(
    "mask, message",
    [
        (np.zeros((4, 4), np.int32), "uint8"),
        (np.zeros((4, 4, 3), np.uint8), "2-D"),
        (np.full((4, 4), 6, np.uint8), r"\[6\]"),
    ],
)
def test_bad_masks_are_refused(tmp_path, catalogue, mask, message):
    with pytest.raises(ValueError, match=message):
        write_mask(tmp_path / "m.png", mask, catalogue, None)
    assert not (tmp_path / "m.png").exists()


def test_bad_path_pixel_size_and_extra_are_refused(tmp_path, catalogue):
    mask = np.zeros((4, 4), np.uint8)
    with pytest.raises(ValueError, match=".png"):
        write_mask(tmp_path / "m.tif", mask, catalogue, None)
    with pytest.raises(ValueError, match="pixel size"):
        write_mask(tmp_path / "m.png", mask, catalogue, -1.0)
    with pytest.raises(ValueError, match="reserved"):
        write_mask(tmp_path / "m.png", mask, catalogue, None, {"classes": {}})


def test_reading_without_sidecar_or_png_names_the_file(tmp_path, catalogue):
    png, side = write_mask(tmp_path / "m.png", np.zeros((4, 4), np.uint8), catalogue, None)
    side.unlink()
    with pytest.raises(ValueError, match="m.json"):
        read_mask(png)
    with pytest.raises(ValueError, match="missing.png"):
        read_mask(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    sidecar_path(tmp_path / "bad.png").write_text("{}")
    with pytest.raises(ValueError, match="bad.png"):
        read_mask(tmp_path / "bad.png")


def test_palette_png_keeps_indices_and_shows_catalogue_colours(tmp_path, catalogue):
    mask = np.array([[0, 1, 2], [3, 4, 5], [255, 255, 1]], np.uint8)
    path = tmp_path / "m.png"
    path.write_bytes(palette_png(mask, catalogue))
    assert np.array_equal(read_palette_png(path), mask)
    with Image.open(path) as image:
        assert image.mode == "P" and image.info["transparency"] == 255
        assert image.convert("RGB").getpixel((2, 0)) == catalogue.classes[2].rgb  # Plagioclase, yellow
    with pytest.raises(ValueError, match=r"class indices \[6\]"):
        palette_png(np.full((2, 2), 6, np.uint8), catalogue)
    Image.fromarray(mask).save(tmp_path / "grey.png")
    with pytest.raises(ValueError, match="expected an indexed"):
        read_palette_png(tmp_path / "grey.png")
