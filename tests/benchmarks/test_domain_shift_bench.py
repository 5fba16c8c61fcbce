"""``scraiber bench domain-shift`` end to end on a tiny configuration: the table, the JSON, the errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from benchmarks.domain_shift import domain_shift_bench
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
    assert {"unsupervised (Hungarian)", "grey-level GMM (Hungarian)"} <= set(methods)
    assert all(0.0 <= r["miou"] <= 1.0 for r in rows)
    assert rows[1]["fit_seconds"] > 0


def test_a_missing_leave_one_out_model_names_the_command_that_trains_it(tmp_path):
    result = CliRunner().invoke(domain_shift_bench, ["--models", str(tmp_path), "--family", "vitrophyric"])
    assert result.exit_code != 0
    assert "--hold-out vitrophyric" in str(result.exception) + result.output
