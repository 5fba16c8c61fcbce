"""``scraiber bench domain-shift`` end to end on a tiny configuration: the table, the JSON, the errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from benchmarks.domain_shift import OPEN_TILES, SECTION_SIDE, domain_shift_bench, section_loop_rows, section_tiles
from label_config import load_catalogue
from ml_backend.fcn import shipped_model_path


@pytest.mark.slow
def test_one_base_fcn_for_a_held_out_family_prints_every_method(tmp_path):
    out = tmp_path / "ds.json"
    base = shipped_model_path(load_catalogue())
    result = CliRunner().invoke(domain_shift_bench, ["--base", str(base), "--family", "vitrophyric", "--fields", "1",
                                                     "--size", "128", "--loop", "0,1", "--json", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"held-out FCN: {base}" in result.output
    rows = json.loads(out.read_text())["rows"]
    methods = [r["method"] for r in rows]
    assert methods[:2] == ["FCN zero-shot", "FCN + fast learner, 1 tiles"]
    assert methods[2:4] == ["one section: FCN zero-shot", "one section: FCN + fast learner, 1 tiles"]
    assert {"unsupervised (Hungarian)", "grey-level GMM (Hungarian)"} <= set(methods)
    assert all(0.0 <= r["miou"] <= 1.0 for r in rows)
    assert rows[1]["fit_seconds"] > 0


def test_a_missing_leave_one_out_model_names_the_command_that_trains_it(tmp_path):
    result = CliRunner().invoke(domain_shift_bench, ["--models", str(tmp_path), "--family", "vitrophyric"])
    assert result.exit_code != 0
    assert "--hold-out vitrophyric" in str(result.exception) + result.output


def test_a_sections_tiles_are_disjoint_cover_it_and_come_in_a_seeded_order():
    catalogue = load_catalogue()
    tiles = section_tiles("porphyritic", 32, 3_000_002_000, catalogue)
    again = section_tiles("porphyritic", 32, 3_000_002_000, catalogue)
    other = section_tiles("porphyritic", 32, 3_000_002_001, catalogue)
    assert len(tiles) == SECTION_SIDE**2 and all(image.shape == (32, 32) for image, _ in tiles)
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(tiles, again))
    # the tiles reassemble the section in some order: every tile is a distinct block of it
    blocks = {image.tobytes() for image, _ in tiles}
    assert len(blocks) == SECTION_SIDE**2 and blocks != {image.tobytes() for image, _ in other}


def test_more_corrected_tiles_than_a_section_leaves_beside_its_open_ones_is_refused():
    too_many = SECTION_SIDE**2 - OPEN_TILES + 1
    with pytest.raises(ValueError, match=f"asks {too_many}"):
        section_loop_rows("porphyritic", None, [3_000_002_000], [0, too_many], load_catalogue(), 32)  # type: ignore[arg-type]
