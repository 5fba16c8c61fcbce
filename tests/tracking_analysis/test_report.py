"""``scraiber report``: JSON round trip, the self-contained HTML page in headless Chromium, CLI errors."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest
from click.testing import CliRunner

from scraiber.cli import main
from tests.fixtures.browser import screenshot
from tests.tracking_analysis.record_session import DATA
from tracking_analysis.learning_curve import read_learning_curve
from tracking_analysis.report import build_report, render_html, to_json
from tracking_analysis.snapshot import Snapshot
from tracking_analysis.truth import TruthLookup

SECTIONS = [
    "Summary",
    "Acceptance and time across model versions",
    "Over time: sessions",
    "Per annotator",
    "Corrections per mineral",
    "Confusion: proposed by the model, kept by the expert",
    "Agreement between annotators",
    "Implicit-label quality against ground truth",
    "Learning curve: implicit vs explicit labels",
    "Questionnaire",
    "Tasks",
]
FIGURES = 7  # model versions, sessions, corrections per mineral, confusion, agreement, calibration, learning curve


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_json_format_round_trip(tmp_path):
    out = tmp_path / "report.json"
    result = run(
        "report", "--snapshot", str(DATA / "session.json"), "--out", str(out), "--format", "json",
        "--truth", str(DATA / "truth"), "--learning-curve", str(DATA / "learning_curve.csv"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "7 annotations, acceptance 17%, skip rate 14%" in result.output
    loaded = json.loads(out.read_text())
    expected = build_report(
        Snapshot.load(DATA / "session.json"),
        TruthLookup(DATA / "truth"),
        read_learning_curve(DATA / "learning_curve.csv"),
    )
    loaded.pop("generated_at"), expected.pop("generated_at")
    assert loaded == json.loads(to_json(expected))  # the same numbers, NaN written as null
    assert loaded["overall"]["acceptance_rate"] == 1 / 6 and loaded["quality"]["pixel_accuracy"] == 356695 / 393216
    curve = {
        (r["strategy"], r["n_labelled_tiles"]): r["ratio"] for r in loaded["learning_curve"]["implicit_vs_explicit"]
    }
    assert curve[("entropy", 16)] == 0.61 / 0.63


@pytest.mark.slow
def test_html_report_in_headless_chromium(tmp_path, chromium_page):
    out = tmp_path / "report.html"
    result = run(
        "report", "--snapshot", str(DATA / "session.json"), "--out", str(out),
        "--truth", str(DATA / "truth"), "--learning-curve", str(DATA / "learning_curve.csv"),
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert not re.search(r"""(src|href)=["'](?!data:)""", text) and "<script" not in text and "<link" not in text
    chromium_page.goto(out.as_uri())
    assert chromium_page.locator("h2").all_inner_texts() == SECTIONS
    sizes = chromium_page.eval_on_selector_all(
        "img", "images => images.map(i => [i.complete, i.naturalWidth, i.naturalHeight])"
    )
    assert len(sizes) == FIGURES and all(done and width > 200 and height > 150 for done, width, height in sizes), sizes
    assert "Pixel accuracy 0.907" in chromium_page.inner_text("body")
    screenshot(chromium_page, "tracking-report")


def test_report_without_truth_questionnaire_or_curve_says_so(tmp_path):
    snapshot = Snapshot.load(DATA / "session.json")
    bare = Snapshot(
        snapshot.project_id,
        snapshot.title,
        snapshot.from_name,
        snapshot.classes,
        snapshot.tasks[3:],
        (),
        snapshot.annotations[3:4],
    )
    page = render_html(build_report(bare))
    assert page.count("<img") == 2  # acceptance/time by model version and by session; nothing else to plot
    assert "No ground truth given" in page and "No learning-curve table given" in page and "No answers yet" in page
    assert "No task was labelled by more than one annotator" in page and "No corrected pre-annotations yet" in page


def test_user_strings_are_escaped():
    """The project title and the mineral names come from Label Studio users: the template engine escapes them."""
    snapshot = Snapshot.load(DATA / "session.json")
    evil = "<script>alert(1)</script>"
    page = render_html(build_report(replace(snapshot, title=evil, classes=(evil, *snapshot.classes[1:]))))
    assert "<script" not in page
    # <title>, <h1>, and the mineral's rows in the corrections and agreement tables
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 4


def test_cli_errors_are_one_line(tmp_path):
    result = CliRunner().invoke(main, ["report", "--out", str(tmp_path / "r.html")])
    assert result.exit_code == 1 and "scraiber: error: give either --project ID" in result.output
    bad = tmp_path / "curve.csv"
    bad.write_text("n_labelled_tiles,mIoU\n1,0.5\n")
    result = CliRunner().invoke(
        main,
        [
            "report",
            "--snapshot",
            str(DATA / "session.json"),
            "--out",
            str(tmp_path / "r.html"),
            "--learning-curve",
            str(bad),
        ],
    )
    assert result.exit_code == 1 and "lacks column(s) strategy, label_kind" in result.output
