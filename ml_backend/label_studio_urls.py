"""Label Studio file URLs in task data, parsed the way Label Studio 1.23.2 resolves them.

Task data points at an image in one of three ways, each served by one Label Studio view:

* an upload, ``/data/upload/<name>`` (view ``data-upload``);
* a local file, ``/data/local-files/?d=<path below LOCAL_FILES_DOCUMENT_ROOT>``
  (view ``localfiles_data``);
* a storage object wrapped by Label Studio, ``/tasks/<id>/resolve/?fileuri=<base64 URI>``
  (also ``presign``, and ``/projects/<id>/...``; view ``task-storage-data-resolve``).

What the backend checks must be what Label Studio serves, so this module reads a URL the
way the server does: the path is percent-decoded once (the WSGI server does that before
Django routes it), the query is split like Django's ``QueryDict`` (``parse_qsl``, ``&``
only) and Label Studio reads the *last* value of a repeated parameter. Django routes
*any* path that contains ``data/local-files/`` (the pattern is not anchored:
``/x/data/local-files/y`` is a local-files request too) unless an earlier pattern
(``^data/upload/``) caught it. Anything ambiguous is refused rather than guessed:

* a path with ``.`` or ``..`` segments, empty segments, backslashes or control characters
  (``requests`` would remove dot segments before sending, so the server would see
  another path than the one checked);
* a local-files request on any path but exactly ``/data/local-files/``;
* a repeated ``d`` or ``fileuri`` parameter;
* any other path (Label Studio's static files, media, API).

:func:`parse_file_url` returns a :class:`FileURL` whose :attr:`~FileURL.target` is the
request the backend then sends, rebuilt from the parsed parts (never the raw string), so
the checked path and the fetched path are the same by construction. The agreement with
Label Studio's own URL resolver is tested on a list of adversarial URLs
(``tests/security/test_url_parser.py``).
"""

from __future__ import annotations

import base64
import binascii
import posixpath
import re
from dataclasses import dataclass
from typing import Literal
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

FileKind = Literal["upload", "local-files", "storage"]
UPLOAD: FileKind = "upload"
LOCAL_FILES: FileKind = "local-files"
STORAGE: FileKind = "storage"

_LOCAL_FILES_PATH = "/data/local-files/"
_LOCAL_FILES_ROUTE = "data/local-files/"  # Label Studio's unanchored pattern
_UPLOAD_PREFIX = "/data/upload/"
_STORAGE_PATH = re.compile(r"/(?:tasks|projects)/[0-9]{1,18}/(?:presign|resolve)/?")
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f\\]")  # control characters and backslashes
_DEFAULT_PORTS = {"http": 80, "https": 443}


class FileURLError(ValueError):
    """A task's image URL is not one Label Studio serves unambiguously; the message names it."""


@dataclass(frozen=True)
class FileURL:
    """A Label Studio file URL as the server resolves it.

    Attributes:
        kind: ``"upload"``, ``"local-files"`` or ``"storage"``.
        path: The decoded request path Label Studio routes on.
        local_path: For local files: the file below ``LOCAL_FILES_DOCUMENT_ROOT`` that Label
            Studio serves (its ``normpath(d).lstrip("/")``).
        storage_uri: For storage URLs: the wrapped URI (e.g. ``s3://bucket/key``).
    """

    kind: FileKind
    path: str
    local_path: str | None = None
    storage_uri: str | None = None

    @property
    def target(self) -> str:
        """The path and query to request from Label Studio, rebuilt from the parsed parts."""
        if self.kind == LOCAL_FILES:
            return _LOCAL_FILES_PATH + "?" + urlencode({"d": self.local_path})
        return quote(self.path, safe="/")

    @property
    def name(self) -> str:
        """A short name for messages (the file, not the whole URL)."""
        return self.local_path or self.storage_uri or self.path


def origin(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of an absolute URL, the port defaulted by scheme."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme, 0)


def parse_file_url(value: object, base_url: str | None) -> FileURL:
    """Parse a task's image URL (path or absolute URL on ``base_url``) as Label Studio would.

    Args:
        value: The task data value.
        base_url: Label Studio's base URL as the backend reaches it (None: absolute URLs are refused).

    Raises:
        FileURLError: the URL is not a Label Studio file URL, is on another origin, or is
            ambiguous (see the module docstring); the message names the URL.
    """
    if not isinstance(value, str) or not value.strip():
        raise FileURLError(f"task image URL is missing or empty: {value!r}")
    raw = value.strip()
    if _FORBIDDEN.search(raw):
        raise FileURLError(f"refusing {_short(raw)}: control characters and backslashes are not allowed")
    parts = urlsplit(raw)
    if parts.scheme or parts.netloc:
        if base_url is None or parts.scheme.lower() not in _DEFAULT_PORTS or _origin_or_none(raw) != origin(base_url):
            raise FileURLError(f"refusing to fetch {_short(raw)}: only URLs on Label Studio at {base_url} are allowed")
        if parts.username is not None or parts.password is not None:
            raise FileURLError(f"refusing to fetch {_short(raw)}: URLs with user info are not allowed")
    elif not raw.startswith("/"):
        raise FileURLError(f"refusing to fetch {_short(raw)}: not a Label Studio path (/data/...) or URL")
    path = _decoded_path(parts.path, raw)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if _LOCAL_FILES_ROUTE in path:
        if path != _LOCAL_FILES_PATH:
            raise FileURLError(
                f"refusing {_short(raw)}: Label Studio serves it as local files; "
                f"only {_LOCAL_FILES_PATH}?d=... is accepted"
            )
        return FileURL(LOCAL_FILES, path, local_path=_local_path(_single(query, "d", raw), raw))
    if path.startswith(_UPLOAD_PREFIX) and len(path) > len(_UPLOAD_PREFIX) and not path.endswith("/"):
        return FileURL(UPLOAD, path)
    if _STORAGE_PATH.fullmatch(path):
        return FileURL(STORAGE, path, storage_uri=_storage_uri(_single(query, "fileuri", raw), raw))
    raise FileURLError(
        f"refusing to fetch {_short(raw)}: only Label Studio data paths are fetched (uploads /data/upload/..., "
        "local files /data/local-files/?d=..., storage links /tasks/ID/resolve/?fileuri=...)"
    )


def _origin_or_none(url: str) -> tuple[str, str, int] | None:
    try:
        return origin(url)
    except ValueError:  # a port out of range or not a number
        return None


def _decoded_path(raw_path: str, url: str) -> str:
    """The path as the server routes it: percent-decoded once (UTF-8), without ambiguous segments."""
    try:
        path = unquote(raw_path, errors="strict")
    except UnicodeDecodeError:
        raise FileURLError(f"refusing {_short(url)}: the path is not UTF-8") from None
    if not path.startswith("/") or _FORBIDDEN.search(path):
        raise FileURLError(f"refusing {_short(url)}: not a path, or control characters or backslashes in it")
    segments = path.split("/")[1:]
    if any(segment in ("", ".", "..") for segment in segments[:-1]) or segments[-1] in (".", ".."):
        raise FileURLError(f"refusing {_short(url)}: '.', '..' and empty path segments are not allowed")
    return path


def _single(query: list[tuple[str, str]], key: str, url: str) -> str:
    values = [value for name, value in query if name == key]
    if len(values) > 1:  # Label Studio reads the last one, other readers the first: ambiguous
        raise FileURLError(f"refusing {_short(url)}: it has {len(values)} '{key}' parameters (exactly one is needed)")
    if not values or not values[0]:
        raise FileURLError(f"refusing {_short(url)}: it names no file (missing ?{key}=)")
    return values[0]


def _local_path(d: str, url: str) -> str:
    if _FORBIDDEN.search(d):
        raise FileURLError(f"refusing {_short(url)}: control characters or backslashes in the file path")
    if ".." in d.split("/"):
        raise FileURLError(f"refusing {_short(url)}: '..' in the local file path")
    local = posixpath.normpath(d).lstrip("/")  # what Label Studio's localfiles_data does
    if local in ("", "."):
        raise FileURLError(f"refusing {_short(url)}: it names no file")
    return local


def _storage_uri(encoded: str, url: str) -> str:
    try:
        return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode("utf-8")
    except (binascii.Error, ValueError):
        raise FileURLError(f"cannot decode the storage URI in {_short(url)}") from None


def _short(url: str, limit: int = 200) -> str:
    return repr(url if len(url) <= limit else url[:limit] + "...")
