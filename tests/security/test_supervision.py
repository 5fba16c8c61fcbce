"""The harvest worker's supervision and health, on real processes and a real SQLite event log."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import psutil
import pytest
from sqlalchemy import insert

from active_learning.event_log import EventLog
from active_learning.worker import stuck_holder, worker_lease, worker_state
from scraiber.serve import health_report
from scraiber.worker_process import WorkerSupervisor
from tests.security.conftest import wait_for


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])


def _crasher() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])


@pytest.fixture
def supervise():
    """Run a supervisor in a thread; stop it (and its worker) at the end."""
    stop = threading.Event()
    threads = []

    def start(supervisor: WorkerSupervisor) -> WorkerSupervisor:
        thread = threading.Thread(target=supervisor.run, args=(stop,), daemon=True)
        thread.start()
        threads.append(thread)
        return supervisor

    yield start
    stop.set()
    for thread in threads:
        thread.join(timeout=20)
        assert not thread.is_alive()


def test_a_killed_worker_is_restarted_at_once(supervise):
    supervisor = supervise(WorkerSupervisor(_sleeper))
    first = wait_for(lambda: supervisor.process, 5, "the first worker")
    first_pid = first.pid
    killed = time.monotonic()
    os.kill(first_pid, signal.SIGKILL)
    wait_for(lambda: supervisor.process.pid != first_pid and supervisor.process.poll() is None, 10, "a new worker")
    assert time.monotonic() - killed < 2.0 and supervisor.restarts == 1


@pytest.mark.slow  # watches restarts for 6 s
def test_a_crashing_worker_is_restarted_with_back_off(supervise):
    supervisor = supervise(WorkerSupervisor(_crasher, max_backoff=2.0))
    time.sleep(6.0)
    # immediate, then 1 s, 2 s, 2 s ... (plus interpreter start-up): a handful, not hundreds
    assert 3 <= supervisor.restarts <= 8, supervisor.restarts


def test_a_worker_that_cannot_start_is_tried_again_with_back_off(supervise):
    attempts = []

    def failing_start():
        attempts.append(time.monotonic())
        if len(attempts) < 3:
            raise OSError("fork server unavailable")
        return _sleeper()

    supervisor = supervise(WorkerSupervisor(failing_start, max_backoff=1.0))
    wait_for(lambda: supervisor.process is not None and supervisor.process.poll() is None, 10, "the third attempt")
    assert len(attempts) == 3 and attempts[2] - attempts[1] >= 0.9  # the second retry waited


def test_a_stuck_worker_is_killed_and_restarted(supervise):
    stuck = {"pid": None}
    supervisor = supervise(WorkerSupervisor(_sleeper, is_stuck=lambda pid: pid == stuck["pid"], stuck_every=0.2))
    first = wait_for(lambda: supervisor.process, 5, "the first worker")
    stuck["pid"] = first.pid
    wait_for(lambda: supervisor.restarts == 1 and supervisor.process.pid != first.pid, 15, "the stuck worker replaced")
    assert first.poll() is not None


def test_stopping_the_supervisor_stops_its_worker():
    stop = threading.Event()
    supervisor = WorkerSupervisor(_sleeper)
    thread = threading.Thread(target=supervisor.run, args=(stop,), daemon=True)
    thread.start()
    process = wait_for(lambda: supervisor.process, 5, "the worker")
    stop.set()
    thread.join(timeout=20)
    assert process.poll() is not None


def _lease(events: EventLog, pid: int, age: float, host: str | None = None) -> None:
    with events.engine.begin() as connection:
        connection.execute(worker_lease.delete())
        connection.execute(insert(worker_lease).values(name="harvest", holder=f"h:{pid}", host=host or socket.gethostname(),
                                                       pid=pid, heartbeat_at=time.time() - age))  # fmt: skip


def test_worker_state_from_the_lease(tmp_path):
    events = EventLog.from_url(f"sqlite:///{tmp_path / 'events.sqlite'}")
    assert worker_state(events.engine, 60)["state"] == "down"
    _lease(events, os.getpid(), age=1)
    assert worker_state(events.engine, 60)["state"] == "up"
    _lease(events, os.getpid(), age=120)
    assert worker_state(events.engine, 60)["state"] == "stuck"
    assert stuck_holder(events.engine, os.getpid(), 60) and not stuck_holder(events.engine, os.getpid() + 1, 60)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert not psutil.pid_exists(dead.pid)
    _lease(events, dead.pid, age=1)
    assert worker_state(events.engine, 60)["state"] == "dead"
    _lease(events, 1, age=45, host="another-host")
    assert worker_state(events.engine, 60)["state"] == "dead"  # the lease expired (30 s)


def test_health_is_degraded_while_the_worker_is_dead_or_the_queue_is_old(tmp_path):
    events = EventLog.from_url(f"sqlite:///{tmp_path / 'events.sqlite'}")
    report = health_report(events, worker_expected=True, stuck_after=60)
    assert report()["status"] == "DEGRADED" and report()["worker"]["state"] == "down"
    _lease(events, os.getpid(), age=0)
    time.sleep(1.1)  # the report is read at most once a second
    assert report() == {"status": "UP", "worker": {"state": "up", "heartbeat_age_s": report()["worker"]["heartbeat_age_s"]},
                        "queue": {"waiting": 0, "oldest_age_s": None}}  # fmt: skip
    events.record({"action": "ANNOTATION_CREATED", "annotation": {"id": 1}})
    with events.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE events SET received_at = received_at - 600")
    time.sleep(1.1)
    body = report()
    assert body["status"] == "DEGRADED" and body["queue"]["waiting"] == 1 and body["queue"]["oldest_age_s"] >= 600
    assert health_report(events, worker_expected=False, stuck_after=1e9)()["worker"] == {"state": "disabled"}
