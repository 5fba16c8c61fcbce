"""Composition root of the backend: settings in, WSGI app and HTTP server out."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask

from active_learning.event_log import DONE, FAILED, IGNORED, PENDING, PROCESSING, EventLog
from active_learning.fast_learning import ProjectLearners
from active_learning.harvest_log import HarvestLog
from active_learning.interaction_log import InteractionLog
from active_learning.pseudonyms import resolve_key
from active_learning.registry import ModelRegistry
from active_learning.store import open_store
from active_learning.served_model import ServedModel
from active_learning.strategies import create_scorer
from active_learning.training_queue import TrainingQueue
from label_config import Catalogue, load_catalogue
from ml_backend.adapter import BackendServices
from ml_backend.app import create_app
from ml_backend.image_source import ImageSource
from ml_backend.label_studio import LabelStudioClient
from ml_backend.predictor import Predictor
from ml_backend.refine import InteractiveRefiner
from ml_backend.segmenters import Segmenter
from ml_backend.settings import Settings

log = logging.getLogger(__name__)


def image_source(settings: Settings) -> ImageSource:
    """Where task images may come from, as configured."""
    client = None
    if settings.label_studio_api_key is not None:
        client = LabelStudioClient(settings.label_studio_url, settings.label_studio_api_key.get_secret_value())
    return ImageSource(
        label_studio=client,
        s3_client=(lambda: s3_client(settings)) if settings.allowed_buckets else None,
        allowed_buckets=frozenset(settings.allowed_buckets),
        allowed_local_roots=tuple(settings.allowed_local_roots),
        local_files_root=settings.local_files_document_root,
        max_pixels=settings.max_image_pixels,
    )


def s3_client(settings: Settings) -> Any:
    """A boto3 S3 client with the configured endpoint and credentials."""
    import boto3

    secret = settings.aws_secret_access_key.get_secret_value() if settings.aws_secret_access_key else None
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        aws_access_key_id=settings.aws_access_key_id,
        aws_secret_access_key=secret,
        region_name=settings.aws_region,
    )


class SegmenterProvider:
    """The segmenter to serve now, built lazily once per process."""

    def __init__(self, factory: Callable[[], Segmenter]) -> None:
        self._factory = factory
        self._segmenter: Segmenter | None = None
        self._lock = threading.Lock()

    def __call__(self) -> Segmenter:
        with self._lock:
            if self._segmenter is None:
                self._segmenter = self._factory()
            return self._segmenter


def status_counters(
    events: EventLog,
    provider: Callable[[], Segmenter],
    harvests: HarvestLog | None = None,
    training: TrainingQueue | None = None,
) -> Callable[[], dict[str, Any]]:
    """The ``GET /status`` view's data, read from the durable stores.

    ``implicit_labels`` counts active (current, not retracted) labels in ``harvests``;
    ``training_runs`` counts the runs the retraining cycle recorded in ``training``.
    """

    def status() -> dict[str, Any]:
        counts = events.counts()
        return {
            "model_version": provider().version,
            "events_received": sum(counts.values()),
            "events_processed": counts[DONE] + counts[IGNORED],
            "events_failed": counts[FAILED],
            "queue_depth": counts[PENDING] + counts[PROCESSING],
            "implicit_labels": harvests.count_labels() if harvests is not None else 0,
            "training_runs": training.count_runs() if training is not None else 0,
        }

    return status


def build_services(settings: Settings, catalogue: Catalogue | None = None) -> BackendServices:
    """Everything the web app needs, built from the settings."""
    catalogue = catalogue or load_catalogue(settings.catalogue)
    provider = ServedModel(
        catalogue,
        registry=lambda: ModelRegistry.from_settings(settings),
        model_name=settings.model_name,
        poll_seconds=settings.model_poll_seconds,
        fcn_options={"threads": settings.threads},
    )
    events = EventLog.from_url(settings.resolved_event_log_url)
    images = image_source(settings)
    learners = ProjectLearners(open_store(settings.resolved_artefact_uri, settings)) if settings.fast_learner else None
    predictor = Predictor(catalogue, provider, images, create_scorer(settings.query_strategy), for_project=learners)
    secret = settings.pseudonym_key.get_secret_value() if settings.pseudonym_key else None
    interactions = InteractionLog(events.engine, resolve_key(secret, settings.data_dir))
    refiner = InteractiveRefiner(catalogue, provider, images, record=interactions.record)
    harvests = HarvestLog(events.engine)
    status = status_counters(events, provider, harvests, TrainingQueue(events.engine))
    return BackendServices(predictor=predictor, events=events, status=status, refiner=refiner,
                           connected=project_noter(harvests))  # fmt: skip


def project_noter(harvests: HarvestLog) -> Callable[[int], None]:
    """``BackendServices.connected``: notes each project once per process in ``known_projects``."""
    seen: set[int] = set()

    def note(project_id: int) -> None:
        if project_id not in seen:
            harvests.note_project(project_id, "setup")
            seen.add(project_id)

    return note


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


def build_app(settings: Settings) -> Flask:
    """The backend's WSGI app for ``settings``.

    Raises:
        ValueError: if basic auth is missing outside the local demo.
    """
    auth = basic_auth(settings)
    model_dir = Path(settings.data_dir, "backend")
    return create_app(build_services(settings), auth, settings.max_request_bytes, str(model_dir))


def serve(settings: Settings) -> None:
    """Run the backend with gunicorn (``settings.web_workers`` processes) until stopped.

    The harvest worker (``scraiber worker``) runs beside it as a child process and is
    stopped with it; without a Label Studio API key it is not started (events are
    stored and wait for a worker).
    """
    from gunicorn.app.base import BaseApplication

    from active_learning.worker import prepare_database, start_worker_process, stop_worker_process

    basic_auth(settings)  # fail fast, before any worker starts
    prepare_database(settings.resolved_event_log_url)

    class _Gunicorn(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{settings.host}:{settings.port}")
            self.cfg.set("workers", settings.web_workers)
            self.cfg.set("threads", 4)
            self.cfg.set("timeout", 600)
            self.cfg.set("limit_request_line", 8190)
            self.cfg.set("accesslog", "-")

        def load(self) -> Flask:
            return build_app(settings)

    if settings.label_studio_api_key is None:
        log.warning("no LABEL_STUDIO_API_KEY: the harvest worker is not started; webhook events wait in the log")
        _Gunicorn().run()
        return
    worker = start_worker_process()
    try:
        _Gunicorn().run()
    finally:
        stop_worker_process(worker)
