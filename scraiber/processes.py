"""Run a helper server (Label Studio, SeaweedFS, MLflow, the backend) as a managed child process.

A :class:`ManagedProcess` starts a command in its own process group with its output in a
log file, waits until a health URL answers (or a callable says ready) within a bounded
time, and stops the whole group: SIGTERM first, SIGKILL after a grace period, so children
of the command die too. Whatever goes wrong while starting ends in a
:class:`ProcessError` whose message carries the tail of the log::

    with ManagedProcess(["python", "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                        log_path=tmp / "http.log",
                        ready=f"http://127.0.0.1:{port}/") as server:
        ...

Processes that leave the group themselves (``setsid``) are outside its reach.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import requests

ReadyCheck = str | Callable[[], bool]
"""A health URL (ready when it answers 2xx) or a callable returning True when ready."""


class ProcessError(RuntimeError):
    """A managed process could not be started, died, or did not become ready in time."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it).

    Another process may take it before it is used; start the server soon after.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def url_answers(url: str, timeout: float = 2.0) -> bool:
    """True when a GET of ``url`` returns a 2xx status; False on any connection problem."""
    try:
        response = requests.get(url, timeout=timeout, allow_redirects=False)
    except requests.RequestException:
        return False
    return 200 <= response.status_code < 300


def log_tail(path: Path, lines: int = 40, max_bytes: int = 64 * 1024) -> str:
    """The last ``lines`` lines of a log file (empty if it does not exist)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - max_bytes))
            text = handle.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class ManagedProcess:
    """One command run as a child process in its own process group, logged to a file.

    Args:
        args: The command and its arguments (no shell).
        log_path: File that receives stdout and stderr (overwritten at each start).
        env: Variables set on top of the inherited environment (``None`` values remove one).
        cwd: Working directory of the command.
        ready: Health URL or callable checked by :meth:`start`; ``None`` means ready at once.
        ready_timeout: Seconds :meth:`start` waits for ``ready``.
        grace: Seconds :meth:`stop` waits after SIGTERM before SIGKILL.
        name: Name used in messages (default: the program's file name).
        redact: Strings (passwords, tokens in ``args``) replaced by ``***`` in messages.
    """

    def __init__(
        self,
        args: Sequence[str | os.PathLike],
        *,
        log_path: Path,
        env: Mapping[str, str | None] | None = None,
        cwd: Path | None = None,
        ready: ReadyCheck | None = None,
        ready_timeout: float = 60.0,
        grace: float = 10.0,
        name: str | None = None,
        redact: Sequence[str] = (),
    ) -> None:
        if not args:
            raise ValueError("ManagedProcess needs a command, got an empty argument list")
        if ready_timeout <= 0 or grace < 0:
            raise ValueError(f"ready_timeout must be > 0 and grace >= 0, got {ready_timeout} and {grace}")
        self.args = [os.fspath(arg) for arg in args]
        self.log_path = Path(log_path)
        self.env = dict(env or {})
        self.cwd = cwd
        self.ready = ready
        self.ready_timeout = ready_timeout
        self.grace = grace
        self.name = name or Path(self.args[0]).name
        self.redact = tuple(secret for secret in redact if secret)
        self._popen: subprocess.Popen | None = None
        self.startup_seconds: float | None = None
        """Seconds from launch to ready, measured by :meth:`start`."""

    @property
    def pid(self) -> int | None:
        """Process id of the command (also its process group id), or None before start."""
        return self._popen.pid if self._popen is not None else None

    @property
    def running(self) -> bool:
        """True while the command itself has not exited."""
        return self._popen is not None and self._popen.poll() is None

    @property
    def returncode(self) -> int | None:
        """Exit status once the command has exited (negative: killed by that signal)."""
        return self._popen.poll() if self._popen is not None else None

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of this process's log."""
        return log_tail(self.log_path, lines)

    def start(self) -> ManagedProcess:
        """Launch the command and wait until it is ready.

        Raises:
            ProcessError: The program is missing, exits early, or is not ready within
                ``ready_timeout`` seconds (the process group is stopped first). The
                message names the command and ends with the log tail.
        """
        if self.running:
            raise ProcessError(f"{self.name} is already running (pid {self.pid})")
        env = dict(os.environ)
        for key, value in self.env.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with self.log_path.open("wb") as log:
            try:
                self._popen = subprocess.Popen(
                    self.args,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=self.cwd,
                    start_new_session=True,
                )
            except OSError as exc:
                raise ProcessError(f"cannot start {self.name} ({self.args[0]}): {exc}") from exc
        try:
            self.wait_ready(self.ready_timeout)
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def wait_ready(self, timeout: float) -> None:
        """Poll the ready check until it passes, the process dies, or ``timeout`` elapses.

        Raises:
            ProcessError: The process exited or the timeout elapsed (:meth:`start` then
                stops the process group).
        """
        if self._popen is None:
            raise ProcessError(f"{self.name} was never started")
        deadline = time.monotonic() + timeout
        while True:
            if self._popen.poll() is not None:
                raise ProcessError(self._failure(f"exited with status {self._popen.returncode} before it was ready"))
            if self._is_ready():
                return
            if time.monotonic() >= deadline:
                raise ProcessError(
                    self._failure(f"was not ready after {timeout:.0f} s (waiting for {self._ready_text()})")
                )
            time.sleep(0.25)

    def stop(self) -> int | None:
        """Stop the whole process group: SIGTERM, then SIGKILL after ``grace`` seconds.

        Safe to call more than once and after the process died. Returns the exit status.
        """
        if self._popen is None:
            return None
        pgid = self._popen.pid
        if self._group_alive(pgid):
            self._signal_group(pgid, signal.SIGTERM)
            deadline = time.monotonic() + self.grace
            while self._group_alive(pgid) and time.monotonic() < deadline:
                self._popen.poll()
                time.sleep(0.1)
            if self._group_alive(pgid):
                self._signal_group(pgid, signal.SIGKILL)
        try:
            return self._popen.wait(timeout=self.grace + 5)
        except subprocess.TimeoutExpired as exc:
            raise ProcessError(self._failure(f"did not exit after SIGKILL (pid {pgid})")) from exc

    def __enter__(self) -> ManagedProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _is_ready(self) -> bool:
        if self.ready is None:
            return True
        if isinstance(self.ready, str):
            return url_answers(self.ready)
        return bool(self.ready())

    def _ready_text(self) -> str:
        if isinstance(self.ready, str):
            return self.ready
        return getattr(self.ready, "__name__", "the ready check")

    def _failure(self, what: str) -> str:
        tail = self.log_tail() or "(log is empty)"
        message = f"{self.name} {what}; command: {' '.join(self.args)}\nlast lines of {self.log_path}:\n{tail}"
        for secret in self.redact:
            message = message.replace(secret, "***")
        return message

    def _group_alive(self, pgid: int) -> bool:
        """True while any process of the group exists (a zombie leader is reaped first)."""
        if self._popen is not None:
            self._popen.poll()
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    @staticmethod
    def _signal_group(pgid: int, sig: signal.Signals) -> None:
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass
