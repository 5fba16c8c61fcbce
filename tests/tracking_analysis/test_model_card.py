"""``scraiber export --with-model``: the champion as an MLflow Model in the package, with its model card."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest

from label_config import load_catalogue
from ml_backend.fcn import FCNSegmenter, load_fcn, shipped_model_path
from ml_backend.synthetic import generate_section
from scraiber.settings import Settings
from tests.active_learning.test_mlflow_model import register_shipped_champion
from tests.tracking_analysis.packages import export_session, session_images
from tracking_analysis.datapackage import validate_package
from tracking_analysis.model_card import ModelLookup


@pytest.mark.slow
def test_export_with_model_writes_a_loadable_model_and_its_card(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path / "scraiber", model_name="card-test")
    version, run_id = register_shipped_champion(settings)
    out = tmp_path / "package"
    export_session(out, session_images(tmp_path / "images"), "--with-model", settings=settings)

    card = json.loads((out / "model_card.json").read_text())
    shipped = load_fcn(shipped_model_path(load_catalogue())).config.training
    assert (card["uri"], card["run_id"], card["alias"]) == (f"models:/card-test/{version}", run_id, "champion")
    assert card["classes"] == load_catalogue().names
    assert (
        card["evaluation"]["class_iou"] == shipped["val_iou"]
        and card["evaluation"]["validation_set"] == shipped["val_fingerprint"]
    )
    assert card["evaluation"]["registry_score"] == {"val_miou": "0.8894", "validation_set": "val-shipped"}
    assert card["training_data"]["fingerprint_of"].startswith(
        "not recorded"
    )  # the shipped baseline's run logs no config
    weaknesses = " ".join(card["known_weaknesses"])
    weakest = min(shipped["val_iou"], key=shipped["val_iou"].get)
    assert "synthetic thin sections only" in weaknesses
    assert f"{weakest} (IoU {shipped['val_iou'][weakest]:.2f})" in weaknesses
    assert "Olivine and Groundmass have close BSE brightness" in weaknesses
    markdown = (out / "MODEL_CARD.md").read_text()
    assert (
        f"| Groundmass | {shipped['val_iou']['Groundmass']:.3f} |" in markdown
        and "mlflow.pyfunc.load_model" in markdown
    )
    assert validate_package(out) == []  # the model's files are resources with their checksums too

    model = mlflow.pyfunc.load_model(str(out / "model"))
    image = generate_section(96, seed=3).image
    expected = FCNSegmenter(load_catalogue(), runtime="eager", device="cpu").segment(image)
    assert np.array_equal(model.predict(image.astype(np.float32)), expected)


def test_model_versions_become_provenance(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path / "scraiber", model_name="lookup-test")
    version, run_id = register_shipped_champion(settings)
    lookup = ModelLookup(settings)
    registered = lookup(f"lookup-test-v{version}+fast-p3-0123abcd")
    assert (registered.kind, registered.model_uri, registered.run_id) == (
        "mlflow-registered+fast-learner",
        f"models:/lookup-test/{version}",
        run_id,
    )
    # served FCNs are named by their weights: the registered baseline is found by its run's weights hash
    served = FCNSegmenter(load_catalogue(), runtime="eager").version
    found = lookup(served + "+fast-p3-0123abcd")
    assert (found.kind, found.model_uri, found.run_id) == (
        "mlflow-registered+fast-learner",
        f"models:/lookup-test/{version}",
        run_id,
    )
    assert "(shipped FCN weights minerals-unet-mobilenet_v2.safetensors)" in found.description
    assert lookup("unsupervised-v1").kind == "clustering" and lookup("other-v3").kind == "unknown"
    assert lookup("fcn-0123456789ab").kind == "unknown" and lookup(None).kind == "none"
    # no registry where none was ever made: nothing is created to look a version up
    empty = Settings(_env_file=None, data_dir=tmp_path / "none", model_name="lookup-test")
    assert ModelLookup(empty)("lookup-test-v1").run_id == "" and ModelLookup(empty)(served).kind == "shipped-fcn"
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize("ref", ["models:/x", "runs:/abc/model", "latest"])
def test_bad_model_references_are_refused(ref: str) -> None:
    from tracking_analysis.model_card import resolve_reference

    with pytest.raises(ValueError, match="--with-model takes champion"):
        resolve_reference(ref, Settings(_env_file=None))
