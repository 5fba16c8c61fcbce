"""The served model: MLflow champion, else the shipped FCN, else clustering; hot reload on alias moves."""

from __future__ import annotations

import numpy as np
import pytest

from active_learning.registry import ModelRegistry
from active_learning.served_model import ServedModel
from active_learning.tracking import start_run
from label_config import load_catalogue
from ml_backend.fcn import load_fcn, shipped_model_path
from scraiber.serve import build_services
from scraiber.settings import Settings


class Clock:
    """Manual monotonic clock."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(SCRAIBER_DATA_DIR=tmp_path, SCRAIBER_DEMO=True, SCRAIBER_MODEL_POLL_SECONDS=10)


def _register(settings: Settings, scale: float, miou: float) -> int:
    """Log the shipped model (weights scaled, so versions differ) as a new registered version."""
    loaded = load_fcn(shipped_model_path(load_catalogue()))
    state = {k: v * scale if v.is_floating_point() else v for k, v in loaded.state_dict.items()}
    with start_run(settings, run_name=f"test-{scale}") as run:
        run.log_model(state, loaded.config.to_dict())
        run_id = run.run_id
    registry = ModelRegistry.from_settings(settings)
    version = registry.register(run_id)
    registry.promote_if_not_worse(version, miou, "synthetic-val-v1")
    return version


@pytest.mark.slow  # serves the model from a registry
def test_without_champion_the_shipped_model_is_served(settings):
    served = ServedModel(load_catalogue(), lambda: ModelRegistry.from_settings(settings), settings.model_name)
    assert served().version.startswith("fcn-")
    assert served.champion is None


@pytest.mark.slow
def test_champion_is_served_and_alias_moves_are_followed(settings):
    clock = Clock()
    served = ServedModel(
        load_catalogue(), lambda: ModelRegistry.from_settings(settings), settings.model_name, 10, clock=clock
    )
    shipped = served().version
    first = _register(settings, 1.0, 0.60)
    assert served().version == shipped and served.champion is None  # not polled again yet
    clock.now = 10
    assert served().version == shipped and served.champion == first  # the shipped weights keep their name
    worse = _register(settings, 0.5, 0.50)  # registered but not promoted: worse validation mIoU
    clock.now = 20
    served()
    assert served.champion == first
    better = _register(settings, 0.9, 0.61)
    clock.now = 30
    served()
    assert served.champion == better == worse + 1
    assert served().version.startswith("fcn-") and served().version != shipped
    image = np.random.default_rng(0).integers(0, 60000, (64, 80), dtype=np.uint16)
    probs = served().predict_proba(image)
    assert probs.shape == (6, 64, 80)


def test_unreachable_registry_keeps_serving(tmp_path):
    settings = Settings(SCRAIBER_DATA_DIR=tmp_path, MLFLOW_TRACKING_URI="http://127.0.0.1:9")

    def broken():
        raise ConnectionError("MLflow is down")

    served = ServedModel(load_catalogue(), broken, settings.model_name)
    assert served().version.startswith("fcn-")


def test_a_champion_that_cannot_be_loaded_leaves_the_fallback_served_and_is_retried():
    class BrokenStore:
        downloads = 0

        def champion_version(self) -> int:
            return 3

        def download_model(self, version: int):
            self.downloads += 1
            raise OSError("artefact store unreachable")

    registry, clock = BrokenStore(), Clock()
    served = ServedModel(load_catalogue(), lambda: registry, "minerals", 10, clock=clock)
    assert served().version.startswith("fcn-") and served.champion is None
    clock.now = 10
    assert served().version.startswith("fcn-") and registry.downloads == 2


@pytest.mark.slow  # registers a champion and serves it
def test_backend_reports_the_champion_version_to_label_studio(tmp_path):
    settings = Settings(SCRAIBER_DATA_DIR=tmp_path, SCRAIBER_DEMO=True, SCRAIBER_MODEL_POLL_SECONDS=0)
    services = build_services(settings)
    before = services.predictor.model_version()
    _register(settings, 0.9, 0.7)
    after = services.predictor.model_version()
    assert after.startswith("fcn-") and after != before
