"""A gunicorn worker whose threads are never held by a client that has not sent its request.

gunicorn's threaded worker (``gthread``, 26.x) hands an accepted connection to a thread
after its first byte (or after 5 s of silence); the thread then blocks reading the request
line and headers. Thirty clients that send part of a request head and then nothing hold
every thread, and every route, ``/health`` included, times out for everyone else.

:class:`HeaderGatedWorker` reads request heads in the worker's event loop instead: an
accepted connection waits in the poller, its bytes are collected without blocking, and it
goes to a thread only once its head is complete (an empty line). A head not complete within
``header_timeout`` seconds is answered 408 and closed; one larger than ``max_head_bytes``
is answered 431. A keep-alive connection goes through the same gate before its next
request. Idle or slow clients therefore cost a socket each (at most ``worker_connections``
per worker), never a thread; once a request is being served, every socket read and write
(body, response) times out after ``io_timeout`` seconds. Errors gunicorn answers itself (a malformed request line, a
bad header) get the backend's JSON error shape instead of an HTML page.

Built on gunicorn 26.x's ``ThreadWorker`` (its ``TConn``, poller and ``enqueue_req``);
``tests/security/test_slow_clients.py`` exercises it through the real server.
"""

from __future__ import annotations

import errno
import json
import selectors
import time
from collections import deque
from functools import partial
from typing import Any

from gunicorn import util
from gunicorn.http.errors import (
    ConfigurationProblem,
    ExpectationFailed,
    ForbiddenProxyRequest,
    LimitRequestHeaders,
    LimitRequestLine,
    NoMoreData,
    ParseException,
    UnsupportedTransferCoding,
)
from gunicorn.workers.gthread import TConn, ThreadWorker

_HEAD_ENDS = (b"\r\n\r\n", b"\n\n")
_REASONS = {400: "Bad Request", 403: "Forbidden", 408: "Request Timeout", 414: "URI Too Long",
            417: "Expectation Failed", 431: "Request Header Fields Too Large", 500: "Internal Server Error"}  # fmt: skip


class HeaderGatedWorker(ThreadWorker):
    """gthread with request heads read in the event loop (see the module docstring)."""

    header_timeout: float = 10.0
    max_head_bytes: int = 64 * 1024
    io_timeout: float = 30.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gated: deque[TConn] = deque()

    # -- connections waiting for their request head ----------------------------------------

    def accept(self, listener: Any) -> None:  # noqa: D102 - gunicorn API
        try:
            sock, address = listener.accept()
        except OSError as exc:
            if exc.errno in (errno.EMFILE, errno.ENFILE):  # out of descriptors: leave it in the backlog
                self.log.warning("cannot accept a connection: %s", exc)
                return
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        self._gate(TConn(self.cfg, sock, address, listener.getsockname()), b"")

    def on_client_socket_readable(self, conn: TConn, client: Any) -> None:  # noqa: D102 - keep-alive: next request
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._gate(conn, conn.parser.unreader.take_buffered() if conn.parser is not None else b"")

    def _gate(self, conn: TConn, head: bytes) -> None:
        conn.head = head
        conn.head_deadline = time.monotonic() + self.header_timeout
        if _complete(head, 0):
            self._release(conn)
            return
        conn.sock.setblocking(False)
        self.gated.append(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_gated_readable, conn))

    def _on_gated_readable(self, conn: TConn, _sock: Any) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client closed the connection
            self._ungate(conn)
            self._close(conn)
            return
        start = max(0, len(conn.head) - 3)
        conn.head += data
        if _complete(conn.head, start):
            self._ungate(conn)
            self._release(conn)
        elif len(conn.head) > self.max_head_bytes:
            self._ungate(conn)
            self._close(conn, 431, f"request head larger than {self.max_head_bytes} bytes")

    def _release(self, conn: TConn) -> None:
        """The head is complete: a thread parses it (from the collected bytes) and serves the request."""
        conn.sock.setblocking(True)
        conn.init()  # creates the parser of a new connection (no I/O for plain HTTP/1.1)
        conn.parser.unreader.unread(conn.head)
        conn.head = b""
        conn.data_ready = True
        self.enqueue_req(conn)

    def _ungate(self, conn: TConn) -> None:
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass
        try:
            self.gated.remove(conn)
        except ValueError:
            pass

    def _close(self, conn: TConn, status: int | None = None, message: str = "") -> None:
        if status is not None:
            _send_json(conn.sock, status, message)
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self) -> None:  # noqa: D102 - called by the event loop about once a second
        super().murder_pending()
        now = time.monotonic()
        while self.gated and self.gated[0].head_deadline <= now:
            conn = self.gated.popleft()
            try:
                self.poller.unregister(conn.sock)
            except (KeyError, ValueError, OSError):
                pass
            self._close(conn, 408 if conn.head else None, f"request head not complete within {self.header_timeout:g} s")

    def handle(self, conn: TConn) -> Any:
        """Serve one request of a gated connection; every socket read and write has ``io_timeout``."""
        if conn.is_http2 or self.cfg.is_ssl:
            return super().handle(conn)
        req = None
        try:
            conn.sock.settimeout(self.io_timeout)  # a client that stalls its body or its reading is dropped
            req = next(conn.parser)
            if not req:
                return False
            return self._keepalive_after(conn, self.handle_request(req, conn))
        except (NoMoreData, StopIteration):
            pass
        except TimeoutError:
            self.log.info("client %s stalled for %g s; connection closed", (conn.client or ("",))[0], self.io_timeout)
        except OSError as exc:
            if exc.errno not in (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN):
                self.log.exception("socket error processing request")
        except Exception as exc:  # noqa: BLE001 - gunicorn's parse errors, answered as JSON
            self.handle_error(req, conn.sock, conn.client, exc)
        return False

    # -- errors gunicorn answers itself --------------------------------------------------------

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:  # noqa: D102
        status = _status(exc)
        if status == 500:
            self.log.exception("error handling request")
            message = "internal error; see the backend log"
        else:
            self.log.warning("invalid request from %s: %s", (addr or ("",))[0], exc)
            message = str(exc)[:300]
        _send_json(client, status, message)


def _complete(head: bytes, start: int) -> bool:
    return any(head.find(end, start) >= 0 for end in _HEAD_ENDS)


def _status(exc: BaseException) -> int:
    for kind, status in (
        (LimitRequestHeaders, 431), (LimitRequestLine, 414), (UnsupportedTransferCoding, 400),
        (ExpectationFailed, 417), (ForbiddenProxyRequest, 403), (ConfigurationProblem, 500), (ParseException, 400),
    ):  # fmt: skip
        if isinstance(exc, kind):
            return status
    return 500


def _send_json(sock: Any, status: int, message: str) -> None:
    body = json.dumps({"status": status, "error": message}).encode()
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nConnection: close\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    try:
        util.write_nonblock(sock, head.encode("latin-1") + body)
    except OSError:
        pass  # the client is gone


def gated_worker_class(header_timeout: float) -> type[HeaderGatedWorker]:
    """A :class:`HeaderGatedWorker` subclass for gunicorn's ``worker_class``: this header timeout,
    and three times as long for each socket read or write of a request being served."""
    timeouts = {"header_timeout": float(header_timeout), "io_timeout": 3.0 * float(header_timeout)}
    return type("ScraiberWorker", (HeaderGatedWorker,), timeouts)
