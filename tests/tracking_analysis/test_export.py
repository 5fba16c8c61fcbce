"""``scraiber export``: the implicit labels of the recorded session as an open-data package."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from label_config import load_catalogue
from ml_backend.cli import main
from tests.tracking_analysis.record_session import DATA
from tracking_analysis.export import LABEL_FIELDS, export_package
from tracking_analysis.records import harvest_snapshot
from tracking_analysis.snapshot import Snapshot


def test_export_package(tmp_path):
    out = tmp_path / "package"
    result = CliRunner().invoke(main, ["export", "--snapshot", str(DATA / "session.json"), "--out", str(out), "--licence", "CC0-1.0"])
    assert result.exit_code == 0, result.output
    package = json.loads((out / "datapackage.json").read_text())
    assert package["licenses"][0]["name"] == "CC0-1.0" and package["scraiber"]["labels"] == 6
    assert [c["title"] for c in package["contributors"]] == ["u-358a221f4caa6386", "u-55102114d772a6ae"]
    assert [f["name"] for f in package["resources"][0]["schema"]["fields"]] == [name for name, *_ in LABEL_FIELDS]
    with (out / "labels.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["annotation_id"]) for r in rows] == [1, 2, 3, 5, 6, 7]  # the skip (4) has no label
    assert [r["accepted_unchanged"] for r in rows] == ["false"] * 5 + ["true"]
    harvested = {h.record.annotation_id: h for h in harvest_snapshot(Snapshot.load(DATA / "session.json"))}
    for row in rows:
        label = np.asarray(Image.open(out / row["label_path"]))
        confidence = np.asarray(Image.open(out / row["confidence_path"])) / 255.0
        item = harvested[int(row["annotation_id"])]
        assert (label == item.label).all()
        assert np.abs(confidence - item.confidence).max() <= 0.5 / 255 + 1e-6
        assert row["image"].startswith("/data/upload/") and row["annotator"].startswith("u-")
    with (out / "classes.csv").open() as handle:
        assert [r["name"] for r in csv.DictReader(handle)] == list(load_catalogue().names)
    readme = (out / "README.md").read_text()
    assert "CC0-1.0" in readme and "exp(-d / 20 px)" in readme and "@" not in readme


def test_export_refuses_a_foreign_folder_and_other_classes(tmp_path):
    snapshot = Snapshot.load(DATA / "session.json")
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty and holds no datapackage.json"):
        export_package(snapshot, load_catalogue(), tmp_path)
    other = Snapshot(snapshot.project_id, snapshot.title, snapshot.from_name, ("A", "B"), (), (), ())
    with pytest.raises(ValueError, match="differ from the catalogue"):
        export_package(other, load_catalogue(), tmp_path / "new")
    assert export_package(snapshot, load_catalogue(), tmp_path / "new").name == "datapackage.json"
    assert export_package(snapshot, load_catalogue(), tmp_path / "new").is_file()  # an earlier package may be overwritten
