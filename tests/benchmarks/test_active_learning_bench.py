"""The active-learning benchmark: its statistics exactly, and a reduced configuration end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

from benchmarks.active_learning.analysis import explicit_twin
from benchmarks.active_learning.loop import parse_arm
from benchmarks.active_learning.stats import budget_to_reach, censored_log_ratio, efficiency, holm, normalised_auc
from label_config import load_catalogue
from ml_backend.fcn import shipped_model_path
from tracking_analysis.learning_curve import read_learning_curve


def test_budget_to_reach_interpolates_in_log_budget_after_an_isotonic_fit():
    assert budget_to_reach([1, 2, 4, 8], [0.5, 0.6, 0.7, 0.8], 0.65) == pytest.approx(2**1.5)
    assert budget_to_reach([1, 2, 4, 8], [0.9, 0.95, 0.9, 1.0], 0.5) == 1.0
    # a dip is pooled: (0.6 + 0.4) / 2 = 0.5 at budgets 2 and 4, so 0.55 is crossed between 4 and 8
    assert budget_to_reach([1, 2, 4, 8], [0.3, 0.6, 0.4, 0.8], 0.55) == pytest.approx(2 ** (2 + 0.05 / 0.3))
    assert math.isinf(budget_to_reach([1, 2], [0.1, 0.2], 0.5))


def test_censoring_rule_is_conservative_for_the_strategy():
    assert censored_log_ratio(64, 16, 256) == pytest.approx(math.log(4))
    assert censored_log_ratio(math.inf, 16, 256) == pytest.approx(math.log(16))  # random at most 256
    assert censored_log_ratio(64, math.inf, 256) == pytest.approx(math.log(64 / 512))
    assert censored_log_ratio(math.inf, math.inf, 256) == 0.0


def test_efficiency_claims_2x_only_with_a_lower_bound_above_one():
    strong = efficiency([64] * 10, [16, 16, 32, 16, 16, 32, 16, 16, 32, 16], 256)
    assert strong["geometric_mean_ratio"] > 2 and strong["ci_low"] > 1 and strong["claim_2x"] == 1
    assert strong["wilcoxon_p"] < 0.01
    noisy = efficiency([64] * 6, [8, 256, 8, 256, 8, 256], 256)
    assert noisy["claim_2x"] == 0 and noisy["ci_low"] < 1
    assert efficiency([64] * 4, [64] * 4, 256)["wilcoxon_p"] == 1.0


def test_auc_and_holm():
    assert normalised_auc([1, 2, 4], [0.5, 0.5, 0.5], 1.0) == pytest.approx(0.5)
    assert normalised_auc([1, 2, 4], [0.0, 1.0, 1.0], 2.0) == pytest.approx(0.375)
    assert holm({"a": 0.01, "b": 0.04, "c": 0.03}) == pytest.approx({"a": 0.03, "c": 0.06, "b": 0.06})


def test_arm_names_round_trip():
    for name in ("random", "random/explicit", "random/hand-set", "cost-aware", "entropy/region", "badge/explicit"):
        assert parse_arm(name).name == name
    assert parse_arm("cost-aware").unit == "region"
    assert explicit_twin("random/hand-set") == "random/explicit"
    with pytest.raises(ValueError, match="unknown strategy"):
        parse_arm("oracle")
    with pytest.raises(ValueError, match="flag"):
        parse_arm("random/fast")


@pytest.fixture(scope="module")
def reduced_run(tmp_path_factory):
    """The benchmark's reduced configuration: 2 sections of 192 px per seed, 3 budgets, 1 tuning and 2 reporting seeds."""
    from benchmarks.active_learning.command import active_learning_bench

    out = tmp_path_factory.mktemp("al-bench")
    args = ["--base", str(shipped_model_path(load_catalogue())), "--samples", "2", "--field", "192", "--tile", "64",
            "--region", "32", "--test-per-sample", "2", "--val-per-sample", "2", "--budgets", "1,2,4",
            "--arms", "random,top-k-entropy,core-set,cost-aware", "--tuning-seeds", "100", "--seeds", "0-1",
            "--min-tiles", "4", "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(active_learning_bench, args, catch_exceptions=False)
    return result, out, args


@pytest.mark.slow
def test_reduced_benchmark_prints_curves_statistics_calibration_and_champion_rule(reduced_run):
    result, out, _ = reduced_run
    assert result.exit_code == 0, result.output
    for heading in ("### Start and reference", "### Learning curves", "### Label efficiency", "### Implicit / explicit",
                    "### Implicit-label confidence", "### Champion rule"):  # fmt: skip
        assert heading in result.output
    figures = json.loads((out / "results.json").read_text())
    primary = json.loads((out / "tuning.json").read_text())["primary"]
    arms = {
        "random",
        "top-k-entropy",
        "core-set",
        "cost-aware",
        "random/hand-set",
        "random/explicit",
        f"{primary}/explicit",
    }
    assert set(figures["curves"]) == arms
    for rows in figures["curves"].values():
        assert [r["budget"] for r in rows] == [0.0, 1.0, 2.0, 4.0] and [r["seeds"] for r in rows] == [2, 2, 2, 2]
        assert rows[0]["miou"] == figures["baseline"]["start"]  # every arm starts from the same base FCN
    assert figures["comparisons"][primary]["primary"] and "geometric_mean_ratio" in figures["comparisons"][primary]
    assert figures["champion"]["sign-flip"]["cycles"] == 2 * len(arms) * 3 * 2
    measured = {(row["fitted_on"], row["measured_on"]) for row in figures["calibration"]["table"]}
    assert ("A (harvest features)", "B") in measured and ("A (harvest features)", "C") in measured
    assert any("leave one annotator out" in fitted for fitted, _ in measured)
    assert ("A + 10% of B's own (own map)", "B (not audited)") in measured


@pytest.mark.slow
def test_reduced_benchmark_files_feed_the_report(reduced_run):
    _, out, _ = reduced_run
    curve = read_learning_curve(out / "learning_curve.json")
    assert set(curve["label_kind"]) == {"implicit", "explicit"} and len(curve) == 2 * 7 * 4
    calibration = json.loads((out / "calibration.json").read_text())
    assert calibration["measured_on"] == "B" and 0 <= calibration["ece"] <= 1
    assert sum(b["pixels"] for b in calibration["reliability"]) > 0
    seed0 = json.loads((out / "report" / "seed-0.json").read_text())
    assert seed0["expert"] == "B" and json.loads((out / "report" / "seed-1.json").read_text())["expert"] == "C"
    for points in seed0["arms"].values():
        assert all(len(p["val_expert"]) == 4 and len(p["test_tiles"]) == 4 for p in points)
    assert seed0["arms"]["cost-aware"][-1]["units"] == 4 * 4  # 4 regions per tile-equivalent
    with np.load(out / "report" / "records-0.npz") as records:
        assert set(np.unique(records["expert"])) == {"B"} and "calibrated" in records.files


@pytest.mark.slow
def test_analyse_only_reproduces_the_figures(reduced_run):
    from benchmarks.active_learning.command import active_learning_bench

    result, out, args = reduced_run
    again = CliRunner().invoke(active_learning_bench, [*args, "--only", "analyse"], catch_exceptions=False)
    assert again.exit_code == 0
    tables = lambda text: text[text.index("### Start") :]  # noqa: E731
    assert tables(again.output) == tables(result.output)


@pytest.mark.slow
def test_scraiber_report_plots_the_benchmark_curves_and_reliability_diagram(reduced_run, tmp_path):
    from scraiber.cli import main
    from tests.tracking_analysis.record_session import DATA

    _, out, _ = reduced_run
    page = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["report", "--snapshot", str(DATA / "session.json"), "--out", str(page),
                                       "--learning-curve", str(out / "learning_curve.json"),
                                       "--calibration", str(out / "calibration.json")], catch_exceptions=False)  # fmt: skip
    assert result.exit_code == 0, result.output
    text = page.read_text()
    assert "Confidence calibration (benchmark)" in text and "reliability diagram of the calibrated confidence" in text
    assert "learning curves: implicit vs explicit labels" in text
    assert "measured on expert B" in text
