"""Fetching a task's image the way Label Studio stores it, and nothing else.

Allowed, in order of checks:

* uploads and other Label Studio paths (``/data/upload/...``, ``/data/...``) and
  absolute URLs on the configured Label Studio host, fetched with the API key;
* local-files storage (``/data/local-files/?d=PATH``) through the Label Studio URL,
  when ``LOCAL_FILES_DOCUMENT_ROOT``/``PATH`` lies under an allowed local root;
* ``s3://BUCKET/KEY`` (and Label Studio's ``/tasks/ID/presign/?fileuri=...`` wrapping
  of it) when the bucket is allowed, with the configured S3 credentials.

Everything else (other hosts, ``file://``, bare paths, traversal) is refused with an
``ImageSourceError`` naming the URL: task data never makes the backend fetch an
arbitrary URL or read an arbitrary file.
"""

from __future__ import annotations

import base64
import binascii
import posixpath
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ml_backend.bse_io import BSEImage, decode_bse
from ml_backend.label_studio import LabelStudioClient


class ImageSourceError(ValueError):
    """A task's image URL is not allowed or could not be fetched."""


@dataclass
class ImageSource:
    """Fetches BSE images referenced by Label Studio tasks, within the allowed places.

    Attributes:
        label_studio: Client for the configured Label Studio (None: no Label Studio URLs).
        s3_client: Factory of a boto3 S3 client with the configured credentials.
        allowed_buckets: Buckets ``s3://`` URLs may name.
        allowed_local_roots: Folders local-files storage paths must lie under.
        local_files_root: Label Studio's ``LOCAL_FILES_DOCUMENT_ROOT``.
        max_bytes: Largest download accepted.
        max_pixels: Decompression-bomb limit for decoding.
    """

    label_studio: LabelStudioClient | None
    s3_client: Callable[[], Any] | None = None
    allowed_buckets: frozenset[str] = frozenset()
    allowed_local_roots: tuple[Path, ...] = ()
    local_files_root: Path | None = None
    max_bytes: int = 512 * 2**20
    max_pixels: int = 2**30
    _s3: Any = field(default=None, init=False, repr=False)

    def fetch(self, url: str, pixel_size_um: float | None = None) -> BSEImage:
        """Download and decode the image at ``url`` (a task's data value).

        Raises:
            ImageSourceError: if the URL is not allowed or the download fails.
            BSEReadError: if the bytes are not a usable image.
        """
        return decode_bse(self.fetch_bytes(url), _display_name(url), pixel_size_um, self.max_pixels)

    def fetch_bytes(self, url: str) -> bytes:
        """The raw bytes behind an allowed task URL (see module docstring)."""
        if not isinstance(url, str) or not url.strip():
            raise ImageSourceError(f"task image URL is missing or empty: {url!r}")
        parts = urlsplit(url.strip())
        if parts.scheme == "s3":
            return self._from_s3(parts.netloc, parts.path.lstrip("/"), url)
        if parts.scheme in ("", "http", "https") and url.startswith(("/", "http://", "https://")):
            if "/presign/" in parts.path or "/resolve/" in parts.path:
                return self.fetch_bytes(_unwrap_fileuri(url, parts.query))
            if ".." in unquote(parts.path).split("/") or not parts.path.startswith("/data/"):
                raise ImageSourceError(f"refusing to fetch {url!r}: only Label Studio data paths (/data/...) are fetched")
            if parts.path.rstrip("/") == "/data/local-files":
                self._check_local_file(parts.query, url)
            return self._from_label_studio(url)
        raise ImageSourceError(
            f"refusing to fetch {url!r}: only Label Studio uploads/local files on the configured host and "
            "s3:// URLs in allowed buckets are fetched"
        )

    def _from_label_studio(self, url: str) -> bytes:
        if self.label_studio is None:
            raise ImageSourceError(f"cannot fetch {url!r}: LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY are not set")
        try:
            return self.label_studio.download(url, max_bytes=self.max_bytes)
        except ValueError as exc:  # the client's same-host / traversal guard
            raise ImageSourceError(str(exc)) from None
        except RuntimeError as exc:  # LabelStudioError: HTTP status with message
            raise ImageSourceError(f"Label Studio refused {url!r}: {exc}") from None

    def _check_local_file(self, query: str, url: str) -> None:
        relative = parse_qs(query).get("d", [""])[0]
        if not relative:
            raise ImageSourceError(f"local-files URL {url!r} names no file (missing ?d=)")
        if not self.allowed_local_roots or self.local_files_root is None:
            raise ImageSourceError(
                f"refusing local file {relative!r}: set LOCAL_FILES_DOCUMENT_ROOT and SCRAIBER_ALLOWED_LOCAL_ROOTS "
                "to the folders Label Studio serves"
            )
        normal = posixpath.normpath("/" + unquote(relative)).lstrip("/")
        target = Path(self.local_files_root, normal).resolve()
        if ".." in PurePosixPath(unquote(relative)).parts or not any(
            target.is_relative_to(root.resolve()) for root in self.allowed_local_roots
        ):
            raise ImageSourceError(f"refusing local file {relative!r}: not under an allowed local root")

    def _from_s3(self, bucket: str, key: str, url: str) -> bytes:
        if bucket not in self.allowed_buckets:
            raise ImageSourceError(
                f"refusing {url!r}: bucket {bucket!r} is not in SCRAIBER_ALLOWED_BUCKETS "
                f"({', '.join(sorted(self.allowed_buckets)) or 'none allowed'})"
            )
        if not key or ".." in PurePosixPath(key).parts:
            raise ImageSourceError(f"refusing {url!r}: bad object key")
        if self.s3_client is None:
            raise ImageSourceError(f"cannot fetch {url!r}: S3 is not configured (AWS_* variables)")
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._s3 = self._s3 or self.s3_client()
            obj = self._s3.get_object(Bucket=bucket, Key=key)
            if obj["ContentLength"] > self.max_bytes:
                obj["Body"].close()
                raise ImageSourceError(f"{url}: {obj['ContentLength']} bytes exceed the limit of {self.max_bytes}")
            return obj["Body"].read()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            raise ImageSourceError(f"S3 refused {url!r}: {code}") from None
        except BotoCoreError as exc:
            raise ImageSourceError(f"cannot reach S3 for {url!r}: {exc}") from None


def _unwrap_fileuri(url: str, query: str) -> str:
    encoded = parse_qs(query).get("fileuri", [""])[0]
    try:
        inner = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ImageSourceError(f"cannot decode the storage URI in {url!r}") from None
    if not inner.startswith("s3://"):
        raise ImageSourceError(f"refusing {url!r}: only s3:// storage URIs are supported, got {inner!r}")
    return inner


def _display_name(url: str) -> str:
    parts = urlsplit(url)
    d = parse_qs(parts.query).get("d")
    return d[0] if d else (parts.path or url)
