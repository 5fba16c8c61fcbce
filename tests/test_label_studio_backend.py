"""The backend against a real Label Studio 1.23.2: predictions, tokens, SSRF, the browser view."""

from __future__ import annotations

import time

import numpy as np
import pytest
import requests
from label_studio_sdk.converter.brush import decode_rle
from PIL import Image

from active_learning.reconcile import authorise_webhooks
from label_config import load_catalogue
from label_config.generate import CONFIG_DIR
from ml_backend.brush import rle_to_mask
from ml_backend.image_source import ImageSource, ImageSourceError
from ml_backend.label_studio import LabelStudioClient
from ml_backend.synthetic import generate_section
from tests.fixtures.backend import running_backend
from tests.fixtures.browser import login_label_studio, screenshot

pytestmark = pytest.mark.slow
SEEDS = (101, 102)
SIZE = 384
# Per-class IoU floors of the served model (the shipped FCN: no champion in this backend's registry)
# through Label Studio, set below the values measured on seeds 101-102 at 384 px: Epoxy 0.89,
# Groundmass 0.93, Plagioclase 0.91, Olivine 0.76, Fe-Ti oxide 0.88 (Clinopyroxene 0.15: not asserted).
IOU_FLOOR = {"Epoxy": 0.85, "Groundmass": 0.85, "Plagioclase": 0.85, "Olivine": 0.65, "Fe-Ti oxide": 0.7}


@pytest.fixture(scope="module")
def backend(label_studio, tmp_path_factory):
    """The real backend (gunicorn) with basic auth, pointed at the test Label Studio."""
    with running_backend(label_studio, tmp_path_factory.mktemp("backend")) as backend:
        yield backend


@pytest.fixture(scope="module")
def fields(tmp_path_factory):
    """Synthetic 16-bit fields as PNG (what a browser can show) with their true class masks."""
    folder = tmp_path_factory.mktemp("fields")
    out = []
    for seed in SEEDS:
        section = generate_section(SIZE, seed=seed)
        path = folder / f"field-{seed}.png"
        Image.fromarray(section.image).save(path)
        out.append((path, section.classes))
    return out


@pytest.fixture(scope="module")
def slow_client(label_studio):
    """A client that waits for Label Studio's synchronous calls to the backend (predictions)."""
    with LabelStudioClient(label_studio.url, label_studio.api_key, timeout=900) as client:
        yield client


@pytest.fixture(scope="module")
def project(slow_client, backend, fields):
    client = slow_client
    project = client.create_project("Backend predictions", (CONFIG_DIR / "minerals.xml").read_text())
    task_ids = client.upload_files(project["id"], [path for path, _ in fields])
    client.connect_ml_backend(project["id"], backend.url, "scrAiber", basic_auth=backend.auth)
    answer = client.retrieve_predictions(project["id"])
    return {"id": project["id"], "task_ids": task_ids, "answer": answer}


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def test_predictions_arrive_through_retrieve_tasks_predictions(label_studio, backend, project, fields):
    catalogue = load_catalogue()
    version = backend.status()["model_version"]
    ious: dict[str, list[float]] = {}
    for task_id, (_, truth) in zip(project["task_ids"], fields):
        predictions = label_studio.client.task_predictions(task_id)
        assert len(predictions) == 1, project["answer"]
        prediction = predictions[0]
        assert prediction["model_version"] == version
        assert 0.0 <= prediction["score"] <= 1.0
        painted = np.zeros(truth.shape, int)
        for region in prediction["result"]:
            assert region["type"] == "brushlabels" and region["from_name"] == "minerals"
            assert (region["original_height"], region["original_width"]) == truth.shape
            label = region["value"]["brushlabels"][0]
            mask = rle_to_mask(region["value"]["rle"], *truth.shape)
            # exactly what Label Studio's own decoder reads
            sdk = decode_rle(region["value"]["rle"])[3::4].reshape(truth.shape) > 0
            np.testing.assert_array_equal(mask, sdk)
            painted += mask
            ious.setdefault(label, []).append(_iou(mask, truth == catalogue.index_of(label)))
        assert (painted == 1).all()
    print({label: round(float(np.mean(v)), 3) for label, v in sorted(ious.items())})
    for label, floor in IOU_FLOOR.items():
        assert np.mean(ious[label]) >= floor, (label, ious)


def test_second_retrieve_does_not_duplicate_predictions(label_studio, slow_client, project):
    slow_client.retrieve_predictions(project["id"])
    assert [len(label_studio.client.task_predictions(t)) for t in project["task_ids"]] == [1, 1]


def test_bad_tasks_fail_alone(slow_client, backend, project):
    client = slow_client
    bad = client.import_tasks(
        project["id"],
        [
            {"data": {"image": "http://169.254.169.254/data/upload/1/x.png"}},
            {"data": {"image": "/data/upload/999/missing.png"}},
        ],
    )
    tasks = [client.get_task(t) for t in (project["task_ids"][0], *bad)]
    answer = requests.post(
        f"{backend.url}/predict",
        json={"tasks": tasks, "label_config": (CONFIG_DIR / "minerals.xml").read_text()},
        auth=backend.auth,
        timeout=300,
    ).json()
    good, ssrf, missing = answer["results"]
    assert good["result"]
    assert "only URLs on Label Studio" in ssrf["error"]
    # Label Studio 1.23.2 answers a missing upload with HTTP 500 (a bug of its own), not 404
    assert "Label Studio refused '/data/upload/999/missing.png'" in missing["error"]
    client.retrieve_predictions(project["id"])
    assert [len(client.task_predictions(t)) for t in bad] == [0, 0]


def test_upload_path_with_legacy_token_and_personal_access_token(label_studio, project):
    upload = label_studio.client.get_task(project["task_ids"][0])["data"]["image"]
    assert upload.startswith("/data/upload/")
    with label_studio.login() as session:
        pat = session.create_personal_access_token()
    for key in (label_studio.api_key, pat):
        image = ImageSource(LabelStudioClient(label_studio.url, key)).fetch(upload)
        assert image.pixels.dtype == np.uint16 and image.shape == (SIZE, SIZE)
    wrong = ImageSource(LabelStudioClient(label_studio.url, "0" * 40))
    with pytest.raises(ImageSourceError, match="401") as info:
        wrong.fetch(upload)
    assert "0" * 40 not in str(info.value)


def test_webhooks_reach_the_authenticated_backend(label_studio, backend, project):
    client = label_studio.client
    assert authorise_webhooks(client, project["id"], backend.auth) == 1
    assert authorise_webhooks(client, project["id"], backend.auth) == 0  # already done
    before = backend.status()["events_received"]
    client.create_annotation(project["task_ids"][1], [], lead_time=3.0)
    deadline = time.monotonic() + 30
    while backend.status()["events_received"] == before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert backend.status()["events_received"] > before


def test_backend_requires_basic_auth(backend):
    assert requests.get(f"{backend.url}/status", timeout=10).status_code == 401
    assert requests.get(f"{backend.url}/health", timeout=10).status_code == 200


def test_labelling_page_lists_the_pre_annotated_regions(label_studio, project, chromium_page):
    page = chromium_page
    login_label_studio(page, label_studio.url, label_studio.username, label_studio.password)
    task_id = project["task_ids"][0]
    labels = {r["value"]["brushlabels"][0] for r in label_studio.client.task_predictions(task_id)[0]["result"]}
    page.goto(f"{label_studio.url}/projects/{project['id']}/data?tab=0&task={task_id}")
    region = ".lsf-tree__node_type_brushregion"
    try:
        page.wait_for_selector(region, timeout=120_000)
    finally:
        path = screenshot(page, "labelling-page-pre-annotations")
    titles = {t.strip() for t in page.locator(f"{region} .lsf-outliner-item__title").all_inner_texts()}
    assert path.stat().st_size > 10_000
    assert titles == labels


def test_crystal_review_pre_annotations_and_corrections(slow_client, backend, fields):
    """Crystals in a real Label Studio: polygons with choices, and a review harvested as implicit labels."""
    client = slow_client
    project = client.create_project("Crystal review", (CONFIG_DIR / "crystals.xml").read_text())
    (task_id,) = client.upload_files(project["id"], [fields[0][0]])
    client.update_task(task_id, {**client.get_task(task_id)["data"], "pixel_size_um": 2.0})
    client.connect_ml_backend(project["id"], backend.url, "scrAiber", basic_auth=backend.auth)
    authorise_webhooks(client, project["id"], backend.auth)
    client.retrieve_predictions(project["id"])
    (prediction,) = client.task_predictions(task_id)
    polygons = [r for r in prediction["result"] if r["type"] == "polygonlabels"]
    choices = [r for r in prediction["result"] if r["type"] == "choices"]
    assert len(polygons) >= 3 and {r["from_name"] for r in choices} == {"population", "zoning"}
    assert {r["id"] for r in choices} <= {r["id"] for r in polygons}

    # the expert deletes one crystal and flips one zoning call
    deleted = polygons[0]["id"]
    flipped = next(r for r in choices if r["from_name"] == "zoning" and r["id"] != deleted)
    before = flipped["value"]["choices"][0]
    after = "Reverse" if before != "Reverse" else "Normal"
    result = []
    for region in prediction["result"]:
        if region["id"] == deleted:
            continue
        if region is flipped:
            region = {**region, "value": {**region["value"], "choices": [after]}}
        result.append(region)
    annotation = client.create_annotation(task_id, result, lead_time=40.0, parent_prediction=prediction["id"])

    harvests = backend.harvests()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not harvests.records(project=project["id"]):
        time.sleep(1)
    (record,) = harvests.records(project=project["id"])
    assert record.annotation_id == annotation["id"] and record.prediction_id == prediction["id"]
    crystals = record.stats["crystals"]
    assert (crystals["deleted"], crystals["added"], crystals["kept"]) == (1, 0, len(polygons) - 1)
    assert crystals["choices"]["zoning"].get(f"{before} -> {after}", 0) >= 1
