"""S3 credentials come from boto3's default chain: temporary credentials (session token) and profiles,
against a real SeaweedFS whose STS hands out temporary credentials it accepts only with their token."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from active_learning.store import ArtefactAccessError, open_store
from ml_backend.image_source import image_source_from
from scraiber.settings import Settings

pytestmark = pytest.mark.slow
AWS_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")  # fmt: skip


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No AWS variables and no shared AWS files but those a test writes."""
    for name in AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.chdir(tmp_path)  # no .env of the repository
    return monkeypatch


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_temporary_credentials_from_the_environment(s3_server, aws_env) -> None:
    bucket = s3_server.make_bucket("temporary-credentials")
    s3_server.client().put_object(Bucket=bucket, Key="field.png", Body=_png())
    credentials = s3_server.temporary_credentials()
    aws_env.setenv("AWS_ENDPOINT_URL_S3", s3_server.endpoint_url)
    aws_env.setenv("AWS_ACCESS_KEY_ID", credentials["AccessKeyId"])
    aws_env.setenv("AWS_SECRET_ACCESS_KEY", credentials["SecretAccessKey"])
    aws_env.setenv("AWS_SESSION_TOKEN", credentials["SessionToken"])
    aws_env.setenv("SCRAIBER_ALLOWED_BUCKETS", bucket)
    settings = Settings()

    store = open_store(f"s3://{bucket}/labels/{uuid.uuid4().hex}", settings)
    store.put_bytes("a.bin", b"temporary")
    assert store.get_bytes("a.bin") == b"temporary"
    assert image_source_from(settings).fetch(f"s3://{bucket}/field.png").pixels.shape == (64, 64)

    # the server really checks the token: the same keys without it are refused
    aws_env.delenv("AWS_SESSION_TOKEN")
    with pytest.raises(ArtefactAccessError, match="access denied"):
        open_store(f"s3://{bucket}/labels/x", Settings()).get_bytes("a.bin")


def test_profile_credentials_and_region_from_the_shared_files(s3_server, aws_env, tmp_path: Path) -> None:
    bucket = s3_server.make_bucket("profile-credentials")
    credentials = s3_server.temporary_credentials("profile-session")
    (tmp_path / "aws-credentials").write_text(
        "[scraiber-lab]\n"
        f"aws_access_key_id = {credentials['AccessKeyId']}\n"
        f"aws_secret_access_key = {credentials['SecretAccessKey']}\n"
        f"aws_session_token = {credentials['SessionToken']}\n"
    )
    (tmp_path / "aws-config").write_text("[profile scraiber-lab]\nregion = eu-central-1\n")
    aws_env.setenv("AWS_PROFILE", "scraiber-lab")
    aws_env.setenv("AWS_ENDPOINT_URL_S3", s3_server.endpoint_url)
    store = open_store(f"s3://{bucket}/p", Settings())

    assert store._client.meta.region_name == "eu-central-1"  # the profile's, not an invented us-east-1
    store.put_bytes("b.bin", b"profile")
    assert s3_server.client().get_object(Bucket=bucket, Key="p/b.bin")["Body"].read() == b"profile"
