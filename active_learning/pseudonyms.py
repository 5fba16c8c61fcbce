"""Stable, non-reversible pseudonyms for Label Studio annotators.

A pseudonym is ``HMAC-SHA256(key, user id)`` (first 16 hex digits, 64 bits): the same
annotator always gets the same pseudonym under one key, so indicators can be grouped per
person, but without the key nobody can tell who it is or test a guessed user id. The
key is ``SCRAIBER_PSEUDONYM_KEY`` when set (share it between deployments that must agree),
otherwise a random key generated once and kept in the data directory (``pseudonym.key``,
permissions 0600): pseudonyms are then stable per data directory and unrelated across them.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

KEY_FILE = "pseudonym.key"


def pseudonym(user: Any, key: bytes) -> str:
    """The pseudonym of a Label Studio user (its id, or a user object with ``id``).

    Raises:
        ValueError: if no user id can be found or the key is empty.
    """
    if not key:
        raise ValueError("the pseudonym key is empty")
    user_id = user.get("id") if isinstance(user, Mapping) else user
    if user_id is None or isinstance(user_id, bool) or str(user_id).strip() == "":
        raise ValueError(f"no Label Studio user id in {type(user).__name__} value")
    return "u-" + hmac.new(key, str(user_id).strip().encode(), hashlib.sha256).hexdigest()[:16]


def load_or_create_key(data_dir: Path) -> bytes:
    """The random pseudonym key of ``data_dir``, created (0600, atomically) on first use.

    Several processes may call this at once: the key file appears complete or not at all
    (written to a private temporary file, then hard-linked into place), and whoever links
    first wins.
    """
    path = Path(data_dir) / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_hex(32))
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(temporary, path)
            except FileExistsError:
                pass
        finally:
            temporary.unlink(missing_ok=True)
    key = path.read_text().strip()
    if len(key) < 32:
        raise ValueError(f"pseudonym key file {path} is damaged (too short); delete it to create a new one")
    return key.encode()


def resolve_key(secret: str | None, data_dir: Path) -> bytes:
    """The configured pseudonym key, or the data directory's random one."""
    return secret.encode() if secret else load_or_create_key(data_dir)
