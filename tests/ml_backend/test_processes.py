"""ManagedProcess: start, readiness, failure messages with the log tail, stopping the whole group."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import pytest
import requests

from scraiber.processes import ManagedProcess, ProcessError, free_port, log_tail


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_free_port_is_bindable_on_loopback():
    port = free_port()
    assert 1024 <= port <= 65535
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_http_server_starts_answers_and_stops(tmp_path: Path):
    (tmp_path / "hello.txt").write_text("hello")
    port = free_port()
    url = f"http://127.0.0.1:{port}/hello.txt"
    process = ManagedProcess(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        log_path=tmp_path / "logs" / "http.log",
        cwd=tmp_path,
        ready=url,
        ready_timeout=30,
        grace=5,
    )
    with process:
        assert process.running
        assert process.startup_seconds is not None and process.startup_seconds < 30
        assert requests.get(url, timeout=5).text == "hello"
    assert not process.running
    assert process.returncode is not None
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=2)
    assert "GET /hello.txt" in process.log_tail()
    assert process.stop() == process.returncode  # a second stop is harmless


def test_timeout_error_names_command_and_includes_log_tail(tmp_path: Path):
    script = "import time; print('starting slowly', flush=True); print('secret-value', flush=True); time.sleep(60)"
    process = ManagedProcess(
        [sys.executable, "-c", script],
        log_path=tmp_path / "slow.log",
        ready=lambda: False,
        ready_timeout=1.5,
        grace=2,
        name="slow-server",
        redact=["secret-value"],
    )
    started = time.monotonic()
    with pytest.raises(ProcessError) as caught:
        process.start()
    message = str(caught.value)
    assert time.monotonic() - started < 10
    assert "slow-server was not ready after 2 s" in message
    assert "starting slowly" in message
    assert "secret-value" not in message and "***" in message
    assert not process.running  # a failed start stops the process


def test_early_exit_reports_status_and_log(tmp_path: Path):
    process = ManagedProcess(
        [sys.executable, "-c", "import sys; print('cannot bind port', flush=True); sys.exit(3)"],
        log_path=tmp_path / "dies.log",
        ready="http://127.0.0.1:9/never",
        ready_timeout=30,
    )
    with pytest.raises(ProcessError, match=r"(?s)exited with status 3 before it was ready.*cannot bind port"):
        process.start()


def test_missing_program_is_a_process_error(tmp_path: Path):
    process = ManagedProcess([str(tmp_path / "no-such-program")], log_path=tmp_path / "x.log")
    with pytest.raises(ProcessError, match="cannot start no-such-program"):
        process.start()


def test_stop_kills_children_and_ignores_sigterm_with_sigkill(tmp_path: Path):
    child_pid_file = tmp_path / "child.pid"
    # The parent starts a child that ignores SIGTERM, then ignores SIGTERM itself.
    script = (
        "import signal, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', "
        "'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(120)'])\n"
        f"open({str(child_pid_file)!r}, 'w').write(str(child.pid))\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "time.sleep(120)\n"
    )
    process = ManagedProcess(
        [sys.executable, "-c", script],
        log_path=tmp_path / "tree.log",
        ready=lambda: child_pid_file.exists() and child_pid_file.read_text() != "",
        ready_timeout=30,
        grace=1,
    )
    process.start()
    parent_pid = process.pid
    child_pid = int(child_pid_file.read_text())
    assert _alive(child_pid)
    started = time.monotonic()
    returncode = process.stop()
    assert time.monotonic() - started < 8
    assert returncode == -9
    assert _wait_gone(child_pid), f"child {child_pid} survived stop()"
    assert not _alive(parent_pid)


def test_sigterm_stops_a_cooperative_group_before_the_grace_ends(tmp_path: Path):
    process = ManagedProcess(
        [sys.executable, "-c", "import time; time.sleep(120)"], log_path=tmp_path / "sleep.log", grace=20
    )
    process.start()
    started = time.monotonic()
    assert process.stop() == -15
    assert time.monotonic() - started < 5


def test_environment_overrides_and_removals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SCRAIBER_TEST_REMOVE_ME", "present")
    script = "import os; print(os.environ.get('GREETING'), os.environ.get('SCRAIBER_TEST_REMOVE_ME'), flush=True)"
    process = ManagedProcess(
        [sys.executable, "-c", script],
        log_path=tmp_path / "env.log",
        env={"GREETING": "hello", "SCRAIBER_TEST_REMOVE_ME": None},
    )
    process.start()
    deadline = time.monotonic() + 10
    while process.running and time.monotonic() < deadline:
        time.sleep(0.05)
    process.stop()
    assert log_tail(tmp_path / "env.log") == "hello None"


def test_invalid_arguments_are_value_errors(tmp_path: Path):
    with pytest.raises(ValueError, match="needs a command"):
        ManagedProcess([], log_path=tmp_path / "x.log")
    with pytest.raises(ValueError, match="ready_timeout"):
        ManagedProcess(["true"], log_path=tmp_path / "x.log", ready_timeout=0)


def test_a_command_killed_with_sigterm_stops_the_servers_it_started(tmp_path: Path):
    """A CLI command (here a script using the CLI's SIGTERM handling) that gets SIGTERM unwinds its
    ``with ManagedProcess`` blocks: the server it started does not outlive it."""
    import signal
    import subprocess
    import textwrap

    port = free_port()
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from scraiber.cli import exit_on_sigterm
        from scraiber.processes import ManagedProcess
        exit_on_sigterm()
        server = ManagedProcess([sys.executable, "-m", "http.server", "{port}", "--bind", "127.0.0.1"],
                                log_path=Path({str(tmp_path / "http.log")!r}), ready="http://127.0.0.1:{port}/",
                                ready_timeout=30, grace=5)
        with server:
            Path({str(tmp_path / "pid")!r}).write_text(str(server.pid))
            time.sleep(120)
    """)
    command = subprocess.Popen([sys.executable, "-c", script])
    pid_file = tmp_path / "pid"
    deadline = time.monotonic() + 60
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    server_pid = int(pid_file.read_text())
    assert _alive(server_pid)
    command.send_signal(signal.SIGTERM)
    assert command.wait(timeout=30) == 128 + signal.SIGTERM
    assert _wait_gone(server_pid, timeout=10)
