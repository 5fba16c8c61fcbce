"""Artefact stores (local folder or S3 bucket) for datasets, harvested labels, masks and models.

Pick one by URI with :func:`open_store`::

    store = open_store(settings.resolved_artefact_uri, settings)
    store.put_arrays("datasets/v3/val.npz", {"image": x, "mask": y})
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlsplit

from active_learning.store.base import (
    ArtefactAccessError,
    ArtefactNotFoundError,
    ArtefactStore,
    ArtefactStoreUnavailableError,
    validate_key,
)
from active_learning.store.local import LocalArtefactStore
from active_learning.store.s3 import S3ArtefactStore
from ml_backend.s3 import s3_client_from
from ml_backend.settings_protocols import S3Settings

__all__ = [
    "ArtefactAccessError",
    "ArtefactNotFoundError",
    "ArtefactStore",
    "ArtefactStoreUnavailableError",
    "LocalArtefactStore",
    "S3ArtefactStore",
    "open_store",
    "validate_key",
]


def _open_s3(uri: str, settings: S3Settings, create_bucket: bool) -> ArtefactStore:
    parts = urlsplit(uri)
    if not parts.netloc:
        raise ValueError(f"S3 artefact URI {uri!r} has no bucket; write s3://BUCKET/PREFIX")
    return S3ArtefactStore(
        parts.netloc,
        parts.path,
        endpoint_url=settings.s3_endpoint_url,
        create_bucket=create_bucket,
        client=s3_client_from(settings),
    )


def _open_file(uri: str, settings: S3Settings, create_bucket: bool) -> ArtefactStore:
    parts = urlsplit(uri)
    if parts.netloc not in ("", "localhost"):
        raise ValueError(f"file URI {uri!r} names host {parts.netloc!r}; only local files (file:///path) work")
    return LocalArtefactStore(Path(unquote(parts.path)))


_SCHEMES: dict[str, Callable[[str, S3Settings, bool], ArtefactStore]] = {"s3": _open_s3, "file": _open_file}


def open_store(uri: str, settings: S3Settings, *, create_bucket: bool = False) -> ArtefactStore:
    """Open the artefact store named by ``uri``.

    Args:
        uri: ``s3://bucket/prefix``, ``file:///abs/path`` or a plain local path.
        settings: Source of the S3 endpoint, region, profile and any explicit keys
            (:func:`ml_backend.s3.s3_client_from`; boto3's credential chain otherwise).
        create_bucket: For S3, create the bucket on the first write if it is missing.

    Raises:
        ValueError: for an unknown scheme (the message lists the valid ones) or an S3
            URI without a bucket.
    """
    scheme = urlsplit(uri).scheme
    if len(scheme) <= 1:  # no scheme, or a Windows drive letter
        return LocalArtefactStore(Path(uri))
    if scheme not in _SCHEMES:
        valid = ", ".join(f"{name}://" for name in sorted(_SCHEMES))
        raise ValueError(f"unknown artefact store URI scheme {scheme!r} in {uri!r}; use {valid} or a local path")
    return _SCHEMES[scheme](uri, settings, create_bucket)
