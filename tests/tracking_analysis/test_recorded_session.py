"""The recorded session (``data/session.json``, see ``record_session.py``): exact indicator values,
and the recording itself against a real Label Studio (slow)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import requests
from click.testing import CliRunner

from active_learning.harvest import Harvester
from active_learning.harvest_log import LABEL, SKIP, HarvestLog
from active_learning.pseudonyms import pseudonym
from active_learning.store import LocalArtefactStore
from label_config import load_catalogue
from label_config.generate import CONFIG_DIR
from scraiber.cli import main
from scraiber.settings import Settings
from scraiber.stack import bootstrap_questionnaire
from tests.tracking_analysis.record_session import ANSWERS, DATA, PSEUDONYM_KEY, SEEDS, record_session
from tracking_analysis.datapackage import read_labels, validate_package
from tracking_analysis.records import harvest_snapshot, records_of
from tracking_analysis.report import build_report
from tracking_analysis.snapshot import QUESTIONNAIRE_PROJECT, Snapshot
from tracking_analysis.truth import TruthLookup

A, B = "u-55102114d772a6ae", "u-358a221f4caa6386"  # pseudonyms of the two accounts under PSEUDONYM_KEY
PX = 256 * 256


@pytest.fixture(scope="module")
def snapshot() -> Snapshot:
    return Snapshot.load(DATA / "session.json")


@pytest.fixture(scope="module")
def report(snapshot):
    return build_report(snapshot, truth=TruthLookup(DATA / "truth"))


def test_what_the_session_holds(snapshot):
    assert [t.truth for t in snapshot.tasks] == [f"field-{seed}" for seed in SEEDS]
    assert [t.drafts for t in snapshot.tasks] == [0, 0, 0, 1]
    assert [(p.task, p.model_version) for p in snapshot.predictions] == [
        (1, "unsupervised-v1"), (2, "unsupervised-v1"), (3, "unsupervised-v1"), (1, "fcn-v2"), (2, "fcn-v2"), (3, "fcn-v2"),
    ]  # fmt: skip
    records = records_of(harvest_snapshot(snapshot))
    assert [(r.task_id, r.annotator, r.kind, r.model_version) for r in records] == [
        (1, A, LABEL, "unsupervised-v1"), (2, A, LABEL, "unsupervised-v1"), (3, A, LABEL, "unsupervised-v1"), (4, A, SKIP, None),
        (3, B, LABEL, "fcn-v2"), (1, B, LABEL, "fcn-v2"), (2, B, LABEL, "fcn-v2"),
    ]  # fmt: skip
    assert [r.lead_time for r in records] == [88.64, 89.587, 87.558, 11.233, 59.551, 58.562, 8.0]
    assert [r.stats.get("edited_pixels") for r in records] == [8182, 7236, 8694, None, 4557, 3331, 0]
    assert [q.answers["usefulness"] for q in snapshot.questionnaire] == [
        ANSWERS["A"]["usefulness"],
        ANSWERS["B"]["usefulness"],
    ]


def test_overall_indicators(report):
    overall = report["overall"]
    assert (overall["annotations"], overall["skipped"], overall["with_prediction"], overall["accepted"]) == (7, 1, 6, 1)
    assert (overall["skip_rate"], overall["acceptance_rate"]) == (1 / 7, 1 / 6)
    kept = 57354 + 58300 + 56842 + 60979 + 62205 + 65536
    assert overall["pixel_acceptance"] == kept / (6 * PX) and overall["edit_fraction"] == 32000 / (6 * PX)
    assert overall["lead_time_mean"] == pytest.approx((88.64 + 89.587 + 87.558 + 59.551 + 58.562 + 8.0) / 6, rel=1e-12)
    assert overall["lead_time_median"] == (59.551 + 87.558) / 2
    # the five submissions that changed something: 383.898 s for 32000 px
    assert overall["seconds_per_kpx"] == pytest.approx(383.898 / 32, rel=1e-12)


def test_acceptance_and_time_by_model_version_and_annotator(report):
    versions = {r["model_version"]: r for r in report["by_model_version"]}
    assert list(versions) == ["unsupervised-v1", "(no prediction)", "fcn-v2"]
    assert versions["unsupervised-v1"]["acceptance_rate"] == 0.0 and versions["fcn-v2"]["acceptance_rate"] == 1 / 3
    assert versions["(no prediction)"]["skip_rate"] == 1.0 and versions["(no prediction)"]["acceptance_rate"] is None
    assert versions["unsupervised-v1"]["edit_fraction"] == (8182 + 7236 + 8694) / (3 * PX)
    assert versions["fcn-v2"]["edit_fraction"] == (4557 + 3331) / (3 * PX)
    assert versions["fcn-v2"]["lead_time_median"] == 58.562
    annotators = {r["annotator"]: r for r in report["by_annotator"]}
    assert (annotators[A]["annotations"], annotators[A]["skip_rate"]) == (4, 0.25)
    assert (annotators[B]["annotations"], annotators[B]["skip_rate"], annotators[B]["accepted"]) == (3, 0.0, 1)
    assert [(s["annotator"], s["annotations"], s["skipped"]) for s in report["sessions"]] == [(A, 4, 1), (B, 3, 0)]


def test_confusion_pairs(report):
    assert report["confusion"]["labels"][-1] == "(nothing)"
    assert report["confusion"]["matrix"] == [
        [6407, 16, 0, 3, 0, 0, 0],
        [0, 287687, 3002, 5707, 5809, 0, 0],
        [0, 253, 35471, 0, 0, 0, 0],
        [0, 8453, 69, 16185, 7194, 0, 0],
        [0, 893, 0, 578, 12218, 0, 0],
        [0, 23, 0, 0, 0, 3248, 0],
        [0, 0, 0, 0, 0, 0, 0],
    ]
    first, second = report["confusion_pairs"][:2]
    assert first == {"proposed": "Clinopyroxene", "kept": "Groundmass", "pixels": 8453, "share": 8453 / 31901}
    assert (second["proposed"], second["kept"], second["pixels"]) == ("Clinopyroxene", "Olivine", 7194)


def test_agreement_between_the_two_annotators(report):
    agreement = report["agreement"]
    assert agreement["tasks"] == [1, 2, 3]
    expected = {
        "Epoxy": (1951, 4456), "Groundmass": (136665, 160660), "Plagioclase": (15066, 23476),
        "Clinopyroxene": (7131, 15342), "Olivine": (10370, 14851), "Fe-Ti oxide": (700, 2548),
    }  # fmt: skip
    assert {r["class"]: (r["intersection"], r["union"]) for r in agreement["by_class"]} == expected
    assert all(r["pairs"] == 3 for r in agreement["by_class"])
    assert agreement["mean_iou"] == pytest.approx(np.mean([i / u for i, u in expected.values()]), rel=1e-12)


def test_implicit_label_quality_against_truth(report):
    quality = report["quality"]
    assert (quality["labels"], quality["tasks"], quality["compared_pixels"], quality["coverage"]) == (6, 3, 6 * PX, 1.0)
    assert quality["pixel_accuracy"] == 356695 / (6 * PX)  # implicit labels: 90.7 % right
    assert quality["prediction_accuracy"] == 324695 / (6 * PX)  # the predictions they started from: 82.6 %
    tp, union = [5503, 270288, 36161, 17513, 24320, 2910], [8750, 305361, 49319, 29410, 31919, 4978]
    assert list(quality["class_iou"].values()) == [t / u for t, u in zip(tp, union)]
    bins = quality["reliability"]
    assert [b["pixels"] for b in bins] == [0, 0, 0, 0, 0, 65536, 91173, 88660, 67380, 80467]
    correct = [60232, 85478, 81310, 61522, 68153]
    assert [b["accuracy"] for b in bins[5:]] == [c / n for c, n in zip(correct, [65536, 91173, 88660, 67380, 80467])]
    # B's unchanged 8 s acceptance: untouched 0.6 x attention (0.3 + 0.7 x 8/10) = 0.516 on all its 65536 px
    assert bins[5]["confidence"] == pytest.approx(0.516, abs=1e-6)
    # the most confident pixels (next to edits) are the least accurate: boundary errors the expert tolerated
    assert bins[9]["accuracy"] < bins[6]["accuracy"]
    assert quality["ece"] == pytest.approx(0.20649064784902293, rel=1e-9)


def test_questionnaire_joined_to_sessions(report):
    summary = report["questionnaire"]["summary"]
    assert summary["answers"] == 2 and summary["ratings"]["usefulness"]["mean"] == 4.5
    assert summary["choices"]["hardest"] == {"Plagioclase": 2, "Groundmass": 1}
    joined = {r["annotator"]: r for r in report["questionnaire"]["by_session"]}
    assert (joined[A]["usefulness"], joined[A]["acceptance_rate"], joined[A]["skip_rate"]) == (4.0, 0.0, 0.25)
    assert (joined[B]["usefulness"], joined[B]["acceptance_rate"]) == (5.0, 1 / 3)


@pytest.fixture(scope="module")
def live(label_studio, tmp_path_factory):
    """The session recorded once against the shared real Label Studio: (snapshot, truth dir, work dir)."""
    work = tmp_path_factory.mktemp("live-session")
    snapshot, truth_dir = record_session(label_studio.url, label_studio.api_key, work)
    return snapshot, truth_dir, work


@pytest.mark.slow
def test_recording_against_label_studio(label_studio, live):
    """The recording script runs against a real Label Studio; what it captures is what the real harvester sees."""
    snapshot, truth_dir, tmp_path = live
    fixture = Snapshot.load(DATA / "session.json")
    assert len(snapshot.tasks) == 4 and len(snapshot.predictions) == 6 and len(snapshot.annotations) == 7
    assert [a.was_cancelled for a in snapshot.annotations] == [a.was_cancelled for a in fixture.annotations]

    # task ids depend on what else the shared Label Studio holds: compare by the task's position
    def shown(snap: Snapshot) -> list[tuple[int, str]]:
        position = {task.id: i for i, task in enumerate(snap.tasks)}
        return [(position[p.task], p.model_version) for p in snap.predictions]

    assert shown(snapshot) == shown(fixture)
    annotators = [a.annotator for a in snapshot.annotations]
    admin = pseudonym(label_studio.client.whoami()["id"], PSEUDONYM_KEY)
    assert annotators[:4] == [admin] * 4 and len(set(annotators[4:]) - {admin}) == 1
    assert [t.drafts for t in snapshot.tasks] == [0, 0, 0, 1]
    assert sorted(p.name for p in truth_dir.glob("*_classes.png")) == [f"field-{s}_classes.png" for s in SEEDS]

    catalogue = load_catalogue()
    log = HarvestLog.from_url(f"sqlite:///{tmp_path / 'events.sqlite'}")
    harvester = Harvester(
        label_studio.client, LocalArtefactStore(tmp_path / "artefacts"), log, catalogue, PSEUDONYM_KEY
    )
    for annotation in snapshot.annotations:
        harvester.harvest(annotation.id)
    theirs = {r.annotation_id: r for r in log.records(project=snapshot.project_id)}
    for ours in records_of(harvest_snapshot(snapshot)):
        assert (ours.kind, ours.annotator, ours.lead_time, ours.stats) == (
            theirs[ours.annotation_id].kind, theirs[ours.annotation_id].annotator,
            theirs[ours.annotation_id].lead_time, theirs[ours.annotation_id].stats,
        )  # fmt: skip

    # scraiber up's questionnaire bootstrap is idempotent
    questionnaire = label_studio.client.find_project_by_title(QUESTIONNAIRE_PROJECT)["id"]
    assert bootstrap_questionnaire(label_studio.client, (CONFIG_DIR / "questionnaire.xml").read_text()) == questionnaire
    assert len(label_studio.client.list_tasks(questionnaire)) == 1
    assert len(snapshot.questionnaire) == 2


@pytest.mark.slow
def test_export_of_the_live_project_validates_and_round_trips(label_studio, live, tmp_path):
    """``scraiber export --project`` reads the real Label Studio, fetches the uploaded images with the API key,
    and writes a package that validates and reads back into the labels the real harvester stores."""
    snapshot, _, _ = live
    settings = Settings(
        _env_file=None, label_studio_url=label_studio.url, label_studio_api_key=label_studio.api_key,
        pseudonym_key=PSEUDONYM_KEY.decode(), data_dir=tmp_path / "scraiber",
    )  # fmt: skip
    out = tmp_path / "package"
    result = CliRunner().invoke(main, ["export", "--project", str(snapshot.project_id), "--out", str(out), "--coco", "--zip",
                                       "--creator", "Carberry, Josiah|0000-0002-1825-0097|Brown University"],
                                obj={"settings": settings})  # fmt: skip
    assert result.exit_code == 0, result.output
    assert validate_package(out) == []
    check = subprocess.run([str(Path(sys.executable).with_name("frictionless")), "validate", "datapackage.json"], cwd=out,
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert check.returncode == 0, check.stdout[-2000:]

    log = HarvestLog.from_url(f"sqlite:///{tmp_path / 'events.sqlite'}")
    store = LocalArtefactStore(tmp_path / "artefacts")
    harvester = Harvester(label_studio.client, store, log, load_catalogue(), PSEUDONYM_KEY)
    packaged = read_labels(out)
    assert len(packaged) == 6
    for annotation_id, item in packaged.items():
        record = harvester.harvest(annotation_id).record
        arrays = store.get_arrays(record.label_key)
        assert np.array_equal(item.label, arrays["label"])
        assert np.abs(item.confidence - arrays["confidence"].astype(np.float32)).max() <= 0.5 / 255 + 1e-3
        assert (
            item.row["model_version"] == record.model_version and int(item.row["prediction_id"]) == record.prediction_id
        )
    for task in snapshot.tasks[:3]:  # the uploaded files, byte for byte
        uploaded = requests.get(
            f"{label_studio.url}{task.image}", headers={"Authorization": f"Token {label_studio.api_key}"}, timeout=60
        )
        row = next(p.row for p in packaged.values() if int(p.row["task_id"]) == task.id)
        assert (out / row["image_path"]).read_bytes() == uploaded.content
        assert row["image_sha256"] == hashlib.sha256(uploaded.content).hexdigest()
