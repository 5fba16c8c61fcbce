"""Logging set-up of the ``scraiber`` command: plumbing loggers stay quiet unless ``--verbose``."""

from __future__ import annotations

import logging

import httpx
import pytest

from scraiber.logs import QUIET_LOGGERS, configure_logging


@pytest.fixture(autouse=True)
def _restore_levels():
    saved = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    yield
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


def test_label_studio_requests_are_not_logged_at_info(caplog: pytest.LogCaptureFixture):
    configure_logging()
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={}))
    with caplog.at_level(logging.INFO), httpx.Client(transport=transport) as client:
        client.get("http://127.0.0.1:1/api/projects/")
    assert not [r for r in caplog.records if r.name == "httpx"]


def test_verbose_shows_them(caplog: pytest.LogCaptureFixture):
    configure_logging(verbose=True)
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={}))
    with caplog.at_level(logging.INFO), httpx.Client(transport=transport) as client:
        client.get("http://127.0.0.1:1/api/projects/")
    assert [r.getMessage() for r in caplog.records if r.name == "httpx"] == [
        'HTTP Request: GET http://127.0.0.1:1/api/projects/ "HTTP/1.1 200 OK"'
    ]
