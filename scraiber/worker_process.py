"""The harvest worker's process: started beside the web workers, supervised, restarted.

``scraiber worker`` runs it alone; ``scraiber backend`` forks it from a fork server and keeps
it running with :class:`WorkerSupervisor` (restart with back-off, kill when its heartbeat stops).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import click

from active_learning.db import upgrade_database
from scraiber.logs import configure_logging

log = logging.getLogger(__name__)


class WorkerSupervisor:
    """Keeps one harvest worker process running: restarts it when it exits or is stuck.

    The first restart is immediate; a worker that dies again within ``healthy_after``
    seconds of its start waits 1 s, 2 s, 4 s ... (at most ``max_backoff``) before the next.

    Args:
        start: Starts a worker process.
        is_stuck: Given the worker's pid, True when it is alive but stuck (it is then killed).
        max_backoff: Longest wait between restarts.
        healthy_after: Seconds a worker must run for the back-off to start over.
        poll: Seconds between checks of the process.
        stuck_every: Seconds between calls of ``is_stuck``.
    """

    def __init__(
        self,
        start: Callable[[], Any],
        is_stuck: Callable[[int], bool] | None = None,
        max_backoff: float = 60.0,
        healthy_after: float = 60.0,
        poll: float = 0.2,
        stuck_every: float = 5.0,
    ) -> None:
        self.start = start
        self.is_stuck = is_stuck
        self.max_backoff = max_backoff
        self.healthy_after = healthy_after
        self.poll = poll
        self.stuck_every = stuck_every
        self.process: Any = None
        self.restarts = 0

    def run(self, stop: threading.Event) -> None:
        """Start the worker and keep it running until ``stop`` is set; then stop it."""
        failures = 0
        try:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    self.process = self.start()
                except Exception as exc:  # noqa: BLE001 - keep trying, with back-off, whatever failed
                    log.error("cannot start the harvest worker: %s: %s", type(exc).__name__, exc)
                    self.process = None
                else:
                    self._watch(stop)
                if stop.wait(0.5):  # the backend is stopping (the worker got its signal too)
                    break
                failures = 1 if time.monotonic() - started >= self.healthy_after else failures + 1
                delay = 0.0 if failures == 1 else min(self.max_backoff, 2.0 ** (failures - 2))
                if self.process is not None:
                    log.warning(
                        "the harvest worker (pid %d) exited with status %s; restarting it in %.0f s",
                        self.process.pid, self.process.returncode, delay,
                    )  # fmt: skip
                self.restarts += 1
                stop.wait(delay)
        finally:
            if self.process is not None:
                stop_worker_process(self.process)

    def _watch(self, stop: threading.Event) -> None:
        """Return when the worker exited (a stuck one is killed first) or ``stop`` is set."""
        next_check = time.monotonic() + self.stuck_every
        while not stop.wait(self.poll):
            if self.process.poll() is not None:
                return
            if self.is_stuck is not None and time.monotonic() >= next_check:
                next_check = time.monotonic() + self.stuck_every
                try:
                    stuck = self.is_stuck(self.process.pid)
                except Exception as exc:  # noqa: BLE001 - a database hiccup must not stop supervision
                    log.warning("cannot check the harvest worker's heartbeat: %s", exc)
                    stuck = False
                if stuck:
                    log.error(
                        "the harvest worker (pid %d) stopped renewing its heartbeat; killing it", self.process.pid
                    )
                    stop_worker_process(self.process, grace=5.0)
                    return


def prepare_database(url: str) -> None:
    """Bring the event-log database to the newest schema once, before the processes sharing it start.

    The processes upgrade it too when they open it (``EventLog.from_url``), one at a time under
    :func:`~active_learning.db.upgrade_database`'s lock; done here first, they find nothing to do.
    """
    upgrade_database(url)


#: What the worker imports before it can start (about 10 s on a 2-core machine under load),
#: imported once by the fork server so that a restarted worker starts in about a second.
WORKER_MODULES = ["scraiber.worker_process", "scraiber.wiring"]


class ForkedWorker:
    """A harvest worker forked from multiprocessing's fork server, with ``subprocess.Popen``'s
    ``pid``/``poll``/``returncode``/``terminate``/``kill``/``wait`` (what the supervisor uses)."""

    def __init__(self, process: Any) -> None:
        self._process = process

    @property
    def pid(self) -> int:
        """Process id of the worker."""
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        """Exit status once it exited (negative: the signal that killed it)."""
        return self._process.exitcode

    def poll(self) -> int | None:
        """The exit status, or None while it runs."""
        return self._process.exitcode

    def terminate(self) -> None:
        """SIGTERM."""
        self._process.terminate()

    def kill(self) -> None:
        """SIGKILL."""
        self._process.kill()

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the exit; ``subprocess.TimeoutExpired`` after ``timeout`` seconds."""
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise subprocess.TimeoutExpired("harvest worker", timeout or 0)
        return self._process.exitcode


def start_worker_process(settings: Any = None) -> ForkedWorker | subprocess.Popen:
    """The harvest worker beside this process, stopping when this process is gone.

    With ``settings``, forked from a fork server that imported :data:`WORKER_MODULES` once
    (restarts take about a second); without, ``scraiber worker`` as a new child process.
    """
    if settings is None:
        command = [sys.executable, "-m", "scraiber", "worker", "--parent-pid", str(os.getpid())]
        return subprocess.Popen(command, stdin=subprocess.DEVNULL)
    import multiprocessing

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(WORKER_MODULES)
    _forget_dead_fork_server()
    process = context.Process(target=_run_forked, args=(settings,), name="scraiber-harvest-worker")
    process.start()
    return ForkedWorker(process)


def _forget_dead_fork_server() -> None:
    """Let multiprocessing start a new fork server if its old one died.

    multiprocessing asks ``waitpid`` whether its fork server still runs; gunicorn's arbiter
    reaps every child of the master (``waitpid(-1)``), so after the fork server died that
    question fails with ``ChildProcessError`` at every later start. Forget the dead one.
    """
    from multiprocessing import forkserver

    server: Any = forkserver._forkserver  # noqa: SLF001 - the module's singleton; no public reset exists
    with server._lock:  # noqa: SLF001
        pid = server._forkserver_pid  # noqa: SLF001
        if pid is None:
            return
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == 0:
                return  # still running
        except ChildProcessError:
            pass  # reaped by the arbiter: gone
        os.close(server._forkserver_alive_fd)  # noqa: SLF001
        server._forkserver_pid = server._forkserver_address = server._forkserver_alive_fd = None  # noqa: SLF001


def _run_forked(settings: Any) -> None:
    configure_logging()
    run_worker(settings, os.getppid())  # the fork server: it exits when the backend does


def stop_worker_process(process: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the worker, SIGKILL it after ``grace`` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@click.command("worker")
@click.option("--parent-pid", type=int, hidden=True, help="Stop when this process is gone (set by `scraiber backend`).")
@click.pass_context
def worker_command(ctx: click.Context, parent_pid: int | None) -> None:
    """Harvest implicit labels from stored webhook events, reconcile with Label Studio, retrain when due."""
    from scraiber.settings import settings_from

    run_worker(settings_from(ctx), parent_pid)


def run_worker(settings: Any, parent_pid: int | None = None) -> None:
    """Run the harvest worker (with its retraining and fast-learner threads) until SIGTERM/SIGINT,
    or until process ``parent_pid`` is no longer this process's parent."""
    from active_learning.retrain import RetrainScheduler
    from ml_backend.fcn.segmenter import use_torch_threads
    from scraiber.wiring import build_cycle, build_fast_learning, build_worker

    use_torch_threads(settings.threads)
    worker = build_worker(settings)
    stop = threading.Event()
    scheduler = RetrainScheduler(build_cycle(settings, worker))
    threading.Thread(target=scheduler.run, args=(stop,), name="retrain", daemon=True).start()
    learning = build_fast_learning(settings, worker)
    worker.on_handled = learning.wake.set
    threading.Thread(target=learning.run, args=(stop,), name="fast-learner", daemon=True).start()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    if parent_pid is not None:
        threading.Thread(target=_watch_parent, args=(parent_pid, stop), daemon=True).start()
    worker.run(stop)


def _watch_parent(parent_pid: int, stop: threading.Event) -> None:
    while not stop.wait(1.0):
        if os.getppid() != parent_pid:
            log.warning("the backend process %d is gone; stopping the worker", parent_pid)
            stop.set()
