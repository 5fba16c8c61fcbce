"""Whole sections: windowed TIFF reading, bounded blending, tiled mask writing, streamed segmentation."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import tifffile
import torch
from click.testing import CliRunner

from label_config.catalogue import load_catalogue
from ml_backend.fcn import FCNConfig, FCNSegmenter, save_fcn
from ml_backend.mosaic import writer
from ml_backend.mosaic.methods import _on_device, prepare_method
from ml_backend.mosaic.reader import MosaicError, MosaicReader
from ml_backend.mosaic.segment import segment_image, segment_mosaic, should_stream, write_section_mask
from ml_backend.mosaic.stream import blend_bands, section_windows
from ml_backend.mosaic.synthetic import write_synthetic_mosaic
from ml_backend.mosaic.writer import write_mask_tiff
from ml_backend.normalise import IntensityRange
from ml_backend.tiling import Window, predict_tiled
from scraiber.cli import main

CATALOGUE = load_catalogue()
FAST = {"n_clusters": 5, "tile": 256, "overlap": 32}  # unsupervised options: one fit, small windows


@pytest.fixture(scope="module")
def mosaic(tmp_path_factory: pytest.TempPathFactory):
    """A 600 x 700 synthetic mosaic of 256 px tiles and its true classes."""
    folder = tmp_path_factory.mktemp("mosaic")
    path, truth = folder / "section.tif", folder / "truth.tif"
    pixel_size = write_synthetic_mosaic(path, (600, 700), tile=256, seed=3, truth_path=truth)
    return path, tifffile.imread(truth), pixel_size


def _image(shape=(300, 410), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 65535, shape, dtype=np.uint16)


@pytest.mark.parametrize(
    "layout, options",
    [
        ("tiled", {"tile": (64, 48), "compression": "zlib"}),
        ("strips", {"rowsperstrip": 7, "compression": "zlib"}),
        ("contiguous", {}),
        ("tiled", {"tile": (32, 32), "bigtiff": True}),
    ],
)
def test_reader_windows_equal_the_image(tmp_path, layout, options):
    image = _image()
    tifffile.imwrite(tmp_path / "m.tif", image, **options)
    with MosaicReader(tmp_path / "m.tif") as reader:
        assert reader.layout == layout and reader.shape == image.shape and reader.dtype == np.uint16
        for y0, y1, x0, x1 in [(0, 300, 0, 410), (5, 77, 13, 200), (299, 300, 409, 410), (10, 10, 0, 5)]:
            np.testing.assert_array_equal(reader[y0:y1, x0:x1], image[y0:y1, x0:x1])
        np.testing.assert_array_equal(reader[..., 100:, :50], image[100:, :50])
        assert reader.is_bigtiff == bool(options.get("bigtiff"))


def test_reader_decodes_only_the_tiles_a_window_touches(tmp_path):
    image = _image((256, 256))
    tifffile.imwrite(tmp_path / "m.tif", image, tile=(32, 32), compression="zlib")
    with MosaicReader(tmp_path / "m.tif", cache_bytes=0) as reader:
        reader.read(40, 70, 10, 40)  # rows 40-69 -> tile rows 1-2; cols 10-39 -> tile cols 0-1
        assert reader.segments_decoded == 4
    with MosaicReader(tmp_path / "m.tif") as cached:
        cached.read(0, 64, 0, 64)
        cached.read(0, 64, 32, 96)  # two of its four tiles are cached
        assert cached.segments_decoded == 6


def test_contiguous_reader_reads_only_window_rows(tmp_path):
    image = _image((200, 300))
    tifffile.imwrite(tmp_path / "m.tif", image)
    with MosaicReader(tmp_path / "m.tif") as reader:
        np.testing.assert_array_equal(reader.read(10, 20, 100, 150), image[10:20, 100:150])
        assert reader.pixels_read == 10 * 50


def test_reader_sample_is_the_whole_image_or_a_grid_of_blocks(tmp_path):
    image = _image((300, 410))
    tifffile.imwrite(tmp_path / "m.tif", image, tile=(32, 32))
    with MosaicReader(tmp_path / "m.tif") as reader:
        np.testing.assert_array_equal(reader.sample(300 * 410), image)
        grid = reader.sample(4 * 64 * 64, block=64)
    assert grid.shape == (128, 128)
    np.testing.assert_array_equal(grid[:64, :64], image[:64, :64])
    np.testing.assert_array_equal(grid[64:, 64:], image[236:300, 346:410])


def test_reader_errors_name_the_file(tmp_path):
    (tmp_path / "a.tif").write_text("not an image")
    with pytest.raises(MosaicError, match=r"a\.tif: not a TIFF file"):
        MosaicReader(tmp_path / "a.tif")
    with pytest.raises(MosaicError, match="cannot open"):
        MosaicReader(tmp_path / "missing.tif")
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(MosaicError, match="single-channel"):
        MosaicReader(tmp_path / "rgb.tif")
    tifffile.imwrite(tmp_path / "g.tif", _image((8, 8)))
    with MosaicReader(tmp_path / "g.tif") as reader, pytest.raises(IndexError, match="by windows"):
        reader[::2, :]


def test_section_windows_share_exactly_the_overlap():
    rows = section_windows((1000, 700), tile=256, overlap=32)
    xs = [(w.x0, w.x1) for w in rows[0]]
    assert xs == [(0, 256), (224, 480), (448, 700)]
    assert [row[0].y0 for row in rows] == [0, 224, 448, 672, 896]
    assert rows[-1][0].y1 == 1000
    with pytest.raises(ValueError, match="overlap"):
        section_windows((10, 10), 8, 8)


def _pixelwise(image: np.ndarray) -> np.ndarray:
    """Class probabilities that depend on each pixel only (so any window layout agrees)."""
    x = image.astype(np.float32) / 65535
    centres = np.linspace(0, 1, 4, dtype=np.float32)[:, None, None]
    scores = np.exp(-((x[None] - centres) ** 2) * 50)
    return scores / scores.sum(axis=0)


def test_blended_bands_equal_in_memory_tiling():
    image = _image((530, 610), seed=4)
    rows = section_windows(image.shape, 128, 24)
    scores = (_pixelwise(image[w.slices]) for row in rows for w in row)
    streamed = np.concatenate(list(blend_bands(scores, rows, image.shape, 24)))
    expected = predict_tiled(_pixelwise, image, 4, tile=128, overlap=24, reduce=lambda b: b.argmax(0).astype(np.uint8))
    assert streamed.dtype == np.uint8
    np.testing.assert_array_equal(streamed, expected)


def test_blending_weights_the_overlap_and_holds_one_row_of_windows():
    shape = (300, 300)
    rows = section_windows(shape, 160, 20)
    consumed: list[Window] = []

    def scores():
        for row in rows:
            for window in row:
                consumed.append(window)
                probs = np.zeros((2, *window.shape), np.float32)
                probs[0 if window.x0 == 0 else 1] = 1.0  # left windows say 0, right ones say 1
                yield probs

    bands = blend_bands(scores(), rows, shape, 20)
    first = next(bands)
    assert len(consumed) == len(rows[0])  # the first band needed only the first row of windows
    assert first.shape == (140, 300)
    # in the 20 px overlap (columns 140-159) the raised-cosine ramps cross at the middle
    np.testing.assert_array_equal(first[0, 130:170], [0] * 20 + [1] * 20)
    rest = np.concatenate(list(bands))
    assert rest.shape == (160, 300)


def test_tiled_mask_writer_checks_bands_and_writes_bigtiff(tmp_path, monkeypatch):
    mask = np.arange(300 * 260, dtype=np.int64).reshape(300, 260) % 6
    mask = mask.astype(np.uint8)
    path, side = write_mask_tiff(
        tmp_path / "m.tif", mask.shape, [mask[:100], mask[100:]], CATALOGUE, 1.5, {"method": "x"}
    )
    np.testing.assert_array_equal(tifffile.imread(path), mask)
    sidecar = json.loads(side.read_text())
    assert sidecar["shape"] == [300, 260] and sidecar["pixel_size_um"] == 1.5 and sidecar["method"] == "x"
    assert sidecar["classes"]["0"] == "Epoxy" and sidecar["ignore_index"] == 255
    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        assert page.is_tiled and page.tile == (256, 256) and page.compression == 8 and not tif.is_bigtiff
    with MosaicReader(path) as reader:
        assert reader.pixel_size_um == pytest.approx(1.5)  # stored as pixels per centimetre
    with pytest.raises(ValueError, match="cover 100 rows"):
        write_mask_tiff(tmp_path / "short.tif", mask.shape, [mask[:100]], CATALOGUE, None)
    with pytest.raises(ValueError, match="more than"):
        write_mask_tiff(tmp_path / "long.tif", (100, 260), [mask[:100], mask[:1]], CATALOGUE, None)
    with pytest.raises(ValueError, match="give a path ending in .tif"):
        write_mask_tiff(tmp_path / "m.png", mask.shape, [mask], CATALOGUE, None)
    monkeypatch.setattr(writer, "BIGTIFF_PIXELS", 1000)
    path, _ = write_mask_tiff(tmp_path / "big.tif", mask.shape, [mask], CATALOGUE, None)
    with tifffile.TiffFile(path) as tif:
        assert tif.is_bigtiff


def test_synthetic_mosaic_has_one_acquisition_and_reused_tiles(tmp_path, mosaic):
    path, truth, pixel_size = mosaic
    with MosaicReader(path) as reader:
        assert reader.shape == (600, 700) and reader.layout == "tiled"
        assert reader.pixel_size_um == pytest.approx(pixel_size, rel=1e-6)
    assert truth.shape == (600, 700) and set(np.unique(truth)) <= set(range(len(CATALOGUE)))
    write_synthetic_mosaic(tmp_path / "u.tif", 512, tile=256, seed=3, unique=1, truth_path=tmp_path / "ut.tif")
    image, classes = tifffile.imread(tmp_path / "u.tif"), tifffile.imread(tmp_path / "ut.tif")
    np.testing.assert_array_equal(image[:256, 256:], np.rot90(image[:256, :256]))
    np.testing.assert_array_equal(classes[:256, 256:], np.rot90(classes[:256, :256]))


def test_streamed_segmentation_equals_in_memory(tmp_path, mosaic):
    path, truth, pixel_size = mosaic
    with MosaicReader(path) as reader:
        streamed, side = segment_mosaic(reader, tmp_path / "s.tif", "unsupervised", CATALOGUE, options=FAST)
    in_memory, _ = segment_image(path, tmp_path / "m.tif", "unsupervised", CATALOGUE, options=FAST)
    a, b = tifffile.imread(streamed), tifffile.imread(in_memory)
    assert a.shape == (600, 700) and a.dtype == np.uint8
    assert (a == b).mean() > 0.999
    assert (a == truth).mean() > 0.5  # a sane segmentation, not just equal garbage
    with tifffile.TiffFile(streamed) as tif:
        assert tif.pages.first.is_tiled and tif.pages.first.compression == 8
    sidecar = json.loads(side.read_text())
    assert sidecar["streamed"] is True and sidecar["method"] == "unsupervised" and sidecar["shape"] == [600, 700]
    assert sidecar["pixel_size_um"] == pytest.approx(pixel_size) and len(sidecar["intensity_range"]) == 2


class _CountingReader(MosaicReader):
    """Records the size of every read."""

    reads: list[tuple[int, int]]

    def read(self, y0, y1, x0, x1):
        self.reads = getattr(self, "reads", []) + [(y1 - y0, x1 - x0)]
        return super().read(y0, y1, x0, x1)


def test_streaming_reads_windows_not_the_mosaic(tmp_path, mosaic):
    path, _, _ = mosaic
    small = tmp_path / "small-tiles.tif"
    tifffile.imwrite(small, tifffile.imread(path), tile=(16, 16), compression="zlib")
    with _CountingReader(small, cache_bytes=16 * 16 * 2) as reader:
        _, side = segment_mosaic(
            reader, tmp_path / "s.tif", "unsupervised", CATALOGUE, options=FAST, sample_pixels=512 * 512
        )
        halo = json.loads(side.read_text())["windows"]["halo"]
        sample, *windows = reader.reads
        assert sample == (512, 512)  # one block: the sample is not the mosaic
        assert max(h * w for h, w in windows) <= (256 + 2 * halo) ** 2
        assert sum(h * w for h, w in reader.reads) < 3 * 600 * 700  # each window once (+ halo and the sample)
        tiles_per_window = ((256 + 2 * halo) // 16 + 2) ** 2
        n_windows = len([w for row in section_windows((600, 700), 256, 32) for w in row])
        assert reader.segments_decoded <= (n_windows + 4) * tiles_per_window


def test_should_stream(tmp_path):
    tifffile.imwrite(tmp_path / "plain.tif", _image((64, 64)))
    tifffile.imwrite(tmp_path / "tiled.tif", _image((64, 64)), tile=(16, 16))
    (tmp_path / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    assert not should_stream(tmp_path / "plain.tif")
    assert should_stream(tmp_path / "plain.tif", above_pixels=100)
    assert should_stream(tmp_path / "tiled.tif")
    assert not should_stream(tmp_path / "x.png")


def test_segment_command_streams_and_reports_bad_inputs(tmp_path, mosaic):
    path, _, _ = mosaic
    runner = CliRunner()
    result = runner.invoke(main, ["segment", str(path), "--out", str(tmp_path / "mask.tif")])
    assert result.exit_code == 0, result.output
    assert "streamed" in result.output and tifffile.imread(tmp_path / "mask.tif").shape == (600, 700)
    (tmp_path / "bad.tif").write_text("hello")
    for args, message in [
        (["segment", str(tmp_path / "bad.tif"), "--out", "x.tif", "--stream"], "bad.tif: not a TIFF file"),
        (["segment", str(tmp_path / "nope.tif"), "--out", "x.tif"], "nope.tif: no such image file"),
        (["segment", str(path), "--out", str(tmp_path / "x.png"), "--stream"], "give a path ending in .tif"),
        (["segment", str(path), "--out", "x.tif", "--method", "magic"], "valid methods: fcn, unsupervised"),
    ]:
        result = runner.invoke(main, args)
        assert result.exit_code == 1
        lines = result.output.strip().splitlines()
        assert lines[-1].startswith("scraiber: error:") and message in lines[-1], result.output


@pytest.fixture(scope="module")
def tiny_fcn(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A randomly initialised small FCN (weights do not matter for agreement between paths)."""
    torch.manual_seed(0)
    config = FCNConfig.for_architecture("unet-mobilenet_v2", CATALOGUE.names, tile=128, overlap=32, halo=16)
    return str(save_fcn(tmp_path_factory.mktemp("fcn") / "tiny", config.build().state_dict(), config))


def test_fcn_windows_as_tensors_blend_like_numpy(tmp_path, mosaic, tiny_fcn):
    """The GPU path (network run here, torch tensors blended on the device) on the CPU
    agrees with the predictor's numpy path."""
    path, _, _ = mosaic
    with MosaicReader(path) as reader:
        sample = reader.sample(2**20)
        model = prepare_method("fcn", CATALOGUE, sample, model=tiny_fcn, runtime="eager", threads=1)
        numpy_mask, _ = write_section_mask(reader, model, tmp_path / "numpy.tif", CATALOGUE, "fcn")
        segmenter = FCNSegmenter(CATALOGUE, tiny_fcn, device="cpu", runtime="eager", threads=1)
        low, high = model.info["intensity_range"]
        tensors = replace(model, predict=_on_device(segmenter, IntensityRange(low, high)))
        torch_mask, _ = write_section_mask(reader, tensors, tmp_path / "torch.tif", CATALOGUE, "fcn")
    a, b = tifffile.imread(numpy_mask), tifffile.imread(torch_mask)
    assert a.shape == (600, 700) and (a == b).mean() > 0.99
