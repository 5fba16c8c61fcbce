"""``scraiber export``: the recorded session as a self-checking open-data package.

The package is validated the way a repository or a reuser would: ``frictionless validate``
(sizes, SHA-256 and table schemas), roc-validator on the RO-Crate, the DataCite 4.5 JSON
schema, pycocotools on the COCO files; then corrupted, and read back into arrays.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from label_config import load_catalogue
from tests.tracking_analysis.packages import CREATOR, OPTED_IN, export_session, session_images
from tests.tracking_analysis.record_session import DATA, SEEDS
from tests.tracking_analysis.ro_crate_check import validate_ro_crate
from tracking_analysis.datapackage import read_labels, validate_package
from tracking_analysis.dataset_metadata import Creator, RelatedIdentifier, check_licence
from tracking_analysis.export import LABEL_FIELDS, assign_splits, export_package
from tracking_analysis.package_images import folder_fetcher
from tracking_analysis.records import harvest_snapshot
from tracking_analysis.snapshot import Snapshot

FRICTIONLESS = str(Path(sys.executable).with_name("frictionless"))
A, B = "u-55102114d772a6ae", "u-358a221f4caa6386"


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return session_images(tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory, images: Path) -> Path:
    """One full export: creators (one an annotator who opted in), a DOI, COCO, crystal tables, zip."""
    out = tmp_path_factory.mktemp("export") / "package"
    export_session(
        out, images, "--licence", "CC0-1.0", "--version", "2.1.0", "--creator", CREATOR, "--creator", OPTED_IN,
        "--related", "https://doi.org/10.1234/example.5678", "--keyword", "Stromboli", "--coco", "--crystals", "--zip",
    )  # fmt: skip
    return out


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def frictionless(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [FRICTIONLESS, "validate", "--json", "datapackage.json"], cwd=root, capture_output=True, text=True, timeout=300
    )


def test_frictionless_validates_the_package_and_every_file_is_a_resource(package: Path) -> None:
    result = frictionless(package)
    assert result.returncode == 0, result.stdout[-2000:]
    report = json.loads(result.stdout)
    assert report["valid"] and report["stats"]["errors"] == 0
    descriptor = json.loads((package / "datapackage.json").read_text())
    files = sorted(p.relative_to(package).as_posix() for p in package.rglob("*") if p.is_file())
    assert sorted(r["path"] for r in descriptor["resources"]) == [f for f in files if f != "datapackage.json"]
    for resource in descriptor["resources"]:
        data = (package / resource["path"]).read_bytes()
        assert resource["bytes"] == len(data) and resource["hash"] == "sha256:" + hashlib.sha256(data).hexdigest()
    tables = {r["path"] for r in descriptor["resources"] if r.get("profile") == "tabular-data-resource"}
    assert {
        "data/labels.csv",
        "data/tasks.csv",
        "data/classes.csv",
        "data/modes.csv",
        "crystals/annotation-1/crystals.csv",
    } <= tables
    assert validate_package(package) == []


def test_a_corrupted_copy_fails_the_check(package: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(package, copy)
    label = copy / "labels" / "task-2_annotation-7_label.png"
    data = bytearray(label.read_bytes())
    data[-20] ^= 0xFF  # one flipped byte inside the image data
    label.write_bytes(bytes(data))
    result = frictionless(copy)
    assert result.returncode != 0
    errors = [(task["name"], e["type"]) for task in json.loads(result.stdout)["tasks"] for e in task["errors"]]
    assert errors == [("labels-task-2_annotation-7_label.png", "hash-count")]  # same size, other content
    (copy / "notes.txt").write_text("not part of the package")
    problems = validate_package(copy)
    assert any("labels-task-2_annotation-7_label.png: hash-count" in p for p in problems)
    assert "notes.txt: file is not a resource of the package" in problems


def test_round_trip_gives_back_the_harvested_labels_predictions_and_images(package: Path, images: Path) -> None:
    harvested = {h.record.annotation_id: h for h in harvest_snapshot(Snapshot.load(DATA / "session.json"))}
    labels = read_labels(package)
    assert sorted(labels) == [1, 2, 3, 5, 6, 7]  # the skip (4) has no label
    for annotation_id, packaged in labels.items():
        item = harvested[annotation_id]
        assert np.array_equal(packaged.label, item.label)
        assert np.abs(packaged.confidence - item.confidence).max() <= 0.5 / 255 + 1e-6
        assert np.array_equal(packaged.prediction, item.predicted)
    tasks = {int(r["task_id"]): r for r in rows(package / "data" / "tasks.csv")}
    for task_id, seed in zip((1, 2, 3), SEEDS):
        source = np.asarray(Image.open(images / f"field-{seed}.png"))
        stored = np.asarray(Image.open(package / tasks[task_id]["image_path"]))
        assert np.array_equal(stored, source) and stored.dtype == np.uint16
        assert tasks[task_id]["sha256"] == hashlib.sha256((images / f"field-{seed}.png").read_bytes()).hexdigest()
        assert (tasks[task_id]["width"], tasks[task_id]["height"], tasks[task_id]["dtype"]) == ("256", "256", "uint16")


def test_provenance_of_each_label(package: Path) -> None:
    table = rows(package / "data" / "labels.csv")
    assert list(table[0]) == [name for name, *_ in LABEL_FIELDS]
    assert [r["annotation_id"] for r in table] == ["1", "2", "3", "5", "6", "7"]
    assert [r["prediction_id"] for r in table] == ["1", "2", "3", "6", "4", "5"]
    assert {r["prediction_rule"] for r in table} == {"parent_prediction"} and {r["label_kind"] for r in table} == {
        "implicit"
    }
    assert [r["annotator"] for r in table] == [A] * 3 + [B] * 3
    assert [r["model_kind"] for r in table] == ["clustering"] * 3 + ["unknown"] * 3  # "fcn-v2" was a recording's name
    assert [r["accepted_unchanged"] for r in table] == ["false"] * 5 + ["true"]
    assert table[0]["prediction_score"] == "0.0972" and table[0]["lead_time_s"] == "88.64"
    assert {r["pixel_size_source"] for r in table} == {"Label Studio task data (pixel_size_um)"}
    assert table[0]["pixel_size_um"] == "1.8816" and table[0]["scraiber_version"]
    # splits by task: task 1 was the first labelled (held out by the retraining cycles), then 2 and 3
    assert {r["task_id"]: r["split"] for r in table} == {"1": "test", "2": "train", "3": "validation"}
    modes = rows(package / "data" / "modes.csv")
    for annotation in ("1", "7"):
        mine = [m for m in modes if m["annotation_id"] == annotation]
        assert sum(float(m["percent"]) for m in mine) == pytest.approx(100.0, abs=1e-3)
        assert sum(int(m["pixels"]) for m in mine) == 256 * 256
    crystals = rows(package / "crystals" / "annotation-1" / "crystals.csv")
    assert len(crystals) == 88 and {"class_name", "population"} <= set(crystals[0])


def test_masks_are_indexed_pngs_with_the_catalogue_palette(package: Path) -> None:
    catalogue = load_catalogue()
    with Image.open(package / "labels" / "task-1_annotation-1_label.png") as image:
        assert image.mode == "P" and image.info["transparency"] == 255
        palette = image.getpalette()
    assert [tuple(palette[3 * i : 3 * i + 3]) for i in range(len(catalogue))] == [m.rgb for m in catalogue.classes]
    classes = rows(package / "data" / "classes.csv")
    assert [(r["name"], r["colour"]) for r in classes] == [(m.name, m.color) for m in catalogue.classes]


def test_repository_metadata(package: Path, tmp_path: Path) -> None:
    from datacite import schema45
    from lxml import etree

    record = json.loads((package / "datacite.json").read_text())
    assert schema45.validate(record)
    assert [c["name"] for c in record["creators"]] == ["Carberry, Josiah", "Example, Annotator B"]
    assert record["creators"][0]["nameIdentifiers"][0]["nameIdentifier"] == "https://orcid.org/0000-0002-1825-0097"
    assert record["creators"][0]["affiliation"][0]["affiliationIdentifier"] == "https://ror.org/05gq02987"
    assert record["rightsList"][0]["rightsIdentifier"] == "cc0-1.0" and record["version"] == "2.1.0"
    assert record["relatedIdentifiers"] == [
        {"relatedIdentifier": "10.1234/example.5678", "relatedIdentifierType": "DOI", "relationType": "IsSupplementTo"}
    ]
    assert "Stromboli" in [s["subject"] for s in record["subjects"]]
    assert (
        etree.fromstring((package / "datacite.xml").read_bytes()).tag == "{http://datacite.org/schema/kernel-4}resource"
    )
    zenodo = json.loads((package / ".zenodo.json").read_text())
    assert (zenodo["upload_type"], zenodo["license"], zenodo["version"]) == ("dataset", "cc0-1.0", "2.1.0")
    assert zenodo["creators"][0] == {
        "name": "Carberry, Josiah",
        "orcid": "0000-0002-1825-0097",
        "affiliation": "Brown University",
    }
    assert zenodo["related_identifiers"][0]["relation"] == "isSupplementTo"
    cff = yaml.safe_load((package / "CITATION.cff").read_text())
    assert (cff["cff-version"], cff["type"], cff["license"], cff["version"]) == ("1.2.0", "dataset", "CC0-1.0", "2.1.0")
    assert cff["authors"][0] == {"family-names": "Carberry", "given-names": "Josiah",
                                 "orcid": "https://orcid.org/0000-0002-1825-0097", "affiliation": "Brown University"}  # fmt: skip
    descriptor = json.loads((package / "datapackage.json").read_text())
    # the annotator who opted in is named; the other stays a pseudonym
    assert [(c["title"], c["role"]) for c in descriptor["contributors"]] == [
        ("Carberry, Josiah", "author"), ("Example, Annotator B", "author"), ("Example, Annotator B", "contributor"), (A, "contributor"),
    ]  # fmt: skip
    readme = (package / "README.md").read_text()
    assert "u-358a221f4caa6386 is Example, Annotator B" in readme and "CC0-1.0" in readme and "@" not in readme


def test_ro_crate_validates_and_lists_every_file_with_its_checksum(package: Path, tmp_path: Path) -> None:
    assert validate_ro_crate(package, tmp_path, "RECOMMENDED") == []
    crate = {e["@id"]: e for e in json.loads((package / "ro-crate-metadata.json").read_text())["@graph"]}
    assert crate["ro-crate-metadata.json"]["conformsTo"] == {"@id": "https://w3id.org/ro/crate/1.1"}
    assert crate["./"]["license"] == {"@id": "https://spdx.org/licenses/CC0-1.0"}
    assert crate["https://orcid.org/0000-0002-1825-0097"]["affiliation"] == {"@id": "https://ror.org/05gq02987"}
    entry = crate["labels/task-1_annotation-1_label.png"]
    assert (
        entry["sha256"] == hashlib.sha256((package / "labels/task-1_annotation-1_label.png").read_bytes()).hexdigest()
    )
    # and the validator does refuse what is not a crate
    crate_json = package / "ro-crate-metadata.json"
    broken = tmp_path / "crate"
    broken.mkdir()
    graph = json.loads(crate_json.read_text())
    graph["@graph"] = [e for e in graph["@graph"] if e["@id"] != "./"]  # no root data entity: not a crate
    (broken / "ro-crate-metadata.json").write_text(json.dumps(graph))
    assert any(issue.startswith("REQUIRED") for issue in validate_ro_crate(broken, tmp_path / "c2", "REQUIRED"))


def test_coco_files_load_with_pycocotools(package: Path) -> None:
    from pycocotools.coco import COCO

    labels = read_labels(package)
    minerals = COCO(str(package / "coco" / "minerals.json"))
    assert sorted(minerals.getImgIds()) == sorted(labels)
    for image_id, packaged in labels.items():
        rebuilt = np.full(packaged.label.shape, 255, np.uint8)
        for annotation in minerals.loadAnns(minerals.getAnnIds(imgIds=[image_id])):
            rebuilt[minerals.annToMask(annotation) == 1] = annotation["category_id"] - 1
        assert np.array_equal(rebuilt, packaged.label)
    crystals = COCO(str(package / "coco" / "crystals.json"))
    assert len(crystals.getAnnIds(imgIds=[1])) == 88  # as many as the crystal table of the same label
    first = crystals.loadAnns(crystals.getAnnIds(imgIds=[1]))[0]
    assert (
        minerals.loadImgs([1])[0]["file_name"] == "images/task-1.png"
        and first["area"] == crystals.annToMask(first).sum()
    )


def test_zip_archive_holds_the_package(package: Path, tmp_path: Path) -> None:
    archive = package.parent / "package.zip"
    with zipfile.ZipFile(archive) as handle:
        assert sorted(handle.namelist()) == sorted(
            p.relative_to(package).as_posix() for p in package.rglob("*") if p.is_file()
        )
        handle.extractall(tmp_path / "unzipped")
    assert frictionless(tmp_path / "unzipped").returncode == 0


def test_images_referenced_by_url(images: Path, tmp_path: Path) -> None:
    out = tmp_path / "by-url"
    export_session(out, images, "--image-url-template", "https://data.example.org/bse/{name}?sha256={sha256}")
    assert not (out / "images").exists()
    tasks = rows(out / "data" / "tasks.csv")
    expected = hashlib.sha256((images / "field-301.png").read_bytes()).hexdigest()
    assert (
        tasks[0]["image_path"] == ""
        and tasks[0]["image_url"] == f"https://data.example.org/bse/field-301.png?sha256={expected}"
    )
    assert (tasks[0]["sha256"], tasks[0]["width"], tasks[0]["height"]) == (expected, "256", "256")
    assert rows(out / "data" / "labels.csv")[0]["image_url"] == tasks[0]["image_url"]
    assert validate_package(out) == []


def test_refusals(images: Path, tmp_path: Path) -> None:
    snapshot = Snapshot.load(DATA / "session.json")
    catalogue = load_catalogue()
    fetch = folder_fetcher(images)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty and holds no datapackage.json"):
        export_package(snapshot, catalogue, tmp_path, images=fetch)
    other = Snapshot(snapshot.project_id, snapshot.title, snapshot.from_name, ("A", "B"), (), (), ())
    with pytest.raises(ValueError, match="differ from the catalogue"):
        export_package(other, catalogue, tmp_path / "new", images=fetch)
    with pytest.raises(ValueError, match="give --images DIR"):
        export_package(snapshot, catalogue, tmp_path / "no-images")
    with pytest.raises(FileNotFoundError, match="field-301.png"):
        export_package(snapshot, catalogue, tmp_path / "empty-folder", images=folder_fetcher(tmp_path / "empty"))
    # an earlier package is replaced, files of the earlier run included
    first = export_package(snapshot, catalogue, tmp_path / "again", images=fetch)
    (tmp_path / "again" / "coco").mkdir()
    (tmp_path / "again" / "coco" / "stale.json").write_text("{}")
    with pytest.raises(ValueError, match="not part of the earlier package"):
        export_package(snapshot, catalogue, tmp_path / "again", images=fetch)
    (tmp_path / "again" / "coco" / "stale.json").unlink()
    assert (
        export_package(snapshot, catalogue, tmp_path / "again", images=fetch) == first
        and validate_package(first.parent) == []
    )


def test_metadata_inputs_are_checked() -> None:
    assert Creator.parse("Carberry, Josiah|https://orcid.org/0000-0002-1825-0097|").orcid == "0000-0002-1825-0097"
    assert Creator.parse("Josiah Carberry").family_given == ("Carberry", "Josiah")
    with pytest.raises(ValueError, match="not a valid ORCID"):
        Creator.parse("Carberry, Josiah|0000-0002-1825-0098")  # wrong check digit
    with pytest.raises(ValueError, match="annotator pseudonym"):
        Creator.parse("Carberry, Josiah|||josiah")
    with pytest.raises(ValueError, match="CC-BY-4.0, CC0-1.0"):
        check_licence("GPL-3.0")
    assert RelatedIdentifier.parse("doi:10.5281/zenodo.123|IsDescribedBy") == RelatedIdentifier(
        "10.5281/zenodo.123", "DOI", "IsDescribedBy"
    )
    assert RelatedIdentifier.parse("igsn:iexxx0001|IsDerivedFrom").url == "https://igsn.org/IEXXX0001"
    with pytest.raises(ValueError, match="relation 'Likes'"):
        RelatedIdentifier.parse("10.1/x|Likes")
    assert assign_splits([5, 6, 7, 8, 9, 10, 11]) == {5: "test", 6: "train", 7: "validation", 8: "train", 9: "train",
                                                      10: "test", 11: "train"}  # fmt: skip
