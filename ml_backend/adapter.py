"""What the HTTP layer calls: plain-Python services behind small protocols.

The web app (:mod:`ml_backend.app`) translates Label Studio's HTTP shapes into calls on
:class:`BackendServices`, built once per process at the entry point; all state (weights,
caches, the event log) lives there, none in the app.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ml_backend.predictor import Predictor


class EventSink(Protocol):
    """Durable store for webhook events (implemented by ``active_learning.event_log``)."""

    def record(self, payload: dict[str, Any]) -> bool:
        """Store one event before the request is answered; False if it was a duplicate delivery.

        Raises:
            ValueError: the payload cannot be used (answered with HTTP 400 and the message).
        """


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
            (Label Studio names the project) and this backend's URL as Label Studio reached
            it (from the request's ``Host``; None if unusable): the projects this backend serves.
        health: Returns what ``GET /health`` adds to the model version (``status`` UP or
            DEGRADED, the harvest worker's state, the queue's age); None: always UP.
    """

    predictor: Predictor
    events: EventSink
    status: Callable[[], dict[str, Any]]
    refiner: Refiner | None = None
    connected: Callable[[int, str | None], None] | None = None
    health: Callable[[], dict[str, Any]] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
