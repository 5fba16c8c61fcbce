"""Task images fetched the way Label Studio stores them: local-files storage through the Label
Studio URL (real Label Studio), and ``s3://`` objects with the configured credentials (real SeaweedFS)."""

from __future__ import annotations

import imagecodecs
import numpy as np
import pytest
from pydantic import SecretStr

from ml_backend.image_source import ImageSource, ImageSourceError, image_source_from
from ml_backend.label_studio import LabelStudioClient
from scraiber.settings import Settings

pytestmark = pytest.mark.slow


def _field() -> np.ndarray:
    return np.random.default_rng(3).integers(0, 60000, (48, 64), dtype=np.uint16)


def test_local_files_storage_through_label_studio(label_studio):
    folder = label_studio.local_files_root / "sections"
    folder.mkdir(exist_ok=True)
    (folder / "field.png").write_bytes(imagecodecs.png_encode(_field()))
    project = label_studio.client.create_project("Local files", "<View><Image name='image' value='$image'/></View>")
    label_studio.client.create_local_storage(project["id"], folder, "sections")
    source = ImageSource(
        LabelStudioClient(label_studio.url, label_studio.api_key),
        allowed_local_roots=(folder,),
        local_files_root=label_studio.local_files_root,
    )
    image = source.fetch("/data/local-files/?d=sections/field.png")
    np.testing.assert_array_equal(image.pixels, _field())
    (label_studio.local_files_root / "private.png").write_bytes(imagecodecs.png_encode(_field()))
    with pytest.raises(ImageSourceError, match="not under an allowed local root"):
        source.fetch("/data/local-files/?d=private.png")


def test_s3_objects_with_the_configured_credentials(s3_server, tmp_path):
    s3_server.make_bucket("thin-sections")
    s3_server.make_bucket("other-bucket")
    body = imagecodecs.png_encode(_field())
    for bucket in ("thin-sections", "other-bucket"):
        s3_server.client().put_object(Bucket=bucket, Key="sample-7/field.png", Body=body)
    settings = Settings(
        SCRAIBER_DATA_DIR=tmp_path,
        SCRAIBER_ALLOWED_BUCKETS="thin-sections",
        AWS_ENDPOINT_URL_S3=s3_server.endpoint_url,
        AWS_ACCESS_KEY_ID=s3_server.access_key_id,
        AWS_SECRET_ACCESS_KEY=s3_server.secret_access_key,
        AWS_DEFAULT_REGION=s3_server.region,
    )
    source = image_source_from(settings)
    np.testing.assert_array_equal(source.fetch("s3://thin-sections/sample-7/field.png").pixels, _field())
    with pytest.raises(ImageSourceError, match="not in SCRAIBER_ALLOWED_BUCKETS"):
        source.fetch("s3://other-bucket/sample-7/field.png")
    with pytest.raises(ImageSourceError, match="NoSuchKey|404"):
        source.fetch("s3://thin-sections/sample-7/missing.png")
    wrong = image_source_from(settings.model_copy(update={"aws_secret_access_key": SecretStr("not-the-secret")}))
    with pytest.raises(ImageSourceError, match="S3 refused"):
        wrong.fetch("s3://thin-sections/sample-7/field.png")
