"""Composition root of the backend: settings in, WSGI app and HTTP server out."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from flask import Flask

from active_learning.event_log import DONE, FAILED, IGNORED, PENDING, PROCESSING, EventLog
from active_learning.fast_learning import ProjectLearners
from active_learning.harvest_log import HarvestLog
from active_learning.interaction_log import InteractionLog
from active_learning.pseudonyms import resolve_key
from active_learning.registry import ModelRegistry
from active_learning.served_model import ServedModel
from active_learning.store import open_store
from active_learning.strategies import create_scorer
from active_learning.training_queue import TrainingQueue
from active_learning.worker import worker_state
from label_config import Catalogue, load_catalogue
from ml_backend.adapter import BackendServices
from ml_backend.app import create_app
from ml_backend.fcn.segmenter import use_torch_threads
from ml_backend.image_source import image_source_from
from ml_backend.memory_budget import (
    FAST_LEARNER_BYTES_PER_PIXEL,
    SEGMENTER_BYTES_PER_PIXEL,
    budget_from_mb,
)
from ml_backend.predictor import Predictor
from ml_backend.refine import InteractiveRefiner
from ml_backend.segmenters import Segmenter
from scraiber.settings import Settings
from scraiber.wiring import basic_auth

log = logging.getLogger(__name__)


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
    ``training_runs`` counts the runs the retraining cycle recorded in ``training``, and
    ``training`` shows the latest (phase, step, ETA, validation: :meth:`TrainingQueue.latest`).
    ``registry_version`` is the registry version served (None: the shipped model or clustering).
    """

    def status() -> dict[str, Any]:
        counts = events.counts()
        return {
            "model_version": provider().version,
            "registry_version": getattr(provider, "champion", None),
            "events_received": sum(counts.values()),
            "events_processed": counts[DONE] + counts[IGNORED],
            "events_failed": counts[FAILED],
            "queue_depth": counts[PENDING] + counts[PROCESSING],
            "implicit_labels": harvests.count_labels() if harvests is not None else 0,
            "training_runs": training.count_runs() if training is not None else 0,
            "training": training.latest() if training is not None else None,
        }

    return status


def build_services(settings: Settings, catalogue: Catalogue | None = None) -> BackendServices:
    """Everything the web app needs, built from the settings."""
    use_torch_threads(settings.threads)
    catalogue = catalogue or load_catalogue(settings.catalogue)
    provider = ServedModel(
        catalogue,
        registry=lambda: ModelRegistry.from_settings(settings),
        model_name=settings.model_name,
        poll_seconds=settings.model_poll_seconds,
        fcn_options={"threads": settings.threads},
    )
    events = EventLog.from_url(settings.resolved_event_log_url)
    cost = FAST_LEARNER_BYTES_PER_PIXEL if settings.fast_learner else SEGMENTER_BYTES_PER_PIXEL
    images = image_source_from(settings, budget_from_mb(settings.predict_memory_mb, settings.web_workers, cost))
    learners = ProjectLearners(open_store(settings.resolved_artefact_uri, settings)) if settings.fast_learner else None
    predictor = Predictor(catalogue, provider, images, create_scorer(settings.query_strategy), for_project=learners)
    secret = settings.pseudonym_key.get_secret_value() if settings.pseudonym_key else None
    interactions = InteractionLog(events.engine, resolve_key(secret, settings.data_dir))
    refiner = InteractiveRefiner(catalogue, provider, images, record=interactions.record)
    harvests = HarvestLog(events.engine)
    status = status_counters(events, provider, harvests, TrainingQueue(events.engine))
    health = health_report(events, settings.label_studio_api_key is not None, settings.worker_stuck_seconds)
    return BackendServices(predictor=predictor, events=events, status=status, refiner=refiner,
                           connected=project_noter(harvests), health=health)  # fmt: skip


def project_noter(harvests: HarvestLog, remember_seconds: float = 60.0) -> Callable[[int, str | None], None]:
    """``BackendServices.connected``: notes a project (and the URL it called) in ``known_projects``.

    Each (project, URL) is written at most once per ``remember_seconds`` per process: often
    enough that a project the worker forgot (disconnected) and Label Studio connected again
    is served again within a minute of its next ``/setup`` or ``/predict``.
    """
    seen: dict[tuple[int, str | None], float] = {}

    def note(project_id: int, backend_url: str | None = None) -> None:
        key = (project_id, backend_url)
        if time.monotonic() - seen.get(key, -remember_seconds) >= remember_seconds:
            harvests.note_project(project_id, "setup", backend_url)
            seen[key] = time.monotonic()

    return note


def health_report(events: EventLog, worker_expected: bool, stuck_after: float) -> Callable[[], dict[str, Any]]:
    """What ``GET /health`` reports beside the model version (read at most once a second).

    ``status`` is DEGRADED when the harvest worker is expected but not up (dead, stuck, not
    running) or the oldest waiting event is older than ``stuck_after``; ``worker.state`` is
    ``disabled`` without a Label Studio API key (events then wait for a worker by design).
    """
    cache: dict[str, Any] = {"at": -1.0, "body": {}}
    lock = threading.Lock()

    def report() -> dict[str, Any]:
        with lock:
            if time.monotonic() - cache["at"] < 1.0:
                return cache["body"]
            worker = worker_state(events.engine, stuck_after) if worker_expected else {"state": "disabled"}
            oldest, counts = events.oldest_waiting(), events.counts()
            age = round(max(0.0, time.time() - oldest), 1) if oldest is not None else None
            degraded = (worker_expected and worker["state"] != "up") or (age is not None and age > stuck_after)
            body = {"status": "DEGRADED" if degraded else "UP", "worker": worker,
                    "queue": {"waiting": counts[PENDING] + counts[PROCESSING], "oldest_age_s": age}}  # fmt: skip
            cache.update(at=time.monotonic(), body=body)
            return body

    return report


def build_app(settings: Settings) -> Flask:
    """The backend's WSGI app for ``settings``.

    Raises:
        ValueError: if basic auth is missing outside the local demo.
    """
    return create_app(build_services(settings), basic_auth(settings), settings.max_request_bytes)


def serve(settings: Settings) -> None:
    """Run the backend with gunicorn (``settings.web_workers`` processes) until stopped.

    The web workers are :class:`~ml_backend.http_worker.HeaderGatedWorker` (threads serve
    only complete requests; slow or idle clients wait in the event loop). gunicorn's control
    socket is off (its default path is shared by every gunicorn of the user). The harvest
    worker runs beside them, forked from a fork server that imported its modules once, kept
    running by a :class:`~active_learning.worker.WorkerSupervisor` thread (restarted at once,
    then with back-off, when it exits or is stuck) and stopped with the backend; without a
    Label Studio API key it is not started (events are stored and wait for a worker).
    """
    from gunicorn.app.base import BaseApplication
    from gunicorn.arbiter import Arbiter

    from active_learning.db import make_engine
    from active_learning.worker import stuck_holder
    from ml_backend.http_worker import gated_worker_class
    from scraiber.worker_process import WorkerSupervisor, prepare_database, start_worker_process

    basic_auth(settings)  # fail fast, before any worker starts
    prepare_database(settings.resolved_event_log_url)

    class _Gunicorn(BaseApplication):
        def load_config(self) -> None:
            self.cfg.set("bind", f"{settings.host}:{settings.port}")
            self.cfg.set("workers", settings.web_workers)
            self.cfg.set("worker_class", gated_worker_class(settings.header_timeout))
            self.cfg.set("threads", 8)
            self.cfg.set("worker_connections", 256)
            self.cfg.set("timeout", 600)
            self.cfg.set("limit_request_line", 8190)
            self.cfg.set("control_socket_disable", True)
            self.cfg.set("accesslog", "-")

        def load(self) -> Flask:
            return build_app(settings)

        def run(self) -> None:
            try:
                _Arbiter(self).run()
            except RuntimeError as exc:  # as gunicorn's own run()
                print(f"\nError: {exc}\n", file=sys.stderr)
                sys.exit(1)

    class _Arbiter(Arbiter):
        def stop(self, graceful: bool = True) -> None:
            stop.set()  # the backend is stopping: the supervisor must not restart the harvest worker
            super().stop(graceful)

    stop = threading.Event()
    if settings.label_studio_api_key is None:
        log.warning("no LABEL_STUDIO_API_KEY: the harvest worker is not started; webhook events wait in the log")
        _Gunicorn().run()
        return
    engine = make_engine(settings.resolved_event_log_url)
    supervisor = WorkerSupervisor(
        lambda: start_worker_process(settings), lambda pid: stuck_holder(engine, pid, settings.worker_stuck_seconds)
    )
    watcher = threading.Thread(target=supervisor.run, args=(stop,), name="harvest-supervisor", daemon=True)
    watcher.start()
    try:
        _Gunicorn().run()
    finally:
        stop.set()
        watcher.join(timeout=20)
