"""Retraining cycles: implicit labels -> fine-tuned FCN -> champion rule -> fresh predictions.

**When.** After every ``SCRAIBER_RETRAIN_EVERY`` new implicit labels (0: not by count),
when Label Studio sends START_TRAINING (``SCRAIBER_RETRAIN_ON_START_TRAINING``), or on
demand (``scraiber retrain``). One cycle at a time (a lease in the event-log database).
Cycles run in the harvest worker's process, beside harvesting, never in the web workers:
``/predict`` keeps serving the current model while a cycle trains.

**A cycle**

1. gathers the current implicit labels (retracted and superseded ones excluded) and their
   images from Label Studio;
2. holds out one task in five: in each project the 1st, 6th, 11th... task to receive an
   implicit label. Their expert labels join the validation set and are never trained on.
   The harvest log only grows, so a task never changes sides, and a project has labels of
   its own sample to validate on from its first label. (A hash of the task id held out one
   task in twenty in the benchmark's first project, none of the twelve it labelled, so the
   champion rule saw synthetic sections only and rejected every correction-trained model.)
3. makes sure the served model is in the registry (the shipped model is registered as the
   baseline when there is no champion yet) and evaluates the champion on this cycle's
   validation set, so the champion rule compares like with like;
4. fine-tunes the champion on the remaining labels, each pixel weighted by its confidence,
   mixed with fresh synthetic sections (``harvest_ratio`` of each batch), locally or on
   Modal (``SCRAIBER_TRAIN_ON``) with the same ``run_training``; the phase, step, loss, ETA
   and last validation go to ``training_progress`` (:class:`CycleProgress`), shown by
   ``/status`` and printed by ``scraiber retrain``;
5. registers the candidate and moves the champion alias only if it is not worse on the same
   set: by the champion test on the per-tile mIoUs of every second held-out task (those never
   choose a checkpoint, :func:`champion_tasks`) once 15 are there, else by its mIoU on the
   held-out expert labels; the synthetic sections guard against forgetting
   (:mod:`active_learning.training.validation`, :mod:`active_learning.champion`);
6. if promoted, predicts the open tasks (no annotation yet) of every served project with
   the new model and posts the predictions, with their scores, to Label Studio: the Data
   Manager shows the new model version and can sort by score. The web workers switch to
   the new champion at their next poll (``SCRAIBER_MODEL_POLL_SECONDS``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from active_learning.harvest_log import LABEL, HarvestLog, HarvestRecord
from active_learning.registry import ModelRegistry
from active_learning.repredict import repredict_open_tasks
from active_learning.settings_protocols import CycleSettings
from active_learning.store import ArtefactStore
from active_learning.tracking import start_run
from active_learning.training import HarvestedSample, TrainConfig, run_training
from active_learning.training.loop import evaluate
from active_learning.training.validation import ValidationSample, validation_set
from active_learning.training_queue import TrainingQueue
from active_learning.worker import WorkerLease
from label_config import Catalogue
from ml_backend.fcn import FCNSegmenter, load_fcn, shipped_model_path
from ml_backend.image_source import ImageSource
from ml_backend.label_studio import LabelStudioClient
from ml_backend.predictor import Predictor

log = logging.getLogger(__name__)
HELD_OUT_SHARE = 5  # one labelled task in five is kept for validation (see held_out_tasks)
FINE_TUNE = {"steps": 300, "val_every": 100, "lr": 1e-4, "warmup_steps": 20, "harvest_ratio": 0.5, "patience": 0,
             "freeze_norm": True}  # fmt: skip


@dataclass(frozen=True)
class CycleResult:
    """What a cycle did.

    Attributes:
        run_id: Row of ``training_runs``.
        status: ``promoted``, ``not-promoted``, ``no-labels``, ``busy`` or ``failed``.
        trained_on: Implicit labels trained on; held_out: expert labels validated on.
        model_version: Registry version of the candidate (None if none was registered).
        val_miou: Candidate's validation mIoU; champion_miou: the champion's on the same set.
        reason: Why it was (not) promoted.
        predictions: Predictions posted to Label Studio for open tasks.
    """

    run_id: int | None
    status: str
    trained_on: int = 0
    held_out: int = 0
    model_version: int | None = None
    val_miou: float | None = None
    champion_miou: float | None = None
    reason: str = ""
    predictions: int = 0


def held_out_tasks(history: Iterable[HarvestRecord]) -> set[int]:
    """Tasks whose labels only validate: in each project the 1st, 6th, 11th... task labelled.

    Args:
        history: Every implicit-label record ever harvested (retracted and superseded
            versions included), oldest first: :meth:`HarvestLog.records` with both
            ``include_`` flags. The order of first appearance never changes.
    """
    seen: dict[int, set[int]] = {}
    held: set[int] = set()
    for record in history:
        tasks = seen.setdefault(record.project_id, set())
        if record.task_id not in tasks:
            if len(tasks) % HELD_OUT_SHARE == 0:
                held.add(record.task_id)
            tasks.add(record.task_id)
    return held


def champion_tasks(history: Iterable[HarvestRecord]) -> set[int]:
    """Held-out tasks that only judge champions: of each project's held-out tasks, every second one.

    The 6th, 16th, 26th... task labelled in a project gives per-tile mIoUs to the champion test
    (:mod:`active_learning.champion`) and never chooses a checkpoint; the 1st, 11th, 21st... choose
    checkpoints. Choosing and judging on the same tiles biases the winner upward.
    """
    history = list(history)
    held = held_out_tasks(history)
    order: dict[int, list[int]] = {}
    for record in history:
        tasks = order.setdefault(record.project_id, [])
        if record.task_id in held and record.task_id not in tasks:
            tasks.append(record.task_id)
    return {task for tasks in order.values() for task in tasks[1::2]}


class CycleProgress:
    """Where a running cycle stands, written to ``training_progress`` for ``/status``.

    :meth:`phase` records a phase change; called with ``run_training``'s step updates, it
    records step, loss, the last validation score and an ETA of the remaining steps (from the
    pace of this cycle's steps so far), at most every ``every`` seconds and at each validation.

    Args:
        queue: The training queue (its ``training_progress`` table).
        run_id: The cycle's run.
        observer: Also called with every record written (``scraiber retrain`` prints them).
        every: Least seconds between two step records.
        clock: Monotonic time source (tests).
    """

    def __init__(
        self,
        queue: TrainingQueue,
        run_id: int,
        observer: Callable[[dict[str, Any]], None] | None = None,
        every: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.queue = queue
        self.run_id = run_id
        self.observer = observer
        self.every = every
        self._clock = clock
        self._first: tuple[float, int] | None = None
        self._written = -float("inf")
        self._validation: float | None = None

    def phase(self, name: str, **fields: Any) -> None:
        """Record that the cycle entered phase ``name`` (with any progress fields)."""
        self._write({"phase": name, **fields})

    def __call__(self, update: dict[str, Any]) -> None:
        """A step update of ``run_training`` (``step``, ``steps``, ``loss``, maybe ``val_score``)."""
        now = self._clock()
        if self._first is None:
            self._first = (now, update["step"])  # the pace is measured from the first step seen
        validated = "val_score" in update
        if validated:
            self._validation = float(update["val_score"])
        if not validated and update["step"] != update["steps"] and now - self._written < self.every:
            return
        started, first_step = self._first
        done = update["step"] - first_step
        eta = (now - started) / done * (update["steps"] - update["step"]) if done > 0 else None
        self._written = now
        self._write({"phase": "training", "step": int(update["step"]), "steps": int(update["steps"]),
                     "loss": float(update["loss"]), "eta_s": None if eta is None else round(eta, 1),
                     "val_score": self._validation})  # fmt: skip

    def _write(self, record: dict[str, Any]) -> None:
        self.queue.record_progress(self.run_id, **record)
        if self.observer is not None:
            self.observer(record)


class RetrainCycle:
    """Runs retraining cycles (see the module docstring).

    Args:
        settings: Registry, data dir, policy, query strategy.
        catalogue: Classes.
        harvests: The harvest log (implicit labels).
        store: The artefact store holding the labels.
        queue: Training requests and runs.
        client: Label Studio (open tasks, posting predictions).
        images: Where task images come from.
        projects: Returns the projects the backend serves.
        base_config: Training config fine-tuning starts from (``FINE_TUNE`` overrides applied).
        trainer: ``run_training`` or the Modal equivalent.
        holdout: Keep held-out tasks for validation (:func:`held_out_tasks`); False trains on all.
        observer: Called with each progress record of a cycle (:class:`CycleProgress`).
    """

    def __init__(
        self,
        settings: CycleSettings,
        catalogue: Catalogue,
        harvests: HarvestLog,
        store: ArtefactStore,
        queue: TrainingQueue,
        client: LabelStudioClient,
        images: ImageSource,
        projects: Callable[[], list[int]],
        base_config: TrainConfig | None = None,
        trainer: Callable[..., Any] = run_training,
        holdout: bool = True,
        observer: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.catalogue = catalogue
        self.harvests = harvests
        self.store = store
        self.queue = queue
        self.client = client
        self.images = images
        self.projects = projects
        self.base_config = base_config or TrainConfig(threads=settings.threads).replace(**FINE_TUNE)
        self.trainer = trainer
        self.holdout = holdout
        self.observer = observer
        self.lease = WorkerLease(harvests.engine, name="training", ttl=900)

    def due(self) -> str | None:
        """Why a cycle should run now, or None (the policy of the settings)."""
        if self.settings.retrain_on_start_training and self.queue.requests("pending"):
            return "START_TRAINING"
        if self.settings.retrain_every > 0:
            since = self.queue.last_started() or 0.0
            new = [r for r in self.harvests.records(kind=LABEL) if (r.harvested_at or 0) > since]
            if len(new) >= self.settings.retrain_every:
                return f"{len(new)} new implicit labels"
        return None

    def run(self, reason: str) -> CycleResult:
        """One cycle (exclusive: returns status ``busy`` while another runs)."""
        if not self.lease.acquire():
            return CycleResult(None, "busy", reason="another training runs")
        stop = threading.Event()
        threading.Thread(target=self._heartbeat, args=(stop,), daemon=True).start()
        run_id = self.queue.start_run(reason)
        self.queue.take_requests(run_id)
        try:
            result = self._cycle(run_id, CycleProgress(self.queue, run_id, self.observer))
        except Exception as exc:  # a failed cycle is recorded; the worker carries on harvesting
            log.exception("training run %d failed", run_id)
            self.queue.finish_run(run_id, "failed", str(exc)[:255])
            return CycleResult(run_id, "failed", reason=f"{type(exc).__name__}: {exc}")
        finally:
            stop.set()
            self.lease.release()
        version = f"{self.settings.model_name} v{result.model_version}" if result.model_version else None
        self.queue.finish_run(run_id, result.status, version)
        log.info("training run %d: %s (%s)", run_id, result.status, result.reason)
        return result

    def _heartbeat(self, stop: threading.Event) -> None:
        while not stop.wait(60):
            self.lease.acquire()

    def _cycle(self, run_id: int, progress: CycleProgress) -> CycleResult:
        progress.phase("gathering implicit labels")
        train, extra = self.gather()
        if not train:
            return CycleResult(run_id, "no-labels", held_out=len(extra), reason="no implicit labels to train on")
        config = self.base_config
        progress.phase("validating the champion", steps=config.steps)
        samples, _, fingerprint = validation_set(
            self.catalogue, config.val_seed, config.val_sections, config.val_size, extra, config.validation_families()
        )
        registry = ModelRegistry.from_settings(self.settings)
        champion = self._champion(registry, samples, fingerprint)
        champion_path = registry.download_model(champion)
        champion_miou = float(registry.version(champion).tags["scraiber.val_miou"])
        progress.phase("training", step=0, steps=config.steps, champion_score=champion_miou)
        arch = load_fcn(champion_path).config.arch
        config = config.replace(
            arch=arch,
            freeze_norm=True,
            init_from=str(champion_path),
            checkpoint_dir=str(self.settings.data_dir / "checkpoints" / f"retrain-{run_id}"),
        )
        result = self.trainer(config, self.settings, catalogue=self.catalogue, harvested=train,
                              validation_extra=extra, register=True, progress=False, on_progress=progress)  # fmt: skip
        status = "promoted" if result.promoted else "not-promoted"
        posted = 0
        if result.promoted:
            progress.phase("re-predicting open tasks", eta_s=None)
            posted = self.repredict(result.model_version, Path(result.model_path))
        progress.phase(status, eta_s=None, val_score=result.val_miou)
        return CycleResult(run_id, status, len(train), len(extra), result.model_version, result.val_miou,
                           champion_miou, result.promotion_reason or "", posted)  # fmt: skip

    def gather(self) -> tuple[list[HarvestedSample], list[ValidationSample]]:
        """Current implicit labels with their images: (training samples, held-out validation samples)."""
        train: list[HarvestedSample] = []
        extra: list[ValidationSample] = []
        history = self.harvests.records(kind=LABEL, include_retracted=True, include_superseded=True)
        held = held_out_tasks(history) if self.holdout else set()
        judges = champion_tasks(history) if self.holdout else set()
        for record in self.harvests.records(kind=LABEL):
            assert record.label_key is not None  # the harvester stores every LABEL record with its label_key
            arrays = self.store.get_arrays(record.label_key)
            provenance = self.store.get_json(record.label_key.removesuffix(".npz") + ".json")
            image = self.images.fetch(provenance["image"]).pixels
            label, confidence = arrays["label"], arrays["confidence"].astype(np.float32)
            if image.shape != label.shape:
                log.warning("annotation %s: image %s and label %s differ; skipped", record.annotation_id,
                            image.shape, label.shape)  # fmt: skip
                continue
            if record.task_id in judges:
                extra.append(ValidationSample(f"champion-{record.annotation_id}-{record.updated_at}", image, label,
                                              champion_only=True))  # fmt: skip
            elif record.task_id in held:
                extra.append(ValidationSample(f"expert-{record.annotation_id}-{record.updated_at}", image, label))
            else:
                train.append(HarvestedSample(image, label, confidence))
        return train, extra

    def _champion(self, registry: ModelRegistry, samples: list[ValidationSample], fingerprint: str) -> int:
        """The champion's version, evaluated on this validation set (the shipped model registered first if none)."""
        champion = registry.champion()
        if champion is None:
            version = self._register_shipped(registry)
        else:
            version = champion.version
            if champion.tags.get("scraiber.validation_set") == fingerprint:
                return version
        path = registry.download_model(version)
        loaded = load_fcn(path)
        scores = evaluate(loaded.network(), loaded.config, samples, torch.device("cpu"))
        registry.record_validation(version, scores.score, fingerprint, scores.synthetic_miou, scores.per_tile)
        if champion is None:
            registry.promote_if_not_worse(version, scores.score, fingerprint, scores.synthetic_miou)
        return version

    def _register_shipped(self, registry: ModelRegistry) -> int:
        path = shipped_model_path(self.catalogue)
        if path is None:
            raise ValueError("no champion and no shipped model for these classes: train one with `scraiber train`")
        loaded = load_fcn(path)
        with start_run(self.settings, run_name="shipped-baseline", tags={"scraiber.kind": "shipped"}) as run:
            run.log_model(loaded.state_dict, loaded.config.to_dict())
            run_id = run.run_id
        return registry.register(run_id)

    def repredict(self, version: int, model_path: Path) -> int:
        """Predict the open tasks of every served project with the new model; post them. Returns the count."""
        from active_learning.strategies import create_scorer

        segmenter = FCNSegmenter(self.catalogue, model_path, threads=self.settings.threads)
        predictor = Predictor(
            self.catalogue, lambda: segmenter, self.images, create_scorer(self.settings.query_strategy)
        )
        return sum(repredict_open_tasks(self.client, predictor, project) for project in self.projects())


class RetrainScheduler:
    """Checks the policy every ``interval`` seconds and runs due cycles, until stopped."""

    def __init__(self, cycle: RetrainCycle, interval: float = 15.0) -> None:
        self.cycle = cycle
        self.interval = interval

    def run(self, stop: threading.Event) -> None:
        """Loop in the calling thread until ``stop`` is set."""
        while not stop.wait(self.interval):
            try:
                reason = self.cycle.due()
                if reason:
                    self.cycle.run(reason)
            except Exception:  # keep the scheduler alive; the failure is in the log and the runs table
                log.exception("retraining check failed")
