"""Each process's services built from the settings: the harvest worker, its retraining cycle and fast learner."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from active_learning.event_log import EventLog
from active_learning.fast_learning import FastLearnerUpdater, FastLearning, ProjectLearners
from active_learning.harvest import Harvester
from active_learning.harvest_log import HarvestLog
from active_learning.pseudonyms import resolve_key
from active_learning.reconcile import Reconciler
from active_learning.registry import ModelRegistry
from active_learning.retrain import RetrainCycle
from active_learning.served_model import ServedModel
from active_learning.store import open_store
from active_learning.strategies import create_scorer
from active_learning.training import TrainConfig, run_training
from active_learning.training_queue import TrainingQueue
from active_learning.worker import Worker, WorkerLease
from label_config import load_catalogue
from ml_backend.image_source import image_source_from
from ml_backend.label_studio import LabelStudioClient
from ml_backend.predictor import Predictor
from scraiber.settings import Settings


def basic_auth(settings: Settings) -> tuple[str, str] | None:
    """The (user, password) the backend requires, or None in the local demo.

    Raises:
        ValueError: if basic auth is not configured outside the local demo.
    """
    if settings.basic_auth_user is not None and settings.basic_auth_pass is not None:
        return settings.basic_auth_user, settings.basic_auth_pass.get_secret_value()
    if settings.auth_required:
        raise ValueError(
            "the backend needs basic auth outside the local demo: set SCRAIBER_BASIC_AUTH_USER and "
            "SCRAIBER_BASIC_AUTH_PASS (and the same in Label Studio's model settings), or SCRAIBER_DEMO=true"
        )
    return None


def build_worker(settings: Any) -> Worker:
    """The worker for ``settings`` (a :class:`scraiber.settings.Settings`).

    Raises:
        ValueError: if no Label Studio API key is configured (nothing could be harvested).
    """

    if settings.label_studio_api_key is None:
        raise ValueError("the harvest worker needs LABEL_STUDIO_API_KEY (a user who sees every annotation)")
    catalogue = load_catalogue(settings.catalogue)
    events = EventLog.from_url(settings.resolved_event_log_url)
    harvests = HarvestLog(events.engine)
    client = LabelStudioClient(settings.label_studio_url, settings.label_studio_api_key.get_secret_value(), 60)
    store = open_store(settings.resolved_artefact_uri, settings, create_bucket=True)
    secret = settings.pseudonym_key.get_secret_value() if settings.pseudonym_key is not None else None
    harvester = Harvester(client, store, harvests, catalogue, resolve_key(secret, settings.data_dir))
    return Worker(
        events,
        harvester,
        Reconciler(client, harvester, harvests, webhook_auth=basic_auth(settings)),
        TrainingQueue(events.engine),
        WorkerLease(events.engine),
        settings.reconcile_seconds,
        probe=client.whoami,
    )


def build_cycle(
    settings: Settings, worker: Any, observer: Callable[[dict[str, Any]], None] | None = None
) -> RetrainCycle:
    """The retraining cycle of a harvest worker (:func:`active_learning.worker.build_worker`)."""

    base = TrainConfig.from_file(settings.retrain_config) if settings.retrain_config else None
    harvester = worker.harvester
    trainer: Callable[..., Any] = run_training
    if settings.train_on == "modal":
        from scraiber.modal_app import modal_trainer  # declares the Modal app: only when it trains there

        trainer = functools.partial(modal_trainer, store=harvester.store)
    if settings.label_studio_api_key is None:
        raise ValueError("retraining posts predictions to Label Studio: set LABEL_STUDIO_API_KEY")
    client = LabelStudioClient(settings.label_studio_url, settings.label_studio_api_key.get_secret_value(), 120)
    return RetrainCycle(
        settings, harvester.catalogue, harvester.harvests, harvester.store, worker.training, client,
        image_source_from(settings), worker.reconciler.served_projects, base, trainer, observer=observer,
    )  # fmt: skip


def build_fast_learning(settings: Any, worker: Any) -> FastLearning:
    """The fast learning of a harvest worker (:func:`active_learning.worker.build_worker`)."""

    harvester = worker.harvester
    catalogue = harvester.catalogue
    served = ServedModel(catalogue, registry=lambda: ModelRegistry.from_settings(settings), model_name=settings.model_name,
                         poll_seconds=settings.model_poll_seconds, fcn_options={"threads": settings.threads})  # fmt: skip
    images = image_source_from(settings)
    updater, learners = None, None
    if settings.fast_learner:
        updater = FastLearnerUpdater(harvester.harvests, harvester.store, images, served, len(catalogue))
        learners = ProjectLearners(harvester.store, refresh_seconds=0.0)
    predictor = Predictor(catalogue, served, images, create_scorer(settings.query_strategy), for_project=learners)
    return FastLearning(updater, harvester.client, predictor, worker.reconciler.served_projects)
