"""Slow and idle clients cannot hold the backend's threads (the real gunicorn process, loopback only).

Before the fix, 30 connections that never finished their headers, without auth, made every
route (``/health`` included) time out for 100 s or more.
"""

from __future__ import annotations

import secrets
import socket
import statistics
import time

import pytest
import requests

from scraiber.processes import free_port
from scraiber.stack import backend_process
from tests.fixtures.backend import Backend
from tests.security.conftest import check_answer, record_figures

pytestmark = pytest.mark.slow
HEADER_TIMEOUT = 4


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    """The web tier as deployed (basic auth, one web worker, no Label Studio key: no harvest worker)."""
    data = tmp_path_factory.mktemp("slow-clients")
    auth = ("scraiber", secrets.token_urlsafe(12))
    port = free_port()
    env = {"SCRAIBER_DATA_DIR": str(data), "SCRAIBER_BASIC_AUTH_USER": auth[0], "SCRAIBER_BASIC_AUTH_PASS": auth[1],
           "SCRAIBER_WEB_WORKERS": "1", "SCRAIBER_HEADER_TIMEOUT": str(HEADER_TIMEOUT), "LABEL_STUDIO_API_KEY": ""}  # fmt: skip
    with backend_process({k: v for k, v in env.items() if v}, port, data / "backend.log", [auth[1]]) as process:
        yield Backend(f"http://127.0.0.1:{port}", auth, process, data)


def _open(backend: Backend, first_bytes: bytes) -> socket.socket:
    host, port = backend.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    if first_bytes:
        sock.sendall(first_bytes)
    return sock


def _timed_health(backend: Backend, n: int) -> list[float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        check_answer(requests.get(f"{backend.url}/health", timeout=5), 200)
        times.append(time.perf_counter() - started)
    return times


def test_health_answers_under_100_half_open_and_30_silent_connections(backend):
    baseline = _timed_health(backend, 20)
    half_open = [_open(backend, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ") for _ in range(100)]
    silent = [_open(backend, b"") for _ in range(30)]
    opened = time.monotonic()
    try:
        under_attack = _timed_health(backend, 50)
        check_answer(requests.get(f"{backend.url}/status", auth=backend.auth, timeout=5), 200)
        check_answer(requests.post(f"{backend.url}/webhook", json={"action": "PROJECT_UPDATED"}, auth=backend.auth,
                                   timeout=5), 200)  # fmt: skip
        # each half-open connection gets 408 (JSON) once its header time is up, then is closed
        answers = []
        for sock in half_open:
            sock.settimeout(max(1.0, HEADER_TIMEOUT + 5 - (time.monotonic() - opened)))
            answers.append(sock.recv(1024))
        for sock in silent:
            sock.settimeout(5)
            assert sock.recv(1024) == b""  # closed without an answer: it never asked anything
        closed_after = time.monotonic() - opened
    finally:
        for sock in half_open + silent:
            sock.close()
    assert all(a.startswith(b"HTTP/1.1 408 ") and b'"error"' in a for a in answers), answers[:2]
    p = lambda xs, q: sorted(xs)[min(len(xs) - 1, int(q * len(xs)))]  # noqa: E731
    record_figures("slow_clients", {
        "half_open": len(half_open), "silent": len(silent), "health_p50_ms_idle": round(1000 * statistics.median(baseline), 1),
        "health_p50_ms_under_attack": round(1000 * statistics.median(under_attack), 1),
        "health_p99_ms_under_attack": round(1000 * p(under_attack, 0.99), 1),
        "attack_connections_closed_after_s": round(closed_after, 1),
    })  # fmt: skip
    assert p(under_attack, 0.99) < 1.0
    assert closed_after < HEADER_TIMEOUT + 5


def test_a_dribbling_client_is_cut_at_the_header_deadline(backend):
    sock = _open(backend, b"G")
    started = time.monotonic()
    closed = None
    try:
        for byte in b"ET /health HTTP/1.1\r\nHost: x\r\nX-Drip: " + b"a" * 60:
            sock.sendall(bytes([byte]))
            time.sleep(0.25)
            check_answer(requests.get(f"{backend.url}/health", timeout=5), 200) if byte == ord("a") else None
    except OSError:
        closed = time.monotonic() - started
    finally:
        sock.close()
    assert closed is not None and closed < HEADER_TIMEOUT + 3, closed


def test_a_stalled_body_is_answered_400_after_the_io_timeout_and_blocks_nobody(backend):
    """An authenticated client that stops sending its body holds one thread for at most 3 x the header timeout."""
    stalled = [
        _open(backend, b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n"
                       b"Authorization: Basic " + _basic(backend) + b"\r\n\r\n{\"action\"")
        for _ in range(4)
    ]  # fmt: skip
    started = time.monotonic()
    try:
        assert max(_timed_health(backend, 10)) < 2.0
        for sock in stalled:
            sock.settimeout(3 * HEADER_TIMEOUT + 10)
            assert sock.recv(1024).startswith(b"HTTP/1.1 400 ")
        assert time.monotonic() - started < 3 * HEADER_TIMEOUT + 5
    finally:
        for sock in stalled:
            sock.close()


def _basic(backend: Backend) -> bytes:
    import base64

    return base64.b64encode(":".join(backend.auth).encode())
