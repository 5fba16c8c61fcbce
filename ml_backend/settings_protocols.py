"""What this room reads from the settings object, as protocols.

The settings object lives in the composition room (``scraiber.settings.Settings``) and has
these fields; functions here take anything that has them, so this room never imports the
room above it (tests pass the real settings or a plain namespace).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from pydantic import SecretStr


class S3Settings(Protocol):
    """What an S3 client is made from (the composition room's settings object has these fields)."""

    s3_endpoint_url: str | None
    aws_region: str | None
    aws_access_key_id: str | None
    aws_secret_access_key: SecretStr | None
    aws_session_token: SecretStr | None
    aws_profile: str | None


class ImageSettings(S3Settings, Protocol):
    """Where task images may come from: Label Studio, S3 buckets, local folders, and the pixel limit."""

    label_studio_url: str
    label_studio_api_key: SecretStr | None
    allowed_buckets: list[str]
    allowed_local_roots: list[Path]
    local_files_document_root: Path | None
    max_image_pixels: int
