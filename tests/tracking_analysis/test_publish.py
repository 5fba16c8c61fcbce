"""``scraiber publish --zenodo``: the deposition client against a local server implementing
the documented subset of Zenodo's REST API (``fake_zenodo.py``; Zenodo itself cannot be reached here)."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from scraiber.cli import main
from scraiber.settings import Settings
from tests.tracking_analysis.fake_zenodo import FakeZenodo
from tests.tracking_analysis.packages import CREATOR, export_session, session_images
from tracking_analysis.zenodo import ZenodoClient, ZenodoError

TOKEN = "zenodo-test-token-not-a-secret-4f1c"


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("publish")
    out = root / "package"
    export_session(out, session_images(root / "images"), "--creator", CREATOR, "--related", "10.1234/example.5678")
    return out


@pytest.fixture
def zenodo() -> Iterator[FakeZenodo]:
    server = FakeZenodo(TOKEN).start()
    yield server
    server.stop()


def publish(package: Path, zenodo: FakeZenodo, *args: str, token: str = TOKEN):
    settings = Settings(_env_file=None, zenodo_token=token, zenodo_url=f"{zenodo.url}/api")
    return CliRunner().invoke(
        main, ["publish", str(package), "--zenodo", "--sandbox", *args], obj={"settings": settings}
    )


def test_publish_leaves_a_draft_with_metadata_and_the_archive(package: Path, zenodo: FakeZenodo) -> None:
    result = publish(package, zenodo)
    assert result.exit_code == 0, result.output
    (deposition,) = zenodo.depositions.values()
    assert deposition.state == "unsubmitted"  # publishing stays a deliberate --publish
    assert deposition.metadata == json.loads((package / ".zenodo.json").read_text())
    archive_name = "scraiber-labels-project-1-1.0.0.zip"
    assert sorted(deposition.files) == ["README.md", archive_name]
    with zipfile.ZipFile(io.BytesIO(deposition.files[archive_name])) as archive:
        assert "datapackage.json" in archive.namelist() and "labels/task-1_annotation-1_label.png" in archive.namelist()
        assert archive.read("data/labels.csv") == (package / "data" / "labels.csv").read_bytes()
    assert (
        f"Zenodo deposition {deposition.id}: draft" in result.output
        and f"10.5072/zenodo.{deposition.id}" in result.output
    )
    # the documented order: create, metadata, uploads, then a look at the draft; the token only ever in the header
    assert [(m, p.split("/")[2]) for m, p, _ in zenodo.requests] == [
        ("POST", "deposit"),
        ("PUT", "deposit"),
        ("PUT", "files"),
        ("PUT", "files"),
        ("GET", "deposit"),
    ]
    assert all(auth == f"Bearer {TOKEN}" and TOKEN not in path for _, path, auth in zenodo.requests)


def test_publish_flag_publishes(package: Path, zenodo: FakeZenodo) -> None:
    result = publish(package, zenodo, "--publish")
    assert result.exit_code == 0, result.output
    (deposition,) = zenodo.depositions.values()
    assert deposition.state == "done" and "published; DOI 10.5072/zenodo." in result.output


def test_wrong_token_and_refused_metadata(package: Path, zenodo: FakeZenodo) -> None:
    result = publish(package, zenodo, token="wrong-token-0000")
    assert result.exit_code == 1 and "HTTP 401" in result.output and "wrong-token-0000" not in result.output
    with ZenodoClient(f"{zenodo.url}/api", TOKEN) as client:
        draft = client.create()
        with pytest.raises(ZenodoError, match=r"HTTP 400: Validation error. \(metadata.creators: Field is required.\)"):
            client.set_metadata(draft, {**json.loads((package / ".zenodo.json").read_text()), "creators": []})
        with pytest.raises(ZenodoError, match="files: Minimum one file"):
            client.publish(draft)
    assert "token" not in repr(client) and TOKEN not in repr(client)


def test_upload_checksum_is_verified(
    package: Path, zenodo: FakeZenodo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"payload")
    with ZenodoClient(f"{zenodo.url}/api", TOKEN) as client:
        draft = client.create()
        assert client.upload(draft, path)["checksum"] == f"md5:{hashlib.md5(b'payload').hexdigest()}"
        monkeypatch.setattr("tracking_analysis.zenodo._md5", lambda _: "0" * 32)  # as if the bytes changed on the way
        with pytest.raises(ZenodoError, match="upload again"):
            client.upload(draft, path)


def test_a_damaged_or_anonymous_package_is_not_deposited(package: Path, zenodo: FakeZenodo, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(package, copy)
    (copy / "data" / "modes.csv").write_text("annotation_id\n1\n")
    result = publish(copy, zenodo)
    assert result.exit_code == 1 and "fails its own checks" in result.output and "data-modes.csv" in result.output
    anonymous = tmp_path / "anonymous"
    export_session(anonymous, session_images(tmp_path / "images"))
    result = publish(anonymous, zenodo)
    assert result.exit_code == 1 and "names no creators" in result.output
    assert zenodo.requests == []  # nothing reached Zenodo
