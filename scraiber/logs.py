"""Logging set-up shared by the ``scraiber`` command and the processes it starts."""

from __future__ import annotations

import logging

#: Loggers that speak at INFO about plumbing: Alembic announces its plugins on every start and
#: httpx (under label-studio-sdk) logs every request to Label Studio, so a polling worker would
#: fill its log with them. They are shown with ``--verbose``.
QUIET_LOGGERS = ("alembic", "httpx")


def configure_logging(verbose: bool = False) -> None:
    """INFO (DEBUG with ``verbose``) to stderr as ``LEVEL logger: message``; plumbing at WARNING unless verbose."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if verbose else logging.WARNING)
