"""Interactive refinement: hints parsed from Label Studio's context, the classifier, the /predict path."""

from __future__ import annotations

import base64
import functools
import http.server
import threading

import imagecodecs
import numpy as np
import pytest
from scipy import ndimage

from label_config import load_catalogue
from label_config.generate import minerals_xml
from ml_backend.adapter import BackendServices
from ml_backend.app import create_app
from ml_backend.brush import mask_to_rle, rle_to_mask
from ml_backend.image_source import ImageSource
from ml_backend.label_studio import LabelStudioClient
from ml_backend.predictor import Predictor
from ml_backend.refine import (
    ImageState,
    InteractiveRefiner,
    RefineConfig,
    parse_hints,
    pixel_features,
    refine_probabilities,
    working_stride,
)
from ml_backend.segmenters.base import Segmenter
from ml_backend.synthetic import generate_section

CATALOGUE = load_catalogue()
PLAG, GROUNDMASS = CATALOGUE.index_of("Plagioclase"), CATALOGUE.index_of("Groundmass")
SIZE, SEED = 256, 3
AUTH = ("scraiber", "refine-test")


class Confused(Segmenter):
    """A model that is right about everything except plagioclase, which it calls groundmass."""

    version = "confused-1"

    def __init__(self, truth: np.ndarray) -> None:
        self.catalogue = CATALOGUE
        model = np.where(truth == PLAG, GROUNDMASS, truth).astype(np.int64)
        self.probs = np.full((len(CATALOGUE), *truth.shape), 0.05, np.float32)
        np.put_along_axis(self.probs, model[None], 0.75, axis=0)
        self.calls = 0

    def predict_proba(self, image, progress=False):
        self.calls += 1
        return self.probs.copy()


@pytest.fixture(scope="module")
def section():
    return generate_section(SIZE, SEED)


def iou(probs: np.ndarray, truth: np.ndarray, k: int) -> float:
    a = np.argmax(probs, axis=0) == k
    return float((a & (truth == k)).sum() / (a | (truth == k)).sum())


def plagioclase_clicks(section, n: int) -> list[dict]:
    """Keypoints (Label Studio format, percent) at the innermost pixel of the n largest plagioclase crystals."""
    crystals = section.crystals[section.crystals.class_index == PLAG].sort_values("area_px", ascending=False)
    clicks = []
    for crystal_id in crystals.id.values[:n]:
        inside = ndimage.distance_transform_edt(section.instances == crystal_id)
        row, col = np.unravel_index(np.argmax(inside), inside.shape)
        clicks.append(keypoint(row, col, "Plagioclase"))
    return clicks


def keypoint(row: float, col: float, label: str, positive: bool = True) -> dict:
    return {
        "type": "keypointlabels",
        "from_name": "hint",
        "to_name": "image",
        "original_width": SIZE,
        "original_height": SIZE,
        "is_positive": positive,
        "value": {
            "x": (col + 0.5) / SIZE * 100,
            "y": (row + 0.5) / SIZE * 100,
            "width": 0.5,
            "keypointlabels": [label],
        },
    }


def test_working_stride():
    assert working_stride((512, 512), 262_144) == 1
    assert working_stride((1024, 1024), 262_144) == 2
    assert working_stride((1000, 3000), 262_144) == 4


def test_parse_hints_reads_percent_keypoints_strokes_and_skips_the_rest():
    stroke = np.zeros((40, 50), bool)
    stroke[5:8, 10:30] = True
    context = {
        "result": [
            {"type": "keypointlabels", "value": {"x": 50.0, "y": 25.0, "keypointlabels": ["Ol"]}},  # synonym
            {
                "type": "keypointlabels",
                "is_positive": False,
                "value": {"x": 10.0, "y": 10.0, "keypointlabels": ["Epoxy"]},
            },
            {"type": "keypointlabels", "value": {"x": 120.0, "y": 10.0, "keypointlabels": ["Epoxy"]}},  # outside
            {"type": "keypointlabels", "value": {"x": 1.0, "y": 1.0, "keypointlabels": ["Quartz"]}},  # unknown
            {"type": "rectanglelabels", "value": {"x": 1, "y": 1, "rectanglelabels": ["Epoxy"]}},
            {
                "type": "brushlabels",
                "original_width": 50,
                "original_height": 40,
                "value": {"format": "rle", "rle": mask_to_rle(stroke), "brushlabels": ["Plagioclase"]},
            },
        ]
    }
    hints, labels = parse_hints(context, (40, 50), CATALOGUE, radius=2)
    assert labels == ["Ol", "Epoxy", "Plagioclase"]
    olivine, epoxy, plag = hints
    assert (olivine.class_index, olivine.kind, olivine.positive) == (CATALOGUE.index_of("Olivine"), "keypoint", True)
    assert olivine.mask.sum() == 13 and olivine.mask[10, 25]  # disc of radius 2 around row 10, column 25
    assert (epoxy.positive, epoxy.mask[4, 5]) == (False, True)
    assert plag.kind == "stroke" and (plag.mask == stroke).all()
    assert parse_hints({}, (40, 50), CATALOGUE, 2) == ([], [])


def test_keypoints_on_the_confused_class_raise_its_iou(section):
    model = Confused(section.classes)
    state = ImageState(model.probs, 1, pixel_features(section.image, model.probs, 1), model.version)
    hints, _ = parse_hints({"result": plagioclase_clicks(section, 4)}, section.classes.shape, CATALOGUE, 4)
    refined = refine_probabilities(state, hints, RefineConfig())
    before, after = iou(model.probs, section.classes, PLAG), iou(refined, section.classes, PLAG)
    # measured: plagioclase IoU 0.000 -> 0.614 with 4 clicks; groundmass 0.826 -> 0.913
    assert before == 0.0 and after >= 0.5
    assert iou(refined, section.classes, GROUNDMASS) > iou(model.probs, section.classes, GROUNDMASS)
    for hint in hints:
        assert (np.argmax(refined, axis=0)[hint.mask] == PLAG).all()
    np.testing.assert_allclose(refined.sum(axis=0), 1.0, atol=1e-5)
    assert refine_probabilities(state, [], RefineConfig()) is model.probs


def test_negative_keypoint_removes_the_class_there(section):
    model = Confused(section.classes)
    state = ImageState(model.probs, 1, pixel_features(section.image, model.probs, 1), model.version)
    row, col = np.argwhere(section.classes == GROUNDMASS)[len(np.argwhere(section.classes == GROUNDMASS)) // 2]
    hints, _ = parse_hints({"result": [keypoint(row, col, "Groundmass", positive=False)]}, (SIZE, SIZE), CATALOGUE, 3)
    refined = refine_probabilities(state, hints, RefineConfig())
    assert (np.argmax(refined, axis=0)[hints[0].mask] != GROUNDMASS).all()


def test_working_grid_refinement_keeps_full_resolution(section):
    model = Confused(section.classes)
    stride = 2
    state = ImageState(model.probs, stride, pixel_features(section.image, model.probs, stride), model.version)
    assert state.features.shape == (6 + len(CATALOGUE), SIZE // 2, SIZE // 2)
    hints, _ = parse_hints({"result": plagioclase_clicks(section, 4)}, section.classes.shape, CATALOGUE, 4)
    refined = refine_probabilities(state, hints, RefineConfig())
    assert refined.shape == model.probs.shape
    assert iou(refined, section.classes, PLAG) >= 0.4


@pytest.fixture(scope="module")
def image_host(tmp_path_factory, section):
    """A loopback HTTP server standing in for Label Studio's /data/upload file serving."""
    root = tmp_path_factory.mktemp("host")
    (root / "data" / "upload" / "1").mkdir(parents=True)
    (root / "data" / "upload" / "1" / "field.png").write_bytes(imagecodecs.png_encode(section.image))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_context_through_the_app_returns_refined_regions(tmp_path, image_host, section):
    model = Confused(section.classes)
    images = ImageSource(LabelStudioClient(image_host, "0123456789abcdef"))
    records = []
    refiner = InteractiveRefiner(CATALOGUE, lambda: model, images, record=records.append)
    services = BackendServices(
        predictor=Predictor(CATALOGUE, lambda: model, images),
        events=None,
        status=dict,
        refiner=refiner,
    )
    client = create_app(services, AUTH, 5_000_000).test_client()
    headers = {"Authorization": "Basic " + base64.b64encode(f"{AUTH[0]}:{AUTH[1]}".encode()).decode()}
    task = {
        "id": 7,
        "project": 3,
        "data": {"image": "/data/upload/1/field.png"},
        "drafts": [{"created_username": "Ann Expert a@b.c, 42"}],
    }
    body = {
        "tasks": [task],
        "label_config": minerals_xml(CATALOGUE),
        "params": {"context": {"result": plagioclase_clicks(section, 4)}},
    }
    first = client.post("/predict", json=body, headers=headers)
    assert first.status_code == 200, first.get_json()
    (prediction,) = first.get_json()["results"]
    assert prediction["model_version"] == "confused-1+interactive"
    masks = {r["value"]["brushlabels"][0]: rle_to_mask(r["value"]["rle"], SIZE, SIZE) for r in prediction["result"]}
    assert {r["from_name"] for r in prediction["result"]} == {"minerals"}
    assert sum(m.astype(int) for m in masks.values()).max() == 1
    plag = masks["Plagioclase"]
    assert (plag & (section.classes == PLAG)).sum() / (plag | (section.classes == PLAG)).sum() >= 0.5
    second = client.post("/predict", json=body, headers=headers)
    assert second.get_json()["results"][0]["result"] == prediction["result"]
    assert model.calls == 1  # the second click reused the cached probabilities and features
    assert [(r.task_id, r.project_id, r.user, r.keypoints, r.classes, r.cached) for r in records] == [
        (7, 3, "42", 4, ("Plagioclase",), False),
        (7, 3, "42", 4, ("Plagioclase",), True),
    ]
    assert records[0].changed_fraction > 0.05 and records[0].latency_ms > 0
    plain = client.post("/predict", json={"tasks": [task], "label_config": body["label_config"]}, headers=headers)
    assert plain.get_json()["results"][0]["model_version"] == "confused-1"
    broken = dict(body, tasks=[{"id": 8, "data": {"image": "/data/upload/1/missing.png"}}])
    (error,) = client.post("/predict", json=broken, headers=headers).get_json()["results"]
    assert "result" not in error and "task 8" in error["error"]
