"""The Modal app's declaration, checked offline: no token, no network, nothing run on Modal.

Declaring a Modal app, image, secrets and function is lazy in modal 1.6: nothing is
resolved until ``app.run()``/``modal deploy``. The image's build steps are read back from
the (private but stable) layer objects modal keeps for the build; MODAL_TOKEN_* are
removed from the environment so a test run can never reach Modal by accident.
"""

from __future__ import annotations

import inspect
import tomllib
from pathlib import Path

import grimp
import modal
import pytest
from modal._utils.async_utils import synchronizer

from active_learning.training import TrainConfig
from scraiber import modal_app

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _no_modal_credentials(monkeypatch):
    for name in ("MODAL_TOKEN_ID", "MODAL_TOKEN_SECRET", "MODAL_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MODAL_CONFIG_PATH", "/nonexistent/.modal.toml")


def _build_commands(image: modal.Image) -> list[str]:
    """Dockerfile commands of every layer of ``image``, base first (read without building)."""
    commands: list[str] = []
    layer = synchronizer._translate_in(image)
    while layer is not None:
        build = inspect.getclosurevars(layer._load).nonlocals.get("dockerfile_function")
        if build is not None:
            commands[:0] = build("2025.06").commands
        bases = [dep for dep in layer._deps_() if type(dep).__name__ == "_Image"]
        layer = bases[0] if bases else None
    return commands


def test_gpu_function_declaration():
    function = modal_app.train_remote
    info = function.info()  # from the local declaration: the function is not hydrated
    assert info.gpus == [("H100", 1)] and modal_app.DEFAULT_GPU == "H100"
    assert info.secrets == ["modal.Secret.from_name('scraiber-s3')", "modal.Secret.from_name('scraiber-mlflow')"]
    assert info.timeout == modal_app.TIMEOUT_S >= 3600
    assert function._spec_.image is synchronizer._translate_in(modal_app.image)
    assert modal_app.app.name == "scraiber-train"
    raw = function._raw_f_
    assert raw.__name__ == "train_remote"
    assert list(inspect.signature(raw).parameters) == ["config", "harvested", "validation", "init_key"]
    assert "run_training(" in inspect.getsource(raw)  # the local entry point, not a copy
    assert function.with_options(gpu="A10G").info().gpus == [("A10G", 1)]


def test_image_installs_the_pinned_cuda_torch_and_the_training_stack():
    commands = _build_commands(modal_app.image)
    assert commands[0].startswith("FROM python:3.11")
    pip = [c for c in commands if "pip install" in c and "--upgrade pip" not in c]
    assert "torch==2.14.1 torchvision==0.29.1 --index-url https://download.pytorch.org/whl/cu" in pip[0]
    for package in (
        "segmentation-models-pytorch==0.6.0",
        "'mlflow>=3.17,<3.18'",
        "boto3",
        "pydantic-settings",
        "periodictable",
    ):
        assert package in pip[1], package
    raw = synchronizer._translate_in(modal_app.image)
    assert raw._added_python_source_set == {"label_config", "ml_backend", "active_learning", "scraiber"}


def test_the_remote_side_imports_only_the_sources_it_ships():
    # the container holds SOURCES only: not tracking_analysis, not benchmarks
    graph = grimp.build_graph(*modal_app.SOURCES, "tracking_analysis", "benchmarks", cache_dir=None)
    needed = graph.find_upstream_modules("scraiber.modal_app")
    assert "scraiber.settings" in needed
    assert {module.split(".")[0] for module in needed} <= set(modal_app.SOURCES)


def test_image_pins_match_the_project():
    constraints = (ROOT / ".ci" / "constraints.txt").read_text().split()
    assert set(modal_app.TORCH_PACKAGES) <= set(constraints)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    declared = {spec.split("=")[0].split(">")[0].split("<")[0]: spec for spec in project}
    for spec in modal_app.TRAINING_PACKAGES:
        name = spec.split("=")[0].split(">")[0].split("<")[0]
        assert declared[name] == spec, f"{spec} differs from pyproject.toml's {declared.get(name)}"


def test_config_travels_as_a_dict():
    config = TrainConfig(arch="unet-mobilenet_v2", steps=3, seed=7)
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_local_side_refuses_a_local_artefact_store(tmp_path):
    from scraiber.settings import Settings

    settings = Settings(artefact_uri=str(tmp_path / "artefacts"), data_dir=tmp_path)
    with pytest.raises(ValueError, match="SCRAIBER_ARTEFACT_URI=s3://"):
        modal_app.run_training_on_modal(TrainConfig(steps=1), settings)
