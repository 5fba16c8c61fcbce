"""The artefact store interface: keys, errors, and JSON / numpy helpers shared by every store.

A key is a relative ``/``-separated path such as ``datasets/v3/train.npz``. Segments must
not be empty, ``.``/``..`` or start with a dot (the dot namespace is reserved for the
stores' own temporary and metadata files), so no key can leave the store's root.
"""

from __future__ import annotations

import io
import json
import os
import re
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, cast

import numpy as np

_METADATA_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class ArtefactNotFoundError(FileNotFoundError):
    """No artefact under that key (or the bucket does not exist)."""


class ArtefactAccessError(PermissionError):
    """The store refused the credentials or the operation."""


class ArtefactStoreUnavailableError(ConnectionError):
    """The store's endpoint could not be reached."""


def validate_key(key: str, *, prefix: bool = False) -> str:
    """Return ``key`` if it is a safe relative artefact key.

    Args:
        key: The key to check.
        prefix: Check a listing prefix instead: may be empty, end with ``/`` or end in a
            partial segment.

    Raises:
        ValueError: naming the key and what is wrong with it.
    """
    if not isinstance(key, str):
        raise ValueError(f"artefact key must be a string, got {type(key).__name__}: {key!r}")
    if prefix and key == "":
        return key
    problem = None
    if key == "":
        problem = "it is empty"
    elif key.startswith("/") or re.match(r"^[A-Za-z]:", key):
        problem = "it is an absolute path"
    elif "\\" in key or any(ord(char) < 32 or ord(char) == 127 for char in key):
        problem = "it contains a backslash or a control character"
    else:
        segments = key.split("/")
        if prefix and segments[-1] == "":
            segments = segments[:-1]
        if any(segment in ("", ".", "..") for segment in segments):
            problem = "it has an empty, '.' or '..' segment"
        elif any(segment.startswith(".") for segment in segments):
            problem = "a segment starts with '.' (reserved for the store's own files)"
    if problem:
        raise ValueError(f"invalid artefact key {key!r}: {problem}; use a relative path like 'models/v1/weights.bin'")
    return key


def validate_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """Return ``metadata`` as a dict if names are lower-case ``[a-z0-9_-]`` and values ASCII text.

    These are the rules every S3 server keeps intact (S3 lower-cases names, sends values
    as HTTP headers), so local and S3 stores return exactly what was put.

    Raises:
        ValueError: naming the bad entry.
    """
    checked: dict[str, str] = {}
    for name, value in (metadata or {}).items():
        if not isinstance(name, str) or not _METADATA_NAME.match(name):
            raise ValueError(f"invalid metadata name {name!r}: use lower-case letters, digits, '-' and '_'")
        if not isinstance(value, str) or not value.isascii() or not value.isprintable():
            raise ValueError(f"invalid metadata value for {name!r}: {value!r} (printable ASCII text only)")
        checked[name] = value
    return checked


@contextmanager
def atomic_file(path: Path) -> Iterator[IO[bytes]]:
    """Open a temporary file beside ``path`` that replaces ``path`` only when the block succeeds.

    The temporary file is a dot file in the same folder (same file system, so
    ``os.replace`` is atomic); readers see the old content or the new, never a part. On
    an error the temporary file is removed and ``path`` is left as it was.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False)
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(handle.name, 0o644)
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


class ArtefactStore(ABC):
    """Bytes under relative keys, in a local folder or an S3 bucket.

    Implementations provide the primitive operations; the JSON and numpy helpers are
    built on :meth:`put_bytes` and :meth:`get_bytes`.
    """

    @abstractmethod
    def put_bytes(self, key: str, data: bytes, metadata: Mapping[str, str] | None = None) -> None:
        """Store ``data`` under ``key`` (replacing it), with optional text ``metadata``."""

    @abstractmethod
    def get_bytes(self, key: str) -> bytes:
        """The bytes under ``key``; raises :class:`ArtefactNotFoundError` if there are none."""

    @abstractmethod
    def get_metadata(self, key: str) -> dict[str, str]:
        """The metadata stored with ``key`` (empty if none); raises :class:`ArtefactNotFoundError`."""

    @abstractmethod
    def put_file(self, key: str, path: str | os.PathLike) -> None:
        """Store the content of the local file ``path`` under ``key`` (streamed, not read whole)."""

    @abstractmethod
    def get_file(self, key: str, dest: str | os.PathLike) -> Path:
        """Write the artefact ``key`` to the local file ``dest`` atomically and return its path."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """True if an artefact is stored under ``key``."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """All keys starting with ``prefix`` (a plain string prefix), sorted."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; nothing happens if it does not exist."""

    @abstractmethod
    def uri(self, key: str) -> str:
        """A URI naming the artefact (``file://...`` or ``s3://bucket/...``) for logs and provenance."""

    def put_json(self, key: str, obj: Any) -> None:
        """Store ``obj`` as indented UTF-8 JSON with sorted keys."""
        self.put_bytes(
            key, json.dumps(obj, indent=2, sort_keys=True).encode("utf-8"), {"content-type": "application/json"}
        )

    def get_json(self, key: str) -> Any:
        """Load the JSON document under ``key``."""
        return json.loads(self.get_bytes(key).decode("utf-8"))

    def put_arrays(self, key: str, arrays: Mapping[str, np.ndarray]) -> None:
        """Store named numpy arrays as one compressed ``.npz`` (numeric and bool dtypes only).

        Raises:
            ValueError: if an array has an object dtype (it would need pickle to load).
        """
        for name, array in arrays.items():
            if np.asarray(array).dtype.hasobject:
                raise ValueError(f"array {name!r} for {key!r} has dtype object; store numbers, bools or strings")
        buffer = io.BytesIO()
        # numpy's stub also lists ``allow_pickle: bool`` as a keyword, which mypy matches ``**arrays`` against.
        np.savez_compressed(buffer, **cast("Mapping[str, Any]", arrays))
        self.put_bytes(key, buffer.getvalue(), {"content-type": "application/x-npz"})

    def get_arrays(self, key: str) -> dict[str, np.ndarray]:
        """Load the arrays stored by :meth:`put_arrays` (never unpickles)."""
        with np.load(io.BytesIO(self.get_bytes(key)), allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
