"""Artefact store in an S3 bucket (AWS, SeaweedFS, MinIO, ...) through boto3."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from active_learning.store.base import (
    ArtefactAccessError,
    ArtefactNotFoundError,
    ArtefactStore,
    ArtefactStoreUnavailableError,
    atomic_file,
    validate_key,
    validate_metadata,
)
from ml_backend.s3 import s3_client

_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_NOT_FOUND = {"NoSuchKey", "NotFound", "404"}
_DENIED = {"AccessDenied", "403", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken"}
_T = TypeVar("_T")


class S3ArtefactStore(ArtefactStore):
    """Artefacts as objects ``prefix/key`` in ``bucket``.

    Args:
        bucket: Bucket name (3-63 lower-case letters, digits, dots, hyphens).
        prefix: Key prefix inside the bucket (no leading or trailing ``/`` needed).
        endpoint_url: S3 endpoint for a non-AWS server (SeaweedFS, MinIO); ``None`` for AWS.
        access_key_id: Access key; ``None`` leaves boto3 its default credential chain
            (environment with ``AWS_SESSION_TOKEN``, ``AWS_PROFILE``, roles...).
        secret_access_key: Secret key (never logged or put in messages).
        session_token: Session token of temporary credentials given with the keys.
        region: Region name used for signing (None: boto3's default).
        profile: Named AWS profile (None: ``AWS_PROFILE`` or ``default``).
        create_bucket: Create the bucket on the first write if it does not exist.
        client: A ready boto3 S3 client (then the credential arguments are not used).

    Raises:
        ValueError: if the bucket name or prefix is invalid.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        region: str | None = None,
        profile: str | None = None,
        create_bucket: bool = False,
        client: Any = None,
    ) -> None:
        if not _BUCKET_NAME.match(bucket) or ".." in bucket:
            raise ValueError(f"invalid S3 bucket name {bucket!r}: use 3-63 lower-case letters, digits, '.' and '-'")
        prefix = prefix.strip("/")
        if prefix:
            validate_key(prefix)
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint_url = endpoint_url
        self.create_bucket = create_bucket
        self._client = client or s3_client(
            endpoint_url, region=region, access_key_id=access_key_id, secret_access_key=secret_access_key,
            session_token=session_token, profile=profile,
        )  # fmt: skip

    def __repr__(self) -> str:
        return f"S3ArtefactStore({self._location('')!r}, endpoint_url={self.endpoint_url!r})"

    def _key(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _where(self) -> str:
        return f" at {self.endpoint_url}" if self.endpoint_url else ""

    @contextmanager
    def _errors(self, action: str, key: str) -> Iterator[None]:
        """Turn boto errors into store errors whose message names the bucket and key."""
        target = self._location(key)
        try:
            yield
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code == "NoSuchBucket":
                raise ArtefactNotFoundError(
                    f"cannot {action} {target}: bucket {self.bucket!r} does not exist{self._where()}"
                ) from exc
            if code in _NOT_FOUND:
                raise ArtefactNotFoundError(f"no artefact {target}{self._where()}") from exc
            if code in _DENIED:
                raise ArtefactAccessError(
                    f"cannot {action} {target}{self._where()}: access denied ({code}); "
                    "check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket's permissions"
                ) from exc
            raise OSError(f"cannot {action} {target}{self._where()}: {code} {exc}") from exc
        except EndpointConnectionError as exc:
            raise ArtefactStoreUnavailableError(
                f"cannot {action} {target}: S3 endpoint {exc.kwargs.get('endpoint_url', self.endpoint_url)} "
                "is unreachable; check AWS_ENDPOINT_URL and that the server runs"
            ) from exc
        except BotoCoreError as exc:
            raise ArtefactStoreUnavailableError(f"cannot {action} {target}{self._where()}: {exc}") from exc

    def _write(self, action: str, key: str, write: Callable[[], _T]) -> _T:
        """Run ``write``; if the bucket is missing and may be created, create it and retry once."""
        try:
            with self._errors(action, key):
                return write()
        except ArtefactNotFoundError:  # a write can only miss the bucket
            if not self.create_bucket:
                raise
        self._create_bucket(key)
        with self._errors(action, key):
            return write()

    def _create_bucket(self, key: str) -> None:
        # AWS wants the region named outside us-east-1; another writer may have created it meanwhile
        region = self._client.meta.region_name
        options = {} if region in (None, "us-east-1") else {"CreateBucketConfiguration": {"LocationConstraint": region}}
        with self._errors("create the bucket for", key):
            try:
                self._client.create_bucket(Bucket=self.bucket, **options)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
                    raise

    def put_bytes(self, key: str, data: bytes, metadata: Mapping[str, str] | None = None) -> None:  # noqa: D102
        name, checked = self._key(key), validate_metadata(metadata)
        self._write(
            "write",
            key,
            lambda: self._client.put_object(Bucket=self.bucket, Key=name, Body=bytes(data), Metadata=checked),
        )

    def get_bytes(self, key: str) -> bytes:  # noqa: D102
        with self._errors("read", key):
            response = self._client.get_object(Bucket=self.bucket, Key=self._key(key))
            with response["Body"] as body:
                return body.read()

    def get_metadata(self, key: str) -> dict[str, str]:  # noqa: D102
        with self._errors("read metadata of", key):
            return dict(self._client.head_object(Bucket=self.bucket, Key=self._key(key))["Metadata"])

    def put_file(self, key: str, path: str | os.PathLike) -> None:  # noqa: D102
        name = self._key(key)

        def upload() -> None:
            with open(path, "rb") as source:
                self._client.upload_fileobj(source, self.bucket, name)

        self._write("upload to", key, upload)

    def get_file(self, key: str, dest: str | os.PathLike) -> Path:  # noqa: D102
        dest, name = Path(dest), self._key(key)
        with self._errors("download", key), atomic_file(dest) as handle:
            self._client.download_fileobj(self.bucket, name, handle)
        return dest

    def exists(self, key: str) -> bool:  # noqa: D102
        try:
            self.get_metadata(key)
        except ArtefactNotFoundError:
            return False
        return True

    def list(self, prefix: str = "") -> list[str]:  # noqa: D102
        validate_key(prefix, prefix=True)
        base = f"{self.prefix}/" if self.prefix else ""
        keys: list[str] = []
        with self._errors("list", prefix):
            for page in self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=base + prefix
            ):
                keys.extend(item["Key"][len(base) :] for item in page.get("Contents", []))
        return sorted(keys)

    def delete(self, key: str) -> None:  # noqa: D102
        with self._errors("delete", key):
            self._client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def uri(self, key: str) -> str:  # noqa: D102
        return self._location(validate_key(key))

    def _location(self, key: str) -> str:
        path = "/".join(part for part in (self.prefix, key) if part)
        return f"s3://{self.bucket}/{path}"
