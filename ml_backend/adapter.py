"""The label-studio-ml model class: a thin adapter over :class:`BackendServices`.

label-studio-ml builds one model object per request; all state (weights, caches,
the event log) lives in the services object it receives, built once per process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from label_studio_ml.model import LabelStudioMLBase

from ml_backend.predictor import Predictor


class EventSink(Protocol):
    """Durable store for webhook events (implemented by ``active_learning.event_log``)."""

    def record(self, payload: dict[str, Any]) -> bool:
        """Store one event before the request is answered; False if it was a duplicate delivery."""


class Refiner(Protocol):
    """Interactive refinement from the expert's clicks/strokes (``context`` of /predict)."""

    def refine(self, task: dict[str, Any], context: dict[str, Any], label_config: str) -> list[dict[str, Any]]:
        """Predictions for one task refined with the expert's context."""


@dataclass
class BackendServices:
    """Everything the HTTP layer needs, built once per process at the entry point.

    Attributes:
        predictor: Pre-annotations for tasks.
        events: Where webhook events are stored durably.
        status: Returns the counters shown at ``GET /status``.
        refiner: Interactive refinement, if enabled.
        connected: Called with the id of each project that calls ``/setup`` or ``/predict``
            (Label Studio names the project): the projects this backend serves.
    """

    predictor: Predictor
    events: EventSink
    status: Callable[[], dict[str, Any]]
    refiner: Refiner | None = None
    connected: Callable[[int], None] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ScraiberModel(LabelStudioMLBase):
    """label-studio-ml model: forwards ``predict`` to the plain-Python services."""

    def __init__(self, label_config: str | None = None, services: BackendServices | None = None, **kwargs: Any):
        super().__init__(label_config=label_config, **kwargs)
        if services is None:
            raise ValueError("ScraiberModel needs the backend services (built by the entry point)")
        self.services = services

    def predict(
        self,
        tasks: list[dict[str, Any]],
        context: dict[str, Any] | None = None,
        project: int | None = None,
        **kwargs: Any,
    ):
        """Predictions for tasks of ``project``; with an expert's ``context``, an interactive refinement."""
        if context and self.services.refiner is not None and len(tasks) == 1:
            return self.services.refiner.refine(tasks[0], context, self.label_config)
        return self.services.predictor.predict(tasks, self.label_config, project)
