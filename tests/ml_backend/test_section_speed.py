"""Whole sections with the FCN on the CPU: the int8 model is built once per machine (kept on disk), so
streaming a section costs no more per pixel than the backend's in-memory prediction (/predict's core)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from label_config import load_catalogue
from ml_backend.fcn import FCNSegmenter
from ml_backend.fcn import segmenter as fcn_segmenter
from ml_backend.mosaic.reader import MosaicReader
from ml_backend.mosaic.segment import segment_mosaic
from ml_backend.mosaic.synthetic import write_synthetic_mosaic

CAT = load_catalogue()


@pytest.fixture
def fresh_process_cache(monkeypatch):
    """As in a new process: nothing in the per-process ONNX cache."""
    monkeypatch.setattr(fcn_segmenter, "_ONNX_CACHE", {})


def test_int8_model_is_quantised_once_per_machine(tmp_path, monkeypatch, fresh_process_cache):
    first = FCNSegmenter(CAT, device="cpu", runtime="onnx-int8", onnx_cache=tmp_path / "onnx")
    stored = list((tmp_path / "onnx").glob("*.onnx"))
    assert len(stored) == 1 and first.version[4:] in stored[0].name
    monkeypatch.setattr(fcn_segmenter, "_ONNX_CACHE", {})  # another process

    def refuse(*args, **kwargs):
        raise AssertionError("quantised again although the model is on disk")

    monkeypatch.setattr(fcn_segmenter, "quantise_onnx", refuse)
    monkeypatch.setattr(fcn_segmenter, "export_onnx", refuse)
    again = FCNSegmenter(CAT, device="cpu", runtime="onnx-int8", onnx_cache=tmp_path / "onnx")
    image = np.random.default_rng(0).integers(0, 60000, (96, 96)).astype(np.uint16)
    np.testing.assert_array_equal(again.segment(image), first.segment(image))


@pytest.mark.slow
def test_a_streamed_section_costs_no_more_per_pixel_than_predict(tmp_path, fresh_process_cache):
    mosaic = tmp_path / "section.tif"
    write_synthetic_mosaic(mosaic, 2048, 1024, seed=0, unique=2)
    cache = tmp_path / "onnx"
    segmenter = FCNSegmenter(CAT, device="cpu", onnx_cache=cache)  # the one-off per machine, untimed
    with MosaicReader(mosaic) as reader:
        image = reader.read(0, 2048, 0, 2048)
    segmenter.predict_proba(image[:256, :256])  # warm
    fcn_segmenter._ONNX_CACHE.clear()  # the section command runs in a process of its own

    start = time.perf_counter()
    segmenter.predict_proba(image)  # what /predict does with a 2048 x 2048 image, less fetch and RLE
    in_memory = time.perf_counter() - start
    start = time.perf_counter()
    with MosaicReader(mosaic) as reader:
        segment_mosaic(reader, tmp_path / "mask.tif", "fcn", CAT, {"onnx_cache": str(cache)}, device="cpu")
    streamed = time.perf_counter() - start  # everything: model, sample, windows, TIFF
    print(f"2048 x 2048: in memory {in_memory:.1f} s, streamed {streamed:.1f} s")
    assert streamed <= in_memory, f"streamed {streamed:.1f} s vs in memory {in_memory:.1f} s"
