"""The training entry point shared by every way of running it: ``run_training(config, settings)``.

``scraiber train`` (local), ``python -m scraiber.commands.training`` (no MLflow, light
imports) and the Modal function all call :func:`run_training`. MLflow is imported only
when the run is registered.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np
import torch
from tqdm.auto import tqdm

from active_learning.training.checkpoint import TrainState, has_checkpoint, load_checkpoint, save_checkpoint
from active_learning.training.config import TrainConfig
from active_learning.training.data import HarvestedSample, TrainingBatches, collate_none
from active_learning.training.loss import SegmentationLoss
from active_learning.training.result import TrainingResult
from active_learning.training.validation import (
    Evaluation,
    ValidationSample,
    class_frequencies,
    evaluation,
    validation_set,
)
from label_config.catalogue import Catalogue, load_catalogue
from ml_backend.fcn.model_config import FCNConfig
from ml_backend.fcn.model_files import load_fcn, save_fcn
from ml_backend.fcn.runtime import cpu_has_bf16
from ml_backend.fcn.segmenter import FCNPredictor, resolve_device, use_torch_threads
from ml_backend.metrics import confusion_matrix, tile_miou

if TYPE_CHECKING:
    from active_learning.settings_protocols import TrainingSettings

log = logging.getLogger(__name__)

#: Fields that decide which batches a run sees: a resumed run must agree on them.
_DATA_FIELDS = ("arch", "seed", "batch_size", "patch", "section_size", "patches_per_section", "synth", "families",
                "section_pool", "intensity_augment", "harvest_ratio", "augment", "intensity_jitter", "val_seed",
                "val_sections", "val_size", "val_families")  # fmt: skip


class TrainingLog(Protocol):
    """Where a run reports (MLflow when registered; nothing otherwise)."""

    def start(self, config: TrainConfig, val_samples: dict[str, str], class_weights: list[float]) -> None: ...

    def metrics(self, values: dict[str, float], step: int) -> None: ...

    def class_iou(self, iou: dict[str, float], step: int) -> None: ...

    def finish(self, result: TrainingResult, state_dict: dict[str, torch.Tensor]) -> None: ...


class NullLog:
    """A :class:`TrainingLog` that records nothing (``--no-register``)."""

    def start(self, config: TrainConfig, val_samples: dict[str, str], class_weights: list[float]) -> None:
        """Nothing."""

    def metrics(self, values: dict[str, float], step: int) -> None:
        """Nothing."""

    def class_iou(self, iou: dict[str, float], step: int) -> None:
        """Nothing."""

    def finish(self, result: TrainingResult, state_dict: dict[str, torch.Tensor]) -> None:
        """Nothing."""


def learning_rate(config: TrainConfig, step: int) -> float:
    """The learning rate at ``step``: linear warm-up, then constant or cosine decay."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if config.schedule == "constant":
        return config.lr
    span = max(config.steps - config.warmup_steps, 1)
    progress = min((step - config.warmup_steps) / span, 1.0)
    floor = config.lr * config.final_lr_fraction
    return floor + (config.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def evaluate(
    network: torch.nn.Module, model_config: FCNConfig, samples: Iterable[ValidationSample], device: torch.device
) -> Evaluation:
    """``network`` (tiled inference, as served) on ``samples``: per-class IoU and the score."""
    n = len(model_config.classes)
    predictor = FCNPredictor(
        network, model_config, device=str(device), runtime="channels-last", threads=torch.get_num_threads()
    )
    confusions: dict[bool, np.ndarray] = {}
    per_tile: dict[str, float] = {}
    for sample in samples:
        predicted = predictor.predict(sample.image, reduce=lambda block: np.argmax(block, axis=0).astype(np.uint8))
        if sample.champion_only:  # judges champions only, never chooses a checkpoint
            per_tile[sample.id] = tile_miou(sample.label, predicted, n)
            continue
        matrix = confusion_matrix(sample.label, predicted, n)
        confusions[sample.synthetic] = confusions.get(sample.synthetic, 0) + matrix
    return evaluation(confusions, model_config.classes, per_tile)


def default_class_weights(samples: list[ValidationSample], n_classes: int) -> list[float]:
    """Inverse square root of class frequencies, normalised to mean 1 (absent classes get the largest weight)."""
    freq = class_frequencies(samples, n_classes)
    present = freq > 0
    weights = np.zeros(n_classes)
    weights[present] = 1 / np.sqrt(freq[present])
    weights[~present] = weights[present].max() if present.any() else 1.0
    return [round(float(w), 4) for w in weights / weights.mean()]


def _checkpoint_dir(config: TrainConfig, settings: TrainingSettings | None) -> Path:
    if config.checkpoint_dir:
        return Path(config.checkpoint_dir)
    root = settings.data_dir if settings is not None else Path(".scraiber")
    return root / "checkpoints" / f"{config.arch}-seed{config.seed}"


def _check_resumable(saved: dict[str, Any], config: TrainConfig, directory: Path) -> None:
    current = config.to_dict()
    different = [name for name in _DATA_FIELDS if saved.get(name) != current.get(name)]
    if different:
        raise ValueError(
            f"cannot resume from {directory}: the checkpoint was trained with other {', '.join(different)}; "
            "use the same config or another --checkpoint-dir"
        )


@contextmanager
def _tracking(settings: TrainingSettings | None, register: bool, config: TrainConfig) -> Iterator[TrainingLog]:
    if not register:
        yield NullLog()
        return
    if settings is None:
        raise ValueError("registering a trained model needs the settings (MLflow URI, model name)")
    from active_learning.training.mlflow_log import MlflowTrainingLog  # MLflow only when registering

    with MlflowTrainingLog.open(settings, config) as tracking:
        yield tracking


def run_training(
    config: TrainConfig,
    settings: TrainingSettings | None = None,
    *,
    catalogue: Catalogue | None = None,
    out: Path | None = None,
    register: bool | None = None,
    harvested: Iterable[HarvestedSample] | None = None,
    validation_extra: Iterable[ValidationSample] = (),
    progress: bool = True,
    on_progress: Callable[[dict[str, Any]], None] | None = None,
) -> TrainingResult:
    """Train an FCN on synthetic sections (+ harvested labels), validate, save, and (optionally) register it.

    Args:
        config: The training config (logged whole).
        settings: Needed to register (MLflow URI, model name, alias) and for the default
            checkpoint folder (``data_dir``); None trains without MLflow.
        catalogue: Classes (default: ``settings.catalogue`` or the built-in catalogue).
        out: Folder for the best model as ``minerals-<arch>.safetensors`` + ``.json``
            (default: the checkpoint folder's ``best``).
        register: Log to MLflow, register as ``settings.model_name`` and promote with the
            champion rule (default: True when ``settings`` are given).
        harvested: Harvested labelled samples, mixed in at ``config.harvest_ratio``.
        validation_extra: Held-out expert-labelled samples added to the fixed validation set.
        progress: tqdm bar on stderr.
        on_progress: Called after every step with ``step``, ``steps`` and ``loss``, and after
            every validation also with ``val_score`` and ``best_score`` (the retraining cycle
            shows them in ``/status``).

    Returns:
        The :class:`TrainingResult` (MLflow ids filled when registered).
    """
    started = time.perf_counter()
    register = settings is not None if register is None else register
    catalogue = catalogue or load_catalogue(settings.catalogue if settings is not None else None)
    device = resolve_device(config.device)
    if device.type == "cpu":
        use_torch_threads(config.threads)
    model_config = FCNConfig.for_architecture(
        config.arch, catalogue.names, percentiles=config.percentiles, tile=config.tile, overlap=config.overlap
    )
    torch.manual_seed(config.seed)
    # cast: torch's Module.to overloads omit device with memory_format, a combination it accepts at run time
    network = cast(Any, model_config.build()).to(device=device, memory_format=torch.channels_last)
    _train_mode(network, config.freeze_norm)

    if config.init_from:
        _load_initial_weights(network, model_config, config.init_from)
    val_samples, val_hashes, fingerprint = validation_set(
        catalogue, config.val_seed, config.val_sections, config.val_size, validation_extra, config.validation_families()
    )
    weights = list(config.class_weights) if config.class_weights else default_class_weights(val_samples, len(catalogue))
    criterion = SegmentationLoss(len(catalogue), weights, config.ce_weight, config.dice_weight, config.focal_gamma).to(
        device
    )
    optimizer = torch.optim.AdamW(network.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    use_amp = config.amp and (device.type == "cuda" or torch.backends.mkldnn.is_available() and cpu_has_bf16())

    directory = _checkpoint_dir(config, settings)
    state = TrainState()
    if config.resume and has_checkpoint(directory):
        state, saved = load_checkpoint(directory, network, optimizer)
        _check_resumable(saved, config, directory)
        log.info("resuming from %s at step %d", directory, state.step)
    elif config.resume:
        log.info("no checkpoint in %s: starting from step 0", directory)

    dataset = TrainingBatches(config, catalogue, harvested)
    # the loader's own generator leaves the global torch RNG (restored on resume) to dropout alone
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=None, sampler=range(state.step, config.steps), num_workers=config.workers,
        # cast: torch's stub types collate_fn for batched lists; with batch_size=None it gets one item
        collate_fn=cast(Callable[[list[Any]], Any], collate_none), generator=torch.Generator().manual_seed(config.seed),
    )  # fmt: skip
    best_state = _best_state(directory, state)
    stopped_early = False
    bar = tqdm(total=config.steps, initial=state.step, desc=f"train {config.arch}", unit="step", disable=not progress)
    with _tracking(settings, register, config) as tracking:
        tracking.start(config, val_hashes, weights)
        interval: list[float] = []
        for batch in loader:
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(config, state.step)
            image = batch.image.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
            autocast = torch.autocast(device.type, dtype=torch.bfloat16) if use_amp else nullcontext()
            with autocast:
                logits = network(image)
            loss = criterion(logits, batch.label.to(device), batch.weight.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            value = float(loss.detach())
            if not math.isfinite(value):
                raise ValueError(f"training diverged at step {state.step} (loss {value}); lower the learning rate")
            state.losses.append(value)
            interval.append(value)
            state.step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{value:.3f}", best=f"{max(state.best_miou, 0):.3f}")
            if state.step % config.val_every and state.step != config.steps:
                if on_progress is not None:
                    on_progress({"step": state.step, "steps": config.steps, "loss": value})
                continue
            scores = evaluate(network, model_config, val_samples, device)
            _train_mode(network, config.freeze_norm)
            iou, miou = scores.iou, scores.score
            record: dict[str, Any] = {"step": state.step, "miou": miou, "iou": iou, "loss": float(np.mean(interval)),
                      "synthetic_miou": scores.synthetic_miou, "per_tile": scores.per_tile}  # fmt: skip
            state.validations.append(record)
            domains = {"val/score": miou, "val/miou_synthetic": scores.synthetic_miou}
            if scores.expert_miou is not None:
                domains["val/miou_expert"] = scores.expert_miou
            tracking.metrics(
                {"train/loss": record["loss"], "train/lr": learning_rate(config, state.step - 1)} | domains,
                state.step,
            )
            tracking.class_iou(iou, state.step)
            interval = []
            log.info("step %d: loss %.4f, val score %.4f %s", state.step, record["loss"], miou,
                     {k: round(v, 3) for k, v in iou.items()})  # fmt: skip
            if miou > state.best_miou + config.min_delta:
                state.best_miou, state.best_step, state.bad_rounds = miou, state.step, 0
                best_state = {k: v.detach().to("cpu", copy=True) for k, v in network.state_dict().items()}
                save_fcn(directory / "best", best_state, model_config)
            else:
                state.bad_rounds += 1
            if on_progress is not None:
                on_progress({"step": state.step, "steps": config.steps, "loss": value, "val_score": miou,
                             "best_score": state.best_miou})  # fmt: skip
            save_checkpoint(directory, network, optimizer, state, config.to_dict())
            if config.patience and state.bad_rounds >= config.patience:
                stopped_early = True
                log.info("early stop at step %d: no mIoU gain for %d validations", state.step, state.bad_rounds)
                break
        bar.close()
        if best_state is None:
            raise ValueError(f"no validation ran: the run is already at step {state.step} of {config.steps}")
        best = next(v for v in state.validations if v["step"] == state.best_step)
        provenance = {
            "steps": state.step, "best_step": state.best_step, "val_miou": round(best["miou"], 4),
            "val_iou": {k: None if math.isnan(v) else round(v, 4) for k, v in best["iou"].items()},
            "val_fingerprint": fingerprint, "seed": config.seed, "device": device.type,
            "synthetic_only": not dataset.n_harvested(),
        }  # fmt: skip
        final_config = FCNConfig.from_dict({**model_config.to_dict(), "training": provenance})
        target = out / f"minerals-{config.arch}.safetensors" if out is not None else directory / "best"
        path = save_fcn(target, best_state, final_config)
        result = TrainingResult(
            path, final_config, best["iou"], best["miou"], fingerprint, state.best_step, state.step, stopped_early,
            time.perf_counter() - started, state.losses, state.validations,
            val_synthetic_miou=best.get("synthetic_miou"), val_per_tile=best.get("per_tile") or None,
        )  # fmt: skip
        tracking.finish(result, best_state)
    return result


def _train_mode(network: torch.nn.Module, freeze_norm: bool) -> None:
    """Training mode; with ``freeze_norm`` the batch-norm layers keep their running statistics.

    Fine-tuning on a few harvested tiles in small batches would otherwise overwrite the
    statistics learnt on many sections (and change the model even at learning rate 0).
    """
    network.train()
    if freeze_norm:
        for module in network.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()


def _load_initial_weights(network: torch.nn.Module, model_config: FCNConfig, path: str) -> None:
    """Start from trained weights (fine-tuning) after checking they fit this network."""
    loaded = load_fcn(path)
    mine = (model_config.smp_arch, model_config.encoder, tuple(model_config.classes))
    theirs = (loaded.config.smp_arch, loaded.config.encoder, tuple(loaded.config.classes))
    if mine != theirs:
        raise ValueError(f"cannot fine-tune from {path}: it is {theirs}, the training config builds {mine}")
    network.load_state_dict(loaded.state_dict)
    log.info("fine-tuning from %s", path)


def _best_state(directory: Path, state: TrainState) -> dict[str, torch.Tensor] | None:
    """The best weights saved by an earlier part of a resumed run, if any."""
    if state.best_step < 0 or not (directory / "best").is_dir():
        return None
    return load_fcn(directory / "best").state_dict
