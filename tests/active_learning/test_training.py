"""FCN training: config, batches, loss, checkpoints and resume, early stopping, MLflow registration."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from active_learning.fingerprints import fingerprint
from active_learning.training import HarvestedSample, TrainConfig, run_training
from active_learning.training.checkpoint import load_checkpoint
from active_learning.training.data import TrainingBatches
from active_learning.training.loop import evaluate
from active_learning.training.loss import SegmentationLoss
from active_learning.training.validation import ValidationSample, evaluation, synthetic_validation_set, validation_set
from label_config.catalogue import load_catalogue
from ml_backend.fcn import FCNConfig, FCNSegmenter, load_fcn
from ml_backend.synthetic import generate_section
from scraiber.cli import main
from scraiber.settings import Settings

CAT = load_catalogue()
LN2 = math.log(2.0)
CPU = torch.device("cpu")


def tiny(tmp_path: Path, **changes) -> TrainConfig:
    """A training config that runs in seconds: 64 px patches, the smallest network, one 64 px validation section."""
    values = dict(
        arch="fpn-mobilenet_v2", steps=20, batch_size=4, patch=64, section_size=128, patches_per_section=4,
        val_sections=1, val_size=64, val_every=10, tile=64, overlap=16, lr=3e-3, warmup_steps=2, threads=1,
        checkpoint_dir=str(tmp_path / "ck"), patience=0,
    )  # fmt: skip
    values.update(changes)
    return TrainConfig(**values)


# --- loss ---------------------------------------------------------------------------------------


def _two_pixels() -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel 0: logits (0, 0), class 0 (p = 1/2). Pixel 1: logits (ln 3, 0), class 1 (p = 1/4)."""
    logits = torch.tensor([[[[0.0, math.log(3.0)]], [[0.0, 0.0]]]])  # (1, 2, 1, 2)
    return logits, torch.tensor([[[0, 1]]])


def test_weighted_cross_entropy_exact():
    logits, target = _two_pixels()
    loss = SegmentationLoss(2, class_weights=[1.0, 2.0], dice_weight=0.0)
    weight = torch.tensor([[[1.0, 0.5]]])
    # weights * alpha = (1, 1): the mean of ln 2 and ln 4
    assert loss(logits, target, weight).item() == pytest.approx(1.5 * LN2, abs=1e-6)
    # without pixel weights: (1 * ln 2 + 2 * ln 4) / 3
    assert loss(logits, target).item() == pytest.approx(5 * LN2 / 3, abs=1e-6)


def test_focal_term_exact():
    logits, target = _two_pixels()
    loss = SegmentationLoss(2, dice_weight=0.0, focal_gamma=2.0)
    assert loss(logits, target).item() == pytest.approx((0.25 * LN2 + 0.5625 * 2 * LN2) / 2, abs=1e-6)


def test_dice_exact_with_pixel_weights():
    logits, target = _two_pixels()
    loss = SegmentationLoss(2, ce_weight=0.0, dice_weight=1.0, eps=1.0)
    weight = torch.tensor([[[1.0, 0.5]]])
    dice0 = (2 * 0.5 + 1) / (1.5 + 0.375 + 1)
    dice1 = (2 * 0.125 + 1) / (0.5 + 0.625 + 1)
    assert loss(logits, target, weight).item() == pytest.approx(1 - (dice0 + dice1) / 2, abs=1e-6)


def test_ignored_pixels_do_not_count():
    logits, target = _two_pixels()
    loss = SegmentationLoss(2)
    ignored = torch.tensor([[[0, 255]]])
    other = logits.clone()
    other[0, :, 0, 1] = torch.tensor([5.0, -7.0])  # change only the ignored pixel
    assert loss(logits, ignored).item() == pytest.approx(loss(other, ignored).item(), abs=1e-7)
    # only pixel 0 (class 0, p = 1/2): CE ln 2; Dice over class 0 alone: (2 * 0.5 + 1) / (1.5 + 1)
    assert loss(logits, ignored).item() == pytest.approx(LN2 + 1 - 2 / 2.5, abs=1e-6)
    # a zero weight is the same as ignoring
    assert loss(logits, target, torch.tensor([[[1.0, 0.0]]])).item() == pytest.approx(LN2 + 1 - 2 / 2.5, abs=1e-6)
    assert loss(logits, torch.full((1, 1, 2), 255)).item() == 0.0


# --- config and data ----------------------------------------------------------------------------


def test_config_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match=r"unknown training config key\(s\) \['epochs'\]; valid keys: amp"):
        TrainConfig.from_dict({"epochs": 3})
    with pytest.raises(ValueError, match="valid architectures"):
        TrainConfig(arch="vit")
    with pytest.raises(ValueError, match="multiple of 32"):
        TrainConfig(patch=100)
    bad = tmp_path / "bad.toml"
    bad.write_text("steps = [")
    with pytest.raises(ValueError, match="not valid TOML"):
        TrainConfig.from_file(bad)
    good = tmp_path / "good.toml"
    good.write_text("steps = 7\n[synth]\npixel_size_um = [1.0, 1.5]\n")
    config = TrainConfig.from_file(good)
    assert config.steps == 7 and config.synth["pixel_size_um"] == [1.0, 1.5] and "gain_dn" in config.synth
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_shipped_config_file_is_valid():
    config = TrainConfig.from_file(Path(__file__).parents[2] / "active_learning" / "training" / "minerals.toml")
    assert config.val_sections == 4 and config.val_size == 512 and config.val_seed == 1_000_000
    assert set(config.families) == {"porphyritic", "vitrophyric", "intergranular"} and config.intensity_augment
    held = config.without_families(["vitrophyric"])
    assert set(held.families) == set(held.validation_families()) == {"porphyritic", "intergranular"}
    with pytest.raises(ValueError, match="cannot hold out"):
        held.without_families(["vitrophyric"])
    with pytest.raises(ValueError, match="unknown generator families"):
        config.replace(families={"basalt-x": 1.0})


def test_batches_are_a_pure_function_of_seed_and_step(tmp_path):
    config = tiny(tmp_path)
    first, second = TrainingBatches(config, CAT), TrainingBatches(config, CAT)
    a, b, c = first[3], second[3], first[4]
    assert a.image.shape == (4, 1, 64, 64) and a.label.shape == (4, 64, 64) and a.label.dtype == torch.int64
    assert torch.equal(a.image, b.image) and torch.equal(a.label, b.label)
    assert not torch.equal(a.image, c.image)
    assert set(torch.unique(a.label).tolist()) <= set(range(len(CAT)))


def test_harvested_samples_are_mixed_in_with_their_weights(tmp_path):
    rng = np.random.default_rng(0)
    label = np.full((50, 80), 3, np.uint8)
    label[:, :10] = 255
    sample = HarvestedSample(
        rng.integers(0, 4000, (50, 80)).astype(np.uint16), label, np.full((50, 80), 0.5, np.float32)
    )
    batches = TrainingBatches(tiny(tmp_path, harvest_ratio=0.5), CAT, [sample])
    batch = batches[0]
    harvested_labels, harvested_weights = batch.label[2:], batch.weight[2:]
    assert set(torch.unique(harvested_labels).tolist()) <= {3, 255}
    assert set(torch.unique(harvested_weights).tolist()) <= {0.0, 0.5}  # 0 where padded to 64 px
    assert torch.all(batch.weight[:2] == 1.0)
    with pytest.raises(ValueError, match="label must be uint8"):
        HarvestedSample(sample.image, label.astype(np.int32), sample.weight)


# --- training runs ------------------------------------------------------------------------------


@pytest.mark.slow
def test_tiny_run_learns_checkpoints_and_resumes_exactly(tmp_path):
    constant = dict(schedule="constant", warmup_steps=0, val_every=2)
    whole = run_training(tiny(tmp_path / "a", steps=20, **constant), out=tmp_path / "out", progress=False)
    assert whole.steps_done == 20 and len(whole.losses) == 20
    assert np.mean(whole.losses[-5:]) < np.mean(whole.losses[:5])
    assert whole.model_path == tmp_path / "out" / "minerals-fpn-mobilenet_v2.safetensors"
    saved = load_fcn(whole.model_path)
    assert saved.config.training["best_step"] == whole.best_step and saved.config.training["val_fingerprint"]

    # the same run, stopped after 4 steps and resumed: the same losses from step 5 on
    part = tiny(tmp_path / "b", steps=4, **constant)
    run_training(part, progress=False)
    state_after_4 = torch.get_rng_state()
    network = FCNConfig.for_architecture(part.arch, CAT.names).build()
    optimizer = torch.optim.AdamW(network.parameters())
    state, saved_config = load_checkpoint(Path(part.checkpoint_dir), network, optimizer)
    assert state.step == 4 and saved_config["steps"] == 4
    assert torch.equal(torch.get_rng_state(), state_after_4)
    resumed = run_training(part.replace(steps=6, resume=True), progress=False)
    assert resumed.steps_done == 6 and len(resumed.losses) == 6
    np.testing.assert_allclose(resumed.losses, whole.losses[:6], rtol=1e-5)


@pytest.mark.slow
def test_early_stopping_on_a_flat_metric(tmp_path):
    # lr = 0 and frozen batch-norm statistics: the weights never change, so neither does the metric
    config = tiny(tmp_path, lr=0.0, steps=50, val_every=1, patience=2, freeze_norm=True)
    result = run_training(config, progress=False)
    assert result.stopped_early and result.steps_done == 3 and result.best_step == 1


def test_resume_refuses_another_data_config(tmp_path):
    run_training(tiny(tmp_path, steps=1, val_every=1), progress=False)
    with pytest.raises(ValueError, match="trained with other seed"):
        run_training(tiny(tmp_path, steps=2, val_every=1, seed=5, resume=True), progress=False)


def test_train_command_without_mlflow(tmp_path):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({k: v for k, v in tiny(tmp_path).to_dict().items() if k != "synth"}))
    args = ["train", "--config", str(config), "--steps", "2", "--no-register", "--out", str(tmp_path / "m"), "--quiet"]
    result = CliRunner().invoke(main, args, obj={"settings": Settings(_env_file=None, data_dir=tmp_path)})
    assert result.exit_code == 0, result.output
    assert "validation mIoU" in result.output
    assert (tmp_path / "m" / "minerals-fpn-mobilenet_v2.json").is_file()


def test_train_on_modal_goes_through_the_modal_app(tmp_path):
    settings = Settings(_env_file=None, data_dir=tmp_path, artefact_uri=None)
    result = CliRunner().invoke(main, ["train", "--on", "modal", "--steps", "2"], obj={"settings": settings})
    assert result.exit_code == 1 and "training on Modal needs SCRAIBER_ARTEFACT_URI" in result.output


@pytest.mark.slow
def test_registered_run_logs_to_mlflow_and_promotes(tmp_path):
    from active_learning.registry import ModelRegistry
    from active_learning.tracking import mlflow_client
    from ml_backend.fcn.model_files import resolve_model_uri

    settings = Settings(_env_file=None, data_dir=tmp_path / "data", model_name=f"test-{uuid.uuid4().hex[:8]}")
    result = run_training(tiny(tmp_path, steps=4, val_every=2), settings, progress=False)
    assert result.model_version == 1 and result.promoted and result.run_id
    client = mlflow_client(settings)
    run = client.get_run(result.run_id)
    assert run.data.params["config.arch"] == "fpn-mobilenet_v2" and run.data.params["config.steps"] == "4"
    assert run.data.tags["scraiber.data.val"] == result.val_fingerprint
    assert run.data.metrics["val/miou"] == pytest.approx(result.validations[-1]["miou"])
    assert [m.step for m in client.get_metric_history(result.run_id, "train/loss_step")] == [0, 1, 2, 3]
    assert "val/iou/Olivine" in run.data.metrics
    registry = ModelRegistry.from_settings(settings)
    assert registry.champion_version() == 1

    # a worse second version on the same validation set does not become champion
    worse = run_training(tiny(tmp_path / "second", steps=1, val_every=1, lr=0.0, seed=9), settings, progress=False)
    if worse.val_miou < result.val_miou:
        assert worse.model_version == 2 and not worse.promoted and registry.champion_version() == 1

    folder = resolve_model_uri(f"models:/{settings.model_name}@champion", settings)
    segmenter = FCNSegmenter(CAT, folder, device="cpu", runtime="eager")
    assert segmenter.predict_proba(np.zeros((40, 40), np.uint16) + 100).shape == (len(CAT), 40, 40)
    by_run = resolve_model_uri(f"runs:/{result.run_id}/model", settings)
    assert load_fcn(by_run).sha256 == load_fcn(folder).sha256


@pytest.mark.slow
def test_fine_tuning_from_weights_with_frozen_batch_norm(tmp_path):
    first = run_training(tiny(tmp_path / "a"), None, register=False, progress=False)
    start = load_fcn(first.model_path).state_dict
    frozen = run_training(
        tiny(tmp_path / "b", init_from=str(first.model_path), freeze_norm=True, lr=0.0), None,
        register=False, progress=False,
    )  # fmt: skip
    same = load_fcn(frozen.model_path).state_dict
    assert all(torch.equal(start[k], same[k]) for k in start if "running" in k or "weight" in k)
    assert frozen.val_miou == first.val_miou  # the same model, evaluated on the same set
    free = run_training(tiny(tmp_path / "c", init_from=str(first.model_path), lr=0.0), None,
                        register=False, progress=False)  # fmt: skip
    moved = load_fcn(free.model_path).state_dict
    assert any(not torch.equal(start[k], moved[k]) for k in start if "running_mean" in k)


def test_fine_tuning_refuses_another_architecture(tmp_path):
    first = run_training(tiny(tmp_path / "a"), None, register=False, progress=False)
    with pytest.raises(ValueError, match="cannot fine-tune"):
        run_training(tiny(tmp_path / "b", arch="unet-mobilenet_v2", init_from=str(first.model_path)), None,
                     register=False, progress=False)  # fmt: skip


# --- validation score ---------------------------------------------------------------------------


def test_score_is_the_expert_miou_when_there_are_expert_labels_exact():
    synthetic = np.array([[5, 1], [0, 4]])  # IoU 5/6 and 4/5: mIoU 49/60
    expert = np.array([[1, 1], [1, 1]])  # IoU 1/3 and 1/3
    both = evaluation({True: synthetic, False: expert}, ["a", "b"])
    assert both.synthetic_miou == pytest.approx(49 / 60) and both.expert_miou == pytest.approx(1 / 3)
    assert both.score == pytest.approx(1 / 3)  # pooled pixels would give 0.646
    assert both.iou == pytest.approx({"a": 6 / 9, "b": 5 / 8})
    alone = evaluation({True: synthetic}, ["a", "b"])
    assert alone.expert_miou is None and alone.score == pytest.approx(49 / 60)


def test_fingerprint_names_the_score_rule_only_with_expert_labels():
    section = generate_section(64, 5, catalogue=CAT)
    expert = ValidationSample("expert-1", section.image, section.classes)
    _, _, synthetic_only = validation_set(CAT, 7, 1, 64)
    _, hashes, with_expert = validation_set(CAT, 7, 1, 64, [expert])
    assert synthetic_only == fingerprint({"synth-7-64": hashes["synth-7-64"]})
    assert with_expert not in (synthetic_only, fingerprint(hashes))  # the rule is part of the set's identity


def test_training_picks_checkpoints_on_the_expert_score(tmp_path):
    section = generate_section(64, 5, catalogue=CAT)
    expert = ValidationSample("expert-1", section.image, section.classes)
    result = run_training(tiny(tmp_path, steps=4, val_every=2), None, register=False, progress=False,
                          validation_extra=[expert])  # fmt: skip
    loaded = load_fcn(result.model_path)
    fields = synthetic_validation_set(CAT, 1_000_000, 1, 64, tiny(tmp_path).validation_families())
    synthetic = evaluate(loaded.network(), loaded.config, fields, CPU)
    expert_only = evaluate(loaded.network(), loaded.config, [expert], CPU)
    assert result.val_miou == pytest.approx(expert_only.expert_miou, abs=1e-6)
    assert result.val_synthetic_miou == pytest.approx(synthetic.score, abs=1e-6)
    assert [v["miou"] for v in result.validations] != [v["synthetic_miou"] for v in result.validations]


@pytest.mark.slow  # two interpreters import torch and train
def test_bare_machine_trains_without_pydantic_mlflow_or_label_studio(tmp_path):
    # python -m scraiber.commands.training on a GPU box with only the training stack installed
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({k: v for k, v in tiny(tmp_path).to_dict().items() if k != "synth"}))
    args = ["--config", str(config), "--steps", "2", "--no-register", "--out", str(tmp_path / "m"), "--quiet"]
    script = (
        "import runpy, sys\n"
        "for name in ('pydantic', 'pydantic_settings', 'mlflow', 'label_studio_sdk'):\n"
        "    sys.modules[name] = None  # importing any of them now raises ImportError\n"
        "sys.argv = ['training'] + sys.argv[1:]\n"
        "runpy.run_module('scraiber.commands.training', run_name='__main__')\n"
    )
    done = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "validation mIoU" in done.stdout
    assert (tmp_path / "m" / "minerals-fpn-mobilenet_v2.json").is_file()
    register = [arg if arg != "--no-register" else "--register" for arg in args]
    refused = subprocess.run([sys.executable, "-c", script, *register], capture_output=True, text=True, timeout=300)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "registering or --on modal needs the full installation" in refused.stderr
