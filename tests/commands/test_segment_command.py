"""``scraiber segment`` (unsupervised, in memory) and ``scraiber bench segment`` through the CLI."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from skimage.filters import threshold_otsu

from ml_backend.bse_io import read_bse
from ml_backend.masks import read_mask
from scraiber.cli import main
from tests.data import DEMO_REAL_FIELD as REAL_FIELD


def _one_line_error(result) -> str:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("scraiber: error: "), result.stderr
    return lines[0]


def test_segment_writes_mask_and_sidecar(tmp_path):
    out = tmp_path / "field1-mask.png"
    result = CliRunner().invoke(
        main, ["segment", str(REAL_FIELD), "--method", "unsupervised", "--out", str(out), "--pixel-size", "0.5"]
    )
    assert result.exit_code == 0, result.output
    mask, sidecar = read_mask(out)
    assert mask.shape == (500, 500) and mask.dtype == np.uint8
    assert sidecar["classes"]["0"] == "Epoxy"
    assert sidecar["pixel_size_um"] == 0.5
    assert sidecar["method"] == "unsupervised"
    assert sidecar["model_version"].startswith("unsupervised-")
    assert sidecar["source"] == REAL_FIELD.name
    assert len(np.unique(mask)) >= 2


def test_missing_file_is_one_line_error(tmp_path):
    result = CliRunner().invoke(main, ["segment", str(tmp_path / "nope.png"), "--out", str(tmp_path / "m.png")])
    assert "nope.png" in _one_line_error(result)
    assert not (tmp_path / "m.png").exists()


def test_corrupt_file_is_one_line_error(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    result = CliRunner().invoke(main, ["segment", str(bad), "--out", str(tmp_path / "m.png")])
    assert "bad.png" in _one_line_error(result)


def test_unknown_method_lists_the_valid_ones(tmp_path):
    result = CliRunner().invoke(
        main, ["segment", str(REAL_FIELD), "--method", "kmeans", "--out", str(tmp_path / "m.png")]
    )
    line = _one_line_error(result)
    assert "kmeans" in line and "unsupervised" in line


@pytest.mark.slow
def test_bench_prints_speed_and_memory_per_size():
    result = CliRunner().invoke(main, ["bench", "segment", "--sizes", "1", "--n-clusters", "4"])
    assert result.exit_code == 0, result.output
    header, row = result.output.strip().splitlines()[-2:]
    assert "predict ms/MPix" in header and "peak RSS MiB" in header
    fields = row.split()
    assert fields[:3] == ["1024", "x", "1024"]
    # predict ms/MPix and CPU ms/MPix are positive; peak RSS too (its growth over the start can be 0)
    assert float(fields[7]) > 0 and float(fields[8]) > 0 and float(fields[-2]) > 0 and float(fields[-1]) >= 0


def test_bench_rejects_bad_sizes():
    result = CliRunner().invoke(main, ["bench", "segment", "--sizes", "a,b"])
    assert "--sizes" in _one_line_error(result)


def test_cluster_count_and_user_catalogue(tmp_path):
    catalogue = tmp_path / "two.toml"
    catalogue.write_text(
        '[[mineral]]\nname = "Matrix"\ncolor = "#222222"\nformula = "SiO2"\n'
        '[[mineral]]\nname = "Grains"\ncolor = "#DDDDDD"\nformula = "Fe2SiO4"\n'
    )
    out = tmp_path / "m.png"
    args = ["segment", str(REAL_FIELD), "--out", str(out), "--n-clusters", "2", "--catalogue", str(catalogue)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    mask, sidecar = read_mask(out)
    assert sidecar["classes"] == {"0": "Matrix", "1": "Grains"}
    assert set(np.unique(mask)) == {0, 1}
    image = read_bse(REAL_FIELD).pixels
    # Grains = the bright phase: 0.87 of pixels agree with Otsu's split (texture features move some edges)
    assert ((mask == 1) == (image > threshold_otsu(image))).mean() > 0.8


def test_cluster_count_is_for_the_unsupervised_method_only(tmp_path):
    args = ["segment", str(REAL_FIELD), "--out", str(tmp_path / "m.png"), "--method", "fcn", "--n-clusters", "3"]
    assert "--n-clusters" in _one_line_error(CliRunner().invoke(main, args))
