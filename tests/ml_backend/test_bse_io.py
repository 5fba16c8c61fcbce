"""Reading BSE images: formats, bit depths, SEM pixel size, and clear errors on bad input."""

import warnings
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import tifffile

from ml_backend.bse_io import BSEReadError, RGBConversionWarning, read_bse
from tests.data import DEMO_REAL_FIELD as REAL_FIELD

FEI_TAG, ZEISS_TAG = 34682, 34118


def _ramp(dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    return np.linspace(0, info.max, 48 * 64).reshape(48, 64).astype(dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize(
    "write_kwargs",
    [{}, {"bigtiff": True}, {"tile": (32, 32), "compression": "zlib"}, {"compression": "lzw"}],
    ids=["plain", "bigtiff", "tiled-zlib", "lzw"],
)
def test_tiff_round_trip(tmp_path, dtype, write_kwargs):
    data = _ramp(dtype)
    path = tmp_path / "field.tif"
    tifffile.imwrite(path, data, **write_kwargs)
    image = read_bse(path)
    assert image.pixels.dtype == dtype
    np.testing.assert_array_equal(image.pixels, data)
    assert (image.pixel_size_um, image.pixel_size_source) == (None, "unknown")


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_png_round_trip(tmp_path, dtype):
    data = _ramp(dtype)
    path = tmp_path / "field.png"
    path.write_bytes(imagecodecs.png_encode(data))
    image = read_bse(path, pixel_size_um=0.8)
    np.testing.assert_array_equal(image.pixels, data)
    assert (image.pixel_size_um, image.pixel_size_source) == (0.8, "user")


def test_fei_metadata_gives_pixel_size(tmp_path):
    path = tmp_path / "fei.tif"
    text = "[User]\nDate=01/02/2024\n[Scan]\nPixelWidth=2.5e-07\nPixelHeight=2.5e-07\n"
    tifffile.imwrite(path, _ramp(np.uint16), extratags=[(FEI_TAG, "s", 0, text, True)])
    image = read_bse(path, pixel_size_um=9.0)  # metadata wins over the user's value
    assert image.pixel_size_source == "fei"
    assert image.pixel_size_um == pytest.approx(0.25)


def test_zeiss_metadata_gives_pixel_size(tmp_path):
    path = tmp_path / "zeiss.tif"
    text = "\r\n".join(["0", "0", "AP_PIXEL_SIZE", "Image Pixel Size = 48.83 nm", "AP_WD", "WD = 8.5 mm", ""])
    tifffile.imwrite(path, _ramp(np.uint8), extratags=[(ZEISS_TAG, "s", 0, text, True)])
    image = read_bse(path)
    assert image.pixel_size_source == "zeiss"
    assert image.pixel_size_um == pytest.approx(0.04883)


def test_rgb_export_converted_to_grey_with_warning(tmp_path):
    grey = _ramp(np.uint8)
    path = tmp_path / "rgba.png"
    path.write_bytes(imagecodecs.png_encode(np.dstack([grey, grey, grey, np.full_like(grey, 255)])))
    with pytest.warns(RGBConversionWarning, match="converted to grey"):
        image = read_bse(path)
    np.testing.assert_array_equal(image.pixels, grey)


def test_16bit_rgb_tiff_keeps_precision(tmp_path):
    grey = _ramp(np.uint16)
    path = tmp_path / "rgb16.tif"
    tifffile.imwrite(path, np.dstack([grey] * 3), photometric="rgb")
    with pytest.warns(RGBConversionWarning):
        image = read_bse(path)
    assert image.pixels.dtype == np.uint16
    np.testing.assert_array_equal(image.pixels, grey)


def test_real_tescan_field():
    image = read_bse(REAL_FIELD)
    assert image.shape == (500, 500)
    assert image.pixels.dtype == np.uint16
    assert image.pixel_size_source == "unknown"


def _file(name: str, content: bytes):
    def make(tmp_path: Path) -> Path:
        path = tmp_path / name
        path.write_bytes(content)
        return path

    return make


def _truncated_tiff(tmp_path: Path) -> Path:
    path = tmp_path / "cut.tif"
    tifffile.imwrite(path, _ramp(np.uint16), compression="zlib")
    path.write_bytes(path.read_bytes()[:300])
    return path


def _truncated_png(tmp_path: Path) -> Path:
    path = tmp_path / "cut.png"
    path.write_bytes(imagecodecs.png_encode(np.random.default_rng(0).integers(0, 255, (64, 64), np.uint8))[:400])
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing.tif", "file not found"),
        (_file("empty.tif", b""), "file is empty"),
        (_file("notes.txt", b"hello world"), "not a TIFF or PNG"),
        (lambda p: p, "is a directory"),
        (_truncated_tiff, "TIFF"),
        (_truncated_png, "PNG"),
    ],
    ids=["missing", "empty", "text", "directory", "truncated-tiff", "truncated-png"],
)
def test_bad_input_names_file_and_problem(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(BSEReadError, match=message) as info:
        read_bse(path)
    assert str(path) in str(info.value)


def test_decompression_bomb_refused_before_decoding(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(imagecodecs.png_encode(np.zeros((1000, 1000), np.uint8)))
    with pytest.raises(BSEReadError, match="exceeds the limit of 0 MPix"):
        read_bse(path, max_pixels=100_000)
    assert read_bse(path, max_pixels=1_000_000).shape == (1000, 1000)


def test_bad_user_pixel_size(tmp_path):
    path = tmp_path / "f.png"
    path.write_bytes(imagecodecs.png_encode(_ramp(np.uint8)))
    with pytest.raises(BSEReadError, match="positive number"):
        read_bse(path, pixel_size_um=-1)


def test_multipage_tiff_reads_first_plane(tmp_path):
    path = tmp_path / "stack.tif"
    stack = np.stack([_ramp(np.uint16), _ramp(np.uint16)[::-1]])
    tifffile.imwrite(path, stack)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        image = read_bse(path)
    np.testing.assert_array_equal(image.pixels, stack[0])


def test_demo_copy_of_the_real_field_is_the_published_file():
    import hashlib

    digest = hashlib.sha256(REAL_FIELD.read_bytes()).hexdigest()
    assert digest == "bb1586914d64125717c3da40e179fdfebd0391da38ed633a4dbb1d596e7aec40"
