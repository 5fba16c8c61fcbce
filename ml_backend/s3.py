"""The one place scrAiber makes a boto3 S3 client.

Credentials and region come from boto3's default chain: ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` / ``AWS_SESSION_TOKEN`` (temporary credentials), ``AWS_PROFILE``
and the shared config and credentials files, SSO, web identity, container and instance
roles. Settings that carry keys (read from a ``.env`` file, or given in code) are passed
as a whole, the session token with them, exactly as boto3 takes them from the
environment; nothing else is filled in, so no region is invented (a custom endpoint such as
SeaweedFS or MinIO signs with ``us-east-1`` when no region is configured, as boto3 does).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ml_backend.settings_protocols import S3Settings


def s3_client(
    endpoint_url: str | None = None,
    *,
    region: str | None = None,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    session_token: str | None = None,
    profile: str | None = None,
    connect_timeout: float = 5,
    read_timeout: float = 60,
    max_attempts: int = 3,
) -> Any:
    """A boto3 S3 client; every argument left None is boto3's own default.

    Args:
        endpoint_url: S3 endpoint of a non-AWS server; path-style addressing is used there,
            as it works with any host name (compose service names, IPs).
        region: Signing region (None: ``AWS_DEFAULT_REGION``/``AWS_REGION`` or the profile's).
        access_key_id, secret_access_key, session_token: Explicit credentials, all or none
            of the first two (None: the default credential chain).
        profile: Named profile of the shared AWS files (None: ``AWS_PROFILE`` or ``default``).
        connect_timeout, read_timeout, max_attempts: Network behaviour.

    Raises:
        ValueError: one of the key id and the secret is given without the other.
    """
    import boto3
    from botocore.config import Config

    if (access_key_id is None) != (secret_access_key is None):
        raise ValueError("give both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither (boto3's credential chain)")
    session = boto3.session.Session(
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret_access_key,
        aws_session_token=session_token if access_key_id is not None else None,
        region_name=region,
        profile_name=profile,
    )
    config = Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"max_attempts": max_attempts, "mode": "standard"},
        s3={"addressing_style": "path"} if endpoint_url else {},
        # checksums only where S3 requires them, which every S3-compatible server accepts
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return session.client("s3", endpoint_url=endpoint_url, config=config)


def s3_client_from(settings: S3Settings, **network: Any) -> Any:
    """:func:`s3_client` with the endpoint, region, profile and any explicit keys of ``settings``."""
    secret = settings.aws_secret_access_key.get_secret_value() if settings.aws_secret_access_key else None
    token = settings.aws_session_token.get_secret_value() if settings.aws_session_token else None
    return s3_client(
        settings.s3_endpoint_url,
        region=settings.aws_region,
        access_key_id=settings.aws_access_key_id,
        secret_access_key=secret,
        session_token=token,
        profile=settings.aws_profile,
        **network,
    )
