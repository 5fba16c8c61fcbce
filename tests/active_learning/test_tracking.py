"""MLflow tracking and registry on the embedded SQLite default and on a real MLflow server with S3 artefacts."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from active_learning.model_files import CONFIG_FILE, WEIGHTS_FILE, load_model_dir, save_model_dir
from active_learning.registry import ModelNotFoundError, ModelRegistry
from active_learning.tracking import fingerprint, flatten, mlflow_client, start_run
from scraiber.settings import Settings


@dataclass
class Optimiser:
    name: str = "adamw"
    lr: float = 1e-3


@dataclass
class TrainConfig:
    """A stand-in for the training config (nested, with a list)."""

    encoder: str = "resnet18"
    epochs: int = 3
    classes: list[str] = field(default_factory=lambda: ["Epoxy", "Olivine", "Fe-Ti oxide"])
    optimiser: Optimiser = field(default_factory=Optimiser)


def tiny_model(seed: int) -> tuple[dict[str, torch.Tensor], dict]:
    """A seeded Conv2d state dict and the config that would rebuild it."""
    torch.manual_seed(seed)
    conv = torch.nn.Conv2d(1, 6, kernel_size=3)
    return conv.state_dict(), {"arch": "Conv2d", "in_channels": 1, "classes": 6, "kernel_size": 3}


@pytest.fixture(scope="module", params=["embedded", pytest.param("server", marks=pytest.mark.slow)])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """Settings fields for one MLflow backend, shared by a module's tests (one database each)."""
    data_dir = tmp_path_factory.mktemp(f"mlflow-{request.param}")
    if request.param == "embedded":
        yield {"data_dir": data_dir, "mlflow_tracking_uri": None}
        return
    server = request.getfixturevalue("mlflow_server")
    with pytest.MonkeyPatch.context() as patch:
        # MLflow retries a failing request for minutes by default; fail within seconds instead
        patch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        yield {"data_dir": data_dir, "mlflow_tracking_uri": server.url}


@pytest.fixture
def settings(backend: dict) -> Settings:
    """Settings with a model name of its own, so tests sharing a database do not meet."""
    return Settings(_env_file=None, model_name=f"test-{uuid.uuid4().hex[:10]}", **backend)


def log_version(settings: Settings, seed: int) -> tuple[int, str, dict[str, torch.Tensor]]:
    """Log a tiny model in a run and register it; return (version, run id, state dict)."""
    state_dict, model_config = tiny_model(seed)
    with start_run(settings, run_name=f"seed-{seed}") as run:
        run.log_model(state_dict, model_config)
    return ModelRegistry.from_settings(settings).register(run.run_id), run.run_id, state_dict


def assert_same_tensors(loaded: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert sorted(loaded) == sorted(expected)
    for name, tensor in expected.items():
        assert loaded[name].dtype == tensor.dtype and torch.equal(loaded[name], tensor), name


class TestFingerprint:
    def test_order_independent_and_stable(self) -> None:
        assert fingerprint(["b", "a", "c"]) == fingerprint(["c", "b", "a"])
        assert fingerprint({"b": "h2", "a": "h1"}) == fingerprint({"a": "h1", "b": "h2"})
        # pinned: the fingerprint is stored in the registry and must not drift between releases
        assert fingerprint(["a", "b"]) == "90b0d3d94fa88c013b09dbe6f145e892adb7dcfe33ce19dddd7f40dd2e963503"

    def test_identity_changes_change_it(self) -> None:
        base = fingerprint({"a": "h1", "b": "h2"})
        assert fingerprint({"a": "h1", "b": "h3"}) != base  # content changed
        assert fingerprint({"a": "h1"}) != base  # sample dropped
        assert fingerprint(["a", "b"]) != base  # ids only
        assert fingerprint(["a,b"]) != fingerprint(["a", "b"])  # no ambiguity from joining

    def test_refuses_repeats_and_empty(self) -> None:
        with pytest.raises(ValueError, match=r"repeat.*\['a'\]"):
            fingerprint(["a", "b", "a"])
        with pytest.raises(ValueError, match="empty"):
            fingerprint([])


def test_flatten_nested_config() -> None:
    flat = flatten({"a": {"b": {"c": 1}, "d": [1, 2]}, "e": "text", "f": None, "g": "x" * 7000})
    assert {k: v for k, v in flat.items() if k != "g"} == {"a.b.c": "1", "a.d": "[1, 2]", "e": "text", "f": "null"}
    assert len(flat["g"]) == 6000 and flat["g"].endswith("...")


def test_model_dir_round_trip_without_pickle(tmp_path: Path) -> None:
    state_dict, model_config = tiny_model(0)
    save_model_dir(tmp_path / "m", state_dict, model_config)
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]
    loaded, config = load_model_dir(tmp_path / "m")
    assert_same_tensors(loaded, state_dict)
    assert config == model_config
    with pytest.raises(ValueError, match="'bias' is a ndarray"):
        save_model_dir(tmp_path / "n", {"bias": state_dict["bias"].numpy()}, model_config)
    with pytest.raises(ValueError, match="plain JSON"):
        save_model_dir(tmp_path / "n", state_dict, {"path": Path("/x")})


class TestRuns:
    def test_run_logs_params_config_metrics_curves_fingerprints(self, settings: Settings, tmp_path: Path) -> None:
        config = TrainConfig()
        with start_run(settings, run_name="cycle-1", tags={"scraiber.cycle": "1"}) as run:
            run.log_params({"seed": 7, "device": "cpu"})
            logged_config = run.log_config(config)
            train_fp = run.log_dataset("train", {"task-2": "bb", "task-1": "aa"})
            val_fp = run.log_dataset("val", ["task-9", "task-8"])
            run.log_curve("train/loss", [0.9, 0.5, 0.25])
            run.log_curve("val/loss", [0.8, 0.6], start_step=1)
            miou = run.log_class_iou({"Epoxy": 0.5, "Fe-Ti oxide": 1.0, "Olivine": math.nan})
        client = mlflow_client(settings)
        logged = client.get_run(run.run_id)
        assert logged.info.status == "FINISHED" and logged.info.run_name == "cycle-1"
        assert logged.data.params == {
            "seed": "7",
            "device": "cpu",
            "config.encoder": "resnet18",
            "config.epochs": "3",
            "config.classes": '["Epoxy", "Olivine", "Fe-Ti oxide"]',
            "config.optimiser.name": "adamw",
            "config.optimiser.lr": "0.001",
        }
        assert miou == 0.75
        metrics = logged.data.metrics
        assert (metrics["val/miou"], metrics["val/iou/Epoxy"], metrics["val/iou/Fe-Ti oxide"]) == (0.75, 0.5, 1.0)
        assert math.isnan(metrics["val/iou/Olivine"])
        assert [(m.step, m.value) for m in client.get_metric_history(run.run_id, "train/loss")] == [
            (0, 0.9),
            (1, 0.5),
            (2, 0.25),
        ]
        assert [(m.step, m.value) for m in client.get_metric_history(run.run_id, "val/loss")] == [(1, 0.8), (2, 0.6)]
        assert logged.data.tags["scraiber.cycle"] == "1"
        assert logged.data.tags["scraiber.data.train"] == train_fp == fingerprint({"task-1": "aa", "task-2": "bb"})
        assert logged.data.tags["scraiber.data.val"] == val_fp == fingerprint(["task-8", "task-9"])
        config_file = client.download_artifacts(run.run_id, "config.json", str(tmp_path))
        assert json.loads(Path(config_file).read_text()) == logged_config
        assert logged_config["optimiser"] == {"name": "adamw", "lr": 0.001}
        val_file = client.download_artifacts(run.run_id, "data/val.json", str(tmp_path))
        assert json.loads(Path(val_file).read_text()) == {
            "role": "val",
            "fingerprint": val_fp,
            "samples": ["task-8", "task-9"],
        }

    def test_failing_block_marks_run_failed(self, settings: Settings) -> None:
        with pytest.raises(RuntimeError, match="diverged"):
            with start_run(settings) as run:
                run.log_curve("train/loss", [1.0, math.inf])
                raise RuntimeError("loss diverged")
        assert mlflow_client(settings).get_run(run.run_id).info.status == "FAILED"

    def test_iou_checked(self, settings: Settings) -> None:
        with start_run(settings) as run:
            with pytest.raises(ValueError, match="no class has a finite IoU"):
                run.log_class_iou({"Epoxy": math.nan})
            with pytest.raises(ValueError, match=r"\[0, 1\]"):
                run.log_class_iou({"Epoxy": 1.5})


class TestModels:
    def test_model_download_and_safetensors_round_trip(self, settings: Settings) -> None:
        version, run_id, state_dict = log_version(settings, seed=1)
        registry = ModelRegistry.from_settings(settings)
        assert version == 1 and registry.version(1).run_id == run_id
        folder = registry.download_model(1)
        assert folder == settings.data_dir / "models" / settings.model_name / f"v1-{run_id}"
        assert sorted(p.name for p in folder.iterdir()) == [CONFIG_FILE, WEIGHTS_FILE]
        loaded, config = load_model_dir(folder)
        assert_same_tensors(loaded, state_dict)
        assert config == tiny_model(1)[1]
        assert registry.download_model(1) == folder  # cached
        assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no temporary folders left

    def test_unknown_version_or_alias(self, settings: Settings) -> None:
        registry = ModelRegistry.from_settings(settings)
        with pytest.raises(ModelNotFoundError, match="has no version with alias 'champion'"):
            registry.download_model()
        log_version(settings, seed=2)
        with pytest.raises(ModelNotFoundError, match="has no version 5"):
            registry.download_model(5)
        with pytest.raises(ModelNotFoundError, match="alias 'staging'"):
            registry.download_model("staging")

    @pytest.mark.parametrize("backend", ["embedded"], indirect=True)
    def test_embedded_default_keeps_everything_under_data_dir(self, settings: Settings) -> None:
        _, run_id, _ = log_version(settings, seed=3)
        assert settings.resolved_mlflow_uri == f"sqlite:///{(settings.data_dir / 'mlflow.db').resolve()}"
        assert (settings.data_dir / "mlflow.db").is_file()
        weights = list(
            (settings.data_dir / "mlartifacts").glob(f"{settings.model_name}/{run_id}/artifacts/model/{WEIGHTS_FILE}")
        )
        assert len(weights) == 1

    @pytest.mark.parametrize("backend", [pytest.param("server", marks=pytest.mark.slow)], indirect=True)
    def test_server_artefacts_are_in_the_s3_bucket(self, settings: Settings, mlflow_server) -> None:
        version, run_id, _ = log_version(settings, seed=4)
        s3 = mlflow_server.s3.client()
        listing = s3.list_objects_v2(Bucket=mlflow_server.bucket, Prefix=f"{mlflow_server.prefix}/")
        keys = [item["Key"] for item in listing["Contents"] if f"/{run_id}/" in item["Key"]]
        assert sorted(key.rsplit("/artifacts/", 1)[1] for key in keys) == [
            f"model/{CONFIG_FILE}",
            f"model/{WEIGHTS_FILE}",
        ]
        weights_key = next(key for key in keys if key.endswith(WEIGHTS_FILE))
        stored = s3.get_object(Bucket=mlflow_server.bucket, Key=weights_key)["Body"].read()
        folder = ModelRegistry.from_settings(settings).download_model(version)
        assert (folder / WEIGHTS_FILE).read_bytes() == stored
        assert not (settings.data_dir / "mlartifacts").exists() and not (settings.data_dir / "mlflow.db").exists()


class TestPromotion:
    def test_first_version_is_promoted(self, settings: Settings) -> None:
        registry = ModelRegistry.from_settings(settings)
        assert registry.champion() is None and registry.champion_version() is None
        version, run_id, _ = log_version(settings, seed=10)
        decision = registry.promote_if_not_worse(version, 0.42, "val-a")
        assert decision.promoted and not decision.needs_reevaluation and decision.champion_version is None
        assert "first champion" in decision.reason
        champion = registry.champion()
        assert (champion.version, champion.run_id) == (version, run_id)
        assert champion.tags["scraiber.val_miou"] == "0.42" and champion.tags["scraiber.validation_set"] == "val-a"
        assert champion.tags["scraiber.promotion"] == decision.reason
        assert registry.champion_version() == version

    def test_worse_is_not_promoted_not_worse_is(self, settings: Settings) -> None:
        registry = ModelRegistry.from_settings(settings)
        v1, _, _ = log_version(settings, seed=11)
        v2, _, _ = log_version(settings, seed=12)
        v3, _, weights3 = log_version(settings, seed=13)
        registry.promote_if_not_worse(v1, 0.70, "val-a")

        worse = registry.promote_if_not_worse(v2, 0.6999, "val-a")
        assert not worse.promoted and not worse.needs_reevaluation and worse.champion_version == v1
        assert "0.6999 is worse than champion v1's 0.7000" in worse.reason
        assert registry.champion_version() == v1
        assert registry.version(v2).tags["scraiber.promotion"] == worse.reason

        equal = registry.promote_if_not_worse(v3, 0.70, "val-a")
        assert equal.promoted and equal.champion_version == v1 and "not worse" in equal.reason
        assert registry.champion_version() == v3
        # what the backend does on a new champion_version(): fetch the champion's weights
        loaded, _ = load_model_dir(registry.download_model())
        assert_same_tensors(loaded, weights3)

    def test_other_validation_set_needs_reevaluation(self, settings: Settings) -> None:
        registry = ModelRegistry.from_settings(settings)
        v1, _, _ = log_version(settings, seed=20)
        v2, _, _ = log_version(settings, seed=21)
        registry.promote_if_not_worse(v1, 0.50, "val-a")

        decision = registry.promote_if_not_worse(v2, 0.99, "val-b")
        assert not decision.promoted and decision.needs_reevaluation and decision.champion_version == v1
        assert "not comparable" in decision.reason and "re-evaluate" in decision.reason
        assert registry.champion_version() == v1

        registry.record_validation(v1, 0.60, "val-b")  # the champion, re-evaluated on the new set
        again = registry.promote_if_not_worse(v2, 0.99, "val-b")
        assert again.promoted and registry.champion_version() == v2

    def test_a_better_score_that_forgets_the_synthetic_sections_is_not_promoted(self, settings: Settings) -> None:
        registry = ModelRegistry.from_settings(settings)
        v1, v2, v3 = (log_version(settings, seed=seed)[0] for seed in (40, 41, 42))
        registry.promote_if_not_worse(v1, 0.60, "val-a", synthetic_miou=0.80)
        assert registry.champion().tags["scraiber.val_miou_synthetic"] == "0.8"

        forgets = registry.promote_if_not_worse(v2, 0.65, "val-a", synthetic_miou=0.6999)
        assert not forgets.promoted and registry.champion_version() == v1
        assert "synthetic mIoU 0.6999 is more than 0.1 below the champion's 0.8000" in forgets.reason

        adapts = registry.promote_if_not_worse(v3, 0.65, "val-a", synthetic_miou=0.7001)  # within the tolerance
        assert adapts.promoted and registry.champion_version() == v3

    @pytest.mark.parametrize(("miou", "set_id"), [(1.5, "val-a"), (math.nan, "val-a"), (0.5, "")])
    def test_bad_results_refused(self, settings: Settings, miou: float, set_id: str) -> None:
        version, _, _ = log_version(settings, seed=30)
        registry = ModelRegistry.from_settings(settings)
        with pytest.raises(ValueError, match="validation"):
            registry.promote_if_not_worse(version, miou, set_id)
        assert registry.champion_version() is None
