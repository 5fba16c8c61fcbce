"""Task image URLs: only Label Studio's host, allowed buckets and allowed local roots."""

import base64

import pytest

from ml_backend.image_source import ImageSource, ImageSourceError
from ml_backend.label_studio import LabelStudioClient


@pytest.fixture
def source(tmp_path) -> ImageSource:
    root = tmp_path / "served"
    (root / "thin-sections").mkdir(parents=True)
    return ImageSource(
        label_studio=LabelStudioClient("http://127.0.0.1:9", "0123456789abcdef"),
        allowed_buckets=frozenset({"sections"}),
        allowed_local_roots=(root / "thin-sections",),
        local_files_root=root,
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "missing or empty"),
        ("file:///etc/passwd", "refusing"),
        ("/etc/passwd", "only Label Studio data paths"),
        ("/api/projects", "only Label Studio data paths"),
        ("http://169.254.169.254/data/upload/1/x.png", "only URLs on Label Studio"),
        ("http://127.0.0.1:8080/data/upload/1/x.png", "only URLs on Label Studio"),
        ("ftp://example.org/x.tif", "refusing"),
        ("s3://other-bucket/x.tif", "not in SCRAIBER_ALLOWED_BUCKETS"),
        ("s3://sections/../secret.tif", "bad object key"),
        ("/data/local-files/?d=etc/passwd", "not under an allowed local root"),
        ("/data/local-files/?d=thin-sections/../../etc/passwd", "'..' in the local file path"),
        ("/data/local-files/?d=", "names no file"),
        ("/data/upload/../../etc/passwd", "'..' and empty path segments are not allowed"),
        ("/data/upload/%2e%2e/%2e%2e/etc/passwd", "'..' and empty path segments are not allowed"),
    ],
)
def test_refused_urls(source, url, message):
    with pytest.raises(ImageSourceError, match=message):
        source.fetch_bytes(url)


def test_presigned_wrapper_is_unwrapped_and_checked(source):
    fileuri = base64.urlsafe_b64encode(b"s3://other-bucket/field.tif").decode()
    with pytest.raises(ImageSourceError, match="other-bucket"):
        source.fetch_bytes(f"/tasks/3/presign/?fileuri={fileuri}")
    http = base64.urlsafe_b64encode(b"http://evil.example/x.png").decode()
    with pytest.raises(ImageSourceError, match="only s3://"):
        source.fetch_bytes(f"/tasks/3/presign/?fileuri={http}")


def test_without_label_studio_or_s3_configured():
    bare = ImageSource(label_studio=None, allowed_buckets=frozenset({"b"}))
    with pytest.raises(ImageSourceError, match="LABEL_STUDIO_URL"):
        bare.fetch_bytes("/data/upload/1/x.png")
    with pytest.raises(ImageSourceError, match="S3 is not configured"):
        bare.fetch_bytes("s3://b/x.png")
    with pytest.raises(ImageSourceError, match="SCRAIBER_ALLOWED_LOCAL_ROOTS"):
        bare.fetch_bytes("/data/local-files/?d=a/b.png")
