"""Fetching a task's image the way Label Studio stores it, and nothing else.

Allowed (every URL is read by :func:`~ml_backend.label_studio_urls.parse_file_url`, the one
parser of Label Studio file URLs, exactly as Label Studio resolves them):

* uploads (``/data/upload/...``, or the same on the configured Label Studio host), fetched
  with the API key;
* local-files storage (``/data/local-files/?d=PATH``) through the Label Studio URL, when
  ``LOCAL_FILES_DOCUMENT_ROOT``/``PATH`` (as Label Studio normalises it) lies under an allowed
  local root;
* ``s3://BUCKET/KEY`` (and Label Studio's ``/tasks/ID/resolve/?fileuri=...`` wrapping of it)
  when the bucket is allowed, with the configured S3 credentials.

Everything else (other hosts, ``file://``, other Label Studio paths, traversal, repeated
parameters, redirects) is refused with an ``ImageSourceError`` naming the URL: task data
never makes the backend fetch an arbitrary URL or read an arbitrary file. The request sent
to Label Studio is rebuilt from the parsed URL, so what was checked is what is fetched.

Each image is sized from its header before it is decoded, and its decoding and prediction
reserve that much of the :class:`~ml_backend.memory_budget.MemoryBudget` (:meth:`ImageSource.open`).
Error messages name the URL and the HTTP status or S3 error code, never an S3 endpoint,
Label Studio's own error text or the file's bytes (those go to the backend log).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from ml_backend.bse_io import BSEImage, decode_bse, probe_bse
from ml_backend.label_studio import LabelStudioClient, LabelStudioError
from ml_backend.label_studio_urls import LOCAL_FILES, STORAGE, FileURL, FileURLError, parse_file_url
from ml_backend.memory_budget import MemoryBudget
from ml_backend.s3 import s3_client_from

if TYPE_CHECKING:
    from ml_backend.settings_protocols import ImageSettings

log = logging.getLogger(__name__)


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
        budget: Memory budget each decoded image reserves (None: only ``max_pixels`` applies).
    """

    label_studio: LabelStudioClient | None
    s3_client: Callable[[], Any] | None = None
    allowed_buckets: frozenset[str] = frozenset()
    allowed_local_roots: tuple[Path, ...] = ()
    local_files_root: Path | None = None
    max_bytes: int = 512 * 2**20
    max_pixels: int = 2**30
    budget: MemoryBudget | None = None
    _s3: Any = field(default=None, init=False, repr=False)
    _s3_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def fetch(self, url: str, pixel_size_um: float | None = None) -> BSEImage:
        """Download and decode the image at ``url`` (a task's data value).

        Raises:
            ImageSourceError: if the URL is not allowed or the download fails.
            BSEReadError: if the bytes are not a usable image.
            ImageTooLargeError: if predicting it would exceed the memory budget.
        """
        with self.open(url, pixel_size_um) as image:
            return image

    @contextmanager
    def open(self, url: str, pixel_size_um: float | None = None) -> Iterator[BSEImage]:
        """The decoded image at ``url``, its memory reserved in the budget until the block ends.

        The image is sized from its header first; one that does not fit the budget is
        refused before any pixel is decoded (see :mod:`ml_backend.memory_budget`).
        """
        data = self.fetch_bytes(url)
        name = _display_name(url)
        if self.budget is None:
            yield decode_bse(data, name, pixel_size_um, self.max_pixels)
            return
        with self.budget.reserve(probe_bse(data, name), name):
            image = decode_bse(data, name, pixel_size_um, self.max_pixels)
            del data
            yield image

    def fetch_bytes(self, url: str) -> bytes:
        """The raw bytes behind an allowed task URL (see module docstring)."""
        if isinstance(url, str) and urlsplit(url.strip()).scheme == "s3":
            parts = urlsplit(url.strip())
            return self._from_s3(parts.netloc, parts.path.lstrip("/"), url)
        base = self.label_studio.url if self.label_studio is not None else None
        try:
            ref = parse_file_url(url, base)
        except FileURLError as exc:
            raise ImageSourceError(str(exc)) from None
        if ref.kind == STORAGE:
            return self._from_storage_uri(ref, url)
        if ref.kind == LOCAL_FILES:
            self._check_local_file(ref, url)
        return self._from_label_studio(ref, url)

    def _from_label_studio(self, ref: FileURL, url: str) -> bytes:
        if self.label_studio is None:
            raise ImageSourceError(f"cannot fetch {url!r}: LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY are not set")
        try:
            return self.label_studio.download(ref.target, max_bytes=self.max_bytes, follow_redirects=False)
        except ValueError as exc:  # the client's size limit or same-host guard
            raise ImageSourceError(str(exc)) from None
        except LabelStudioError as exc:  # Label Studio's own text stays in the log
            log.warning("fetching %r from Label Studio failed: %s", url, exc)
            status = f"HTTP {exc.status_code}" if exc.status_code else "unreachable"
            raise ImageSourceError(f"Label Studio refused {url!r} ({status})") from None

    def _check_local_file(self, ref: FileURL, url: str) -> None:
        if ref.local_path is None:
            raise ImageSourceError(f"{url!r} names no local file")
        if not self.allowed_local_roots or self.local_files_root is None:
            raise ImageSourceError(
                f"refusing local file {ref.local_path!r}: set LOCAL_FILES_DOCUMENT_ROOT and SCRAIBER_ALLOWED_LOCAL_ROOTS "
                "to the folders Label Studio serves"
            )
        target = Path(self.local_files_root, ref.local_path).resolve()  # symlinks followed, as Label Studio does
        if not any(target.is_relative_to(root.resolve()) for root in self.allowed_local_roots):
            raise ImageSourceError(f"refusing local file {ref.local_path!r}: not under an allowed local root")

    def _from_storage_uri(self, ref: FileURL, url: str) -> bytes:
        inner = ref.storage_uri or ""
        if not inner.startswith("s3://"):
            raise ImageSourceError(f"refusing {url!r}: only s3:// storage URIs are supported, got {inner[:200]!r}")
        parts = urlsplit(inner)
        return self._from_s3(parts.netloc, parts.path.lstrip("/"), inner)

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
            with self._s3_lock:  # boto3 clients are thread-safe, creating one is not
                self._s3 = self._s3 or self.s3_client()
            obj = self._s3.get_object(Bucket=bucket, Key=key)
            if obj["ContentLength"] > self.max_bytes:
                obj["Body"].close()
                raise ImageSourceError(f"{url}: {obj['ContentLength']} bytes exceed the limit of {self.max_bytes}")
            return obj["Body"].read()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            raise ImageSourceError(f"S3 refused {url!r}: {code}") from None
        except BotoCoreError as exc:  # its message names the endpoint: logged, not returned
            log.warning("fetching %r from S3 failed: %s", url, exc)
            raise ImageSourceError(f"cannot reach S3 for {url!r} ({type(exc).__name__}; see the backend log)") from None


def _display_name(url: str) -> str:
    parts = urlsplit(url.strip())
    try:
        return parse_file_url(urlunsplit(("", "", parts.path, parts.query, "")), None).name
    except FileURLError:
        return parts.path or url


def image_source_from(settings: ImageSettings, budget: MemoryBudget | None = None) -> ImageSource:
    """Where task images may come from, as configured (each decoded image reserves ``budget``)."""
    client = None
    if settings.label_studio_api_key is not None:
        client = LabelStudioClient(settings.label_studio_url, settings.label_studio_api_key.get_secret_value())
    return ImageSource(
        label_studio=client,
        s3_client=(lambda: s3_client_from(settings)) if settings.allowed_buckets else None,
        allowed_buckets=frozenset(settings.allowed_buckets),
        allowed_local_roots=tuple(settings.allowed_local_roots),
        local_files_root=settings.local_files_document_root,
        max_pixels=settings.max_image_pixels,
        budget=budget,
    )
