"""The harvest worker: works through the event log, and reconciles with Label Studio.

``scraiber worker`` (started by ``scraiber backend`` as a child process beside gunicorn)
claims stored webhook events one at a time and dispatches them by action:

* ANNOTATION_CREATED / ANNOTATION_UPDATED: harvest the annotation's current version;
* ANNOTATIONS_DELETED / ANNOTATION_DELETED: retract the labels of annotations Label Studio
  confirms gone (a forged or early delete event retracts nothing);
* START_TRAINING: record a training request for the retraining cycle (nothing trains here).

A handled event is marked done; a failed one goes back to pending and is retried
(``EventLog.max_attempts`` times, then parked as failed). When Label Studio or the
artefact store is unreachable the worker backs off (1 s doubling to 60 s) and claims
nothing until Label Studio answers again, so events stay pending through an outage.
Work never happens inside an HTTP request: the web app only stores events.

At start and every ``SCRAIBER_RECONCILE_SECONDS`` the worker runs the
:class:`~active_learning.reconcile.Reconciler`, which catches annotations whose webhook
never arrived (Label Studio does not retry webhooks).

One worker per event log: a lease row (``worker_lease``, renewed every loop, 30 s
time-to-live, taken over at once from a dead process on the same host) keeps a second
worker on standby. Events a dead worker had claimed are claimed again as soon as a new
worker holds the lease.

The lease's heartbeat also says whether the worker is alive (:func:`worker_state`, shown
by the backend's ``/health``), and :class:`WorkerSupervisor` (run by ``scraiber backend``)
restarts a worker that exited or is stuck, with back-off.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import psutil
from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from active_learning.event_log import Event, EventLog
from active_learning.harvest import Harvester
from active_learning.reconcile import Reconciler
from active_learning.schema import worker_lease
from active_learning.store import ArtefactStoreUnavailableError
from active_learning.training_queue import TrainingQueue
from ml_backend.label_studio import LabelStudioError

log = logging.getLogger(__name__)


class WorkerLease:
    """An exclusive, expiring lease in the database: who may work through the event log.

    Args:
        engine: The event-log database, upgraded (:func:`active_learning.db.upgrade_database`).
        name: Lease name.
        ttl: Seconds without renewal after which another worker may take over.
    """

    def __init__(self, engine: Engine, name: str = "harvest", ttl: float = 30.0) -> None:
        self.engine = engine
        self.name = name
        self.ttl = ttl
        self.host = socket.gethostname()
        self.holder = f"{self.host}:{os.getpid()}:{secrets.token_hex(4)}"

    def acquire(self) -> bool:
        """Take or renew the lease; False while another live worker holds it."""
        now = time.time()
        mine = {"holder": self.holder, "host": self.host, "pid": os.getpid(), "heartbeat_at": now}
        try:
            with self.engine.begin() as connection:
                row = connection.execute(select(worker_lease).where(worker_lease.c.name == self.name)).first()
                if row is None:
                    connection.execute(insert(worker_lease).values(name=self.name, **mine))
                    return True
                if row.holder != self.holder and row.heartbeat_at >= now - self.ttl and not self._dead(row):
                    return False
                taken = connection.execute(
                    update(worker_lease)
                    .where(worker_lease.c.name == self.name, worker_lease.c.holder == row.holder)
                    .values(**mine)
                )
                return taken.rowcount == 1
        except IntegrityError:
            return False  # another worker inserted the lease first

    def release(self) -> None:
        """Give the lease up (if held)."""
        with self.engine.begin() as connection:
            connection.execute(
                delete(worker_lease).where(worker_lease.c.name == self.name, worker_lease.c.holder == self.holder)
            )

    def _dead(self, row: Any) -> bool:
        return row.host == self.host and row.pid != os.getpid() and not psutil.pid_exists(row.pid)


def is_transient(exc: BaseException) -> bool:
    """True for failures that say "try later" (outages, overload, auth being fixed), not "this event is bad"."""
    if isinstance(exc, LabelStudioError):
        return exc.status_code is None or exc.status_code in (401, 403, 429) or exc.status_code >= 500
    return isinstance(exc, (ArtefactStoreUnavailableError, OperationalError, ConnectionError, TimeoutError))


class Worker:
    """Claims events from the log and handles them; reconciles periodically.

    Args:
        events: The event log.
        harvester: Harvests and retracts annotations.
        reconciler: Finds what the webhooks missed.
        training: Where training requests are recorded.
        lease: The worker lease.
        reconcile_seconds: Seconds between reconciliation rounds (the first runs at start).
        probe: Raises while Label Studio is unreachable (checked before claiming after a
            transient failure).
        poll_seconds: Sleep when there is nothing to do.
        stale_after: Seconds after which an event claimed by another lease holder is taken back.
        max_backoff: Longest pause after repeated transient failures.
        on_handled: Called after each successfully handled event (e.g. wakes the fast learner).
    """

    def __init__(
        self,
        events: EventLog,
        harvester: Harvester,
        reconciler: Reconciler,
        training: TrainingQueue,
        lease: WorkerLease,
        reconcile_seconds: float,
        probe: Callable[[], Any],
        poll_seconds: float = 0.5,
        stale_after: float = 900.0,
        max_backoff: float = 60.0,
        on_handled: Callable[[], None] | None = None,
    ) -> None:
        self.events = events
        self.harvester = harvester
        self.reconciler = reconciler
        self.training = training
        self.lease = lease
        self.reconcile_seconds = reconcile_seconds
        self.probe = probe
        self.poll_seconds = poll_seconds
        self.stale_after = stale_after
        self.max_backoff = max_backoff
        self.on_handled = on_handled
        self._failures = 0
        self._paused_until = 0.0
        self._acquired_at = time.time()

    # -- the loop ------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Work until ``stop`` is set: hold the lease, reconcile on schedule, handle events."""
        while not stop.is_set():
            if not self.lease.acquire():
                log.info("another worker holds the event log's lease; standing by")
                stop.wait(self.lease.ttl / 3)
                continue
            self._acquired_at = time.time()
            log.info("harvest worker started (reconciling every %.0f s)", self.reconcile_seconds)
            try:
                self._work(stop)
            finally:
                self.lease.release()

    def _work(self, stop: threading.Event) -> None:
        next_reconcile = time.monotonic()
        while not stop.is_set():
            try:
                if time.monotonic() >= next_reconcile and self._ready():
                    next_reconcile = time.monotonic() + (self.reconcile_seconds if self.reconcile() else self._delay())
                if not self.lease.acquire():
                    log.warning("lost the event log's lease to another worker")
                    return
                busy = self.step()
            except OperationalError as exc:  # the database itself is locked or unreachable: wait, retry
                self._failed(exc, "event log database")
                busy = False
            if not busy:
                stop.wait(self.poll_seconds)

    def step(self) -> bool:
        """Claim and handle one event; False if there was none or the worker is backing off."""
        if not self._ready():
            return False
        stale_after = min(self.stale_after, max(0.0, time.time() - self._acquired_at))
        event = self.events.claim(stale_after=stale_after)
        if event is None:
            return False
        self.handle(event)
        return True

    def drain(self, timeout: float = 60.0) -> int:
        """Handle events until none is pending or ``timeout`` passes; returns how many (for tests)."""
        deadline = time.monotonic() + timeout
        handled = 0
        while time.monotonic() < deadline:
            if self.step():
                handled += 1
            elif self.events.counts()["pending"] == 0:
                break
            else:
                time.sleep(min(self.poll_seconds, max(0.0, self._paused_until - time.monotonic())))
        return handled

    def reconcile(self) -> bool:
        """One reconciliation round; False (and back-off) if Label Studio or the store failed."""
        try:
            self.reconciler.run(progress=self.lease.acquire)  # renews the heartbeat between projects
        except Exception as exc:  # noqa: BLE001 - the loop must survive any failure; it is logged and retried
            self._failed(exc, "reconciliation")
            return False
        if self.on_handled is not None:
            self.on_handled()
        return True

    def handle(self, event: Event) -> None:
        """Dispatch one claimed event and record the outcome in the log."""
        try:
            self.dispatch(event)
        except Exception as exc:  # noqa: BLE001 - every failure is recorded on the event, none stops the worker
            self.events.fail(event, f"{type(exc).__name__}: {exc}")
            self._failed(exc, f"event {event.id} ({event.action}, attempt {event.attempts})")
        else:
            self.events.complete(event.id)
            self._failures = 0
            if self.on_handled is not None:
                self.on_handled()

    def dispatch(self, event: Event) -> None:
        """Do what an event asks (see the module docstring).

        Raises:
            ValueError: the payload lacks what its action needs.
        """
        payload = event.payload
        if event.action in ("ANNOTATION_CREATED", "ANNOTATION_UPDATED"):
            self.harvester.harvest(_id(payload, "annotation"))
        elif event.action == "ANNOTATIONS_DELETED":
            items = payload.get("annotations")
            if not isinstance(items, list):
                raise ValueError("ANNOTATIONS_DELETED payload has no 'annotations' list")
            for item in items:
                self.harvester.retract_if_gone(_id({"annotation": item}, "annotation"))
        elif event.action == "ANNOTATION_DELETED":
            self.harvester.retract_if_gone(_id(payload, "annotation"))
        elif event.action == "START_TRAINING":
            project = payload.get("project")
            project_id = project.get("id") if isinstance(project, dict) else project
            self.training.request("START_TRAINING", int(project_id) if project_id is not None else None, event.id)
        else:
            raise ValueError(f"no handler for action {event.action!r}")

    # -- back-off ------------------------------------------------------------------------

    def _ready(self) -> bool:
        if time.monotonic() < self._paused_until:
            return False
        if self._failures:
            try:
                self.probe()
            except Exception as exc:  # noqa: BLE001 - any probe failure means "not yet"
                self._failed(exc, "Label Studio probe")
                return False
        return True

    def _delay(self) -> float:
        return min(self.max_backoff, 2.0 ** max(0, self._failures - 1))

    def _failed(self, exc: BaseException, what: str) -> None:
        if is_transient(exc):
            self._failures += 1
            self._paused_until = time.monotonic() + self._delay()
            log.warning("%s failed (%s); pausing %.0f s", what, exc, self._delay())
        else:
            log.error("%s failed: %s: %s", what, type(exc).__name__, exc)


def _id(payload: dict[str, Any], key: str) -> int:
    item = payload.get(key)
    value = item.get("id") if isinstance(item, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).isdigit():
        raise ValueError(f"payload has no numeric {key}.id")
    return int(value)


UP, STUCK, DEAD, DOWN = "up", "stuck", "dead", "down"


def worker_state(engine: Engine, stuck_after: float, name: str = "harvest", ttl: float = 30.0) -> dict[str, Any]:
    """The harvest worker's state from its lease: ``state`` and ``heartbeat_age_s``.

    ``up``: the lease is renewed; ``stuck``: its live holder has not renewed it for
    ``stuck_after`` seconds; ``dead``: its holder's process is gone (same host) or the lease
    expired (another host); ``down``: nobody holds it (never started, or stopped).
    """
    with engine.connect() as connection:
        row = connection.execute(select(worker_lease).where(worker_lease.c.name == name)).first()
    if row is None:
        return {"state": DOWN, "heartbeat_age_s": None}
    age = max(0.0, time.time() - row.heartbeat_at)
    local = row.host == socket.gethostname()
    if (local and not psutil.pid_exists(row.pid)) or (not local and age > ttl):
        state = DEAD
    elif age > stuck_after:
        state = STUCK
    else:
        state = UP
    return {"state": state, "heartbeat_age_s": round(age, 1)}


def stuck_holder(engine: Engine, pid: int, stuck_after: float, name: str = "harvest") -> bool:
    """True when process ``pid`` on this host holds the lease but has not renewed it for ``stuck_after`` s."""
    with engine.connect() as connection:
        row = connection.execute(select(worker_lease).where(worker_lease.c.name == name)).first()
    return (
        row is not None
        and row.pid == pid
        and row.host == socket.gethostname()
        and time.time() - row.heartbeat_at > stuck_after
    )
