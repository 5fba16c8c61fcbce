"""The backend process behind a real Label Studio: configured query strategy and interactive hints (slow)."""

from __future__ import annotations

import numpy as np
import pytest
import requests
from PIL import Image
from sqlalchemy import create_engine, text

from label_config import load_catalogue
from label_config.generate import CONFIG_DIR
from ml_backend.brush import rle_to_mask
from ml_backend.fcn import FCNSegmenter, shipped_model_path
from ml_backend.segmenters import create_segmenter
from ml_backend.synthetic import generate_section
from ml_backend.uncertainty import margin_map
from tests.fixtures.backend import running_backend

pytestmark = pytest.mark.slow
SIZE = 192


@pytest.fixture(scope="module")
def setup(label_studio, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("interactive-backend")
    section = generate_section(SIZE, seed=401)
    image = data_dir / "field-401.png"
    Image.fromarray(section.image).save(image)
    with running_backend(label_studio, data_dir, SCRAIBER_QUERY_STRATEGY="margin") as running:
        client = label_studio.client
        project = client.create_project("Interactive hints", (CONFIG_DIR / "minerals.xml").read_text())
        (task_id,) = client.upload_files(project["id"], [image])
        backend = client.connect_ml_backend(
            project["id"], running.url, "scrAiber", is_interactive=True, basic_auth=running.auth
        )
        yield {"project": project["id"], "task": task_id, "ml": backend["id"], "section": section, "data_dir": data_dir}


def test_prediction_score_is_the_configured_strategy(label_studio, setup):
    label_studio.client.retrieve_predictions(setup["project"])
    (prediction,) = label_studio.client.task_predictions(setup["task"])
    catalogue = load_catalogue()
    # the model the backend serves without a registry: the shipped FCN, else clustering
    served = FCNSegmenter(catalogue) if shipped_model_path(catalogue) else create_segmenter("unsupervised", catalogue)
    assert prediction["model_version"] == served.version
    probs = served.predict_proba(setup["section"].image)
    assert prediction["score"] == pytest.approx(float(margin_map(probs).mean()), abs=1e-4)


def test_smart_keypoints_through_label_studio_return_a_refined_mask(label_studio, setup):
    section = setup["section"]
    plagioclase = load_catalogue().index_of("Plagioclase")
    row, col = np.argwhere(section.classes == plagioclase)[0]
    keypoint = {
        "type": "keypointlabels", "from_name": "hint", "to_name": "image", "is_positive": True,
        "original_width": SIZE, "original_height": SIZE, "id": "k1",
        "value": {"x": (col + 0.5) / SIZE * 100, "y": (row + 0.5) / SIZE * 100, "width": 0.6, "keypointlabels": ["Plagioclase"]},
    }  # fmt: skip
    answer = requests.post(
        f"{label_studio.url}/api/ml/{setup['ml']}/interactive-annotating",
        json={"task": setup["task"], "context": {"result": [keypoint]}},
        headers={"Authorization": f"Token {label_studio.api_key}"},
        timeout=300,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert "errors" not in body, body
    data = body["data"]
    assert data["model_version"].endswith("+interactive")
    masks = {r["value"]["brushlabels"][0]: rle_to_mask(r["value"]["rle"], SIZE, SIZE) for r in data["result"]}
    assert sum(m.astype(int) for m in masks.values()).min() == 1
    assert masks["Plagioclase"][row, col]
    engine = create_engine(f"sqlite:///{setup['data_dir'] / 'events.sqlite'}")
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT task_id, project_id, keypoints, classes FROM interactions")).all()
    assert [tuple(r) for r in rows] == [(setup["task"], setup["project"], 1, '["Plagioclase"]')]
