"""Artefact stores: one contract run against the local store and a real SeaweedFS S3 server."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pytest

from active_learning.store import (
    ArtefactAccessError,
    ArtefactNotFoundError,
    ArtefactStore,
    ArtefactStoreUnavailableError,
    LocalArtefactStore,
    S3ArtefactStore,
    open_store,
)
from scraiber.processes import free_port
from scraiber.settings import Settings

REPO = Path(__file__).resolve().parents[2]
BAD_KEYS = [
    "",
    "/etc/passwd",
    "../up",
    "a/../../b",
    "a/./b",
    "a//b",
    "a/",
    ".hidden",
    "a/.tmp",
    "a\\b",
    "nul\x00",
    "C:/x",
]


def _s3_store(s3_server, bucket: str = "contract", **overrides) -> S3ArtefactStore:
    """A store on the test server under a fresh prefix (``bucket`` is created unless it is not "contract")."""
    options = {
        "prefix": f"contract/{uuid.uuid4().hex}",
        "endpoint_url": s3_server.endpoint_url,
        "access_key_id": s3_server.access_key_id,
        "secret_access_key": s3_server.secret_access_key,
        "region": s3_server.region,
    } | overrides
    if bucket == "contract":
        s3_server.make_bucket(bucket)
    return S3ArtefactStore(bucket, **options)


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.slow)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtefactStore:
    """Each store kind, empty (the S3 one under a fresh prefix of a shared bucket)."""
    if request.param == "local":
        return LocalArtefactStore(tmp_path / "artefacts")
    return _s3_store(request.getfixturevalue("s3_server"))


class TestStoreContract:
    """What every :class:`ArtefactStore` guarantees."""

    def test_bytes_round_trip_and_overwrite(self, store: ArtefactStore) -> None:
        data = bytes(range(256)) * 3
        store.put_bytes("a/b/c.bin", data)
        assert store.get_bytes("a/b/c.bin") == data
        store.put_bytes("a/b/c.bin", b"new")
        assert store.get_bytes("a/b/c.bin") == b"new"

    def test_metadata_round_trip_and_reset(self, store: ArtefactStore) -> None:
        store.put_bytes("m.bin", b"x", {"source": "task-17", "content-type": "application/octet-stream"})
        assert store.get_metadata("m.bin") == {"source": "task-17", "content-type": "application/octet-stream"}
        store.put_bytes("m.bin", b"y")
        assert store.get_metadata("m.bin") == {}

    @pytest.mark.parametrize("metadata", [{"Upper": "x"}, {"name": "caf\u00e9"}, {"name": "line\nbreak"}])
    def test_bad_metadata_refused(self, store: ArtefactStore, metadata: dict) -> None:
        with pytest.raises(ValueError, match="metadata"):
            store.put_bytes("m.bin", b"x", metadata)
        assert not store.exists("m.bin")

    def test_json_round_trip(self, store: ArtefactStore) -> None:
        doc = {"classes": ["Olivine", "Fe-Ti oxide"], "iou": [0.5, 1.0], "nested": {"n": 3, "none": None}}
        store.put_json("labels/task-1.json", doc)
        assert store.get_json("labels/task-1.json") == doc

    def test_arrays_round_trip_exact(self, store: ArtefactStore) -> None:
        rng = np.random.default_rng(0)
        arrays = {
            "image": rng.integers(0, 65535, (17, 23), dtype=np.uint16),
            "mask": rng.integers(0, 6, (17, 23), dtype=np.uint8),
            "confidence": rng.random((17, 23), dtype=np.float32),
            "valid": rng.random(5) > 0.5,
        }
        store.put_arrays("datasets/v1/tile-0.npz", arrays)
        loaded = store.get_arrays("datasets/v1/tile-0.npz")
        assert sorted(loaded) == sorted(arrays)
        for name, array in arrays.items():
            assert loaded[name].dtype == array.dtype and loaded[name].shape == array.shape
            np.testing.assert_array_equal(loaded[name], array)

    def test_object_arrays_refused(self, store: ArtefactStore) -> None:
        with pytest.raises(ValueError, match="'ragged'.*object"):
            store.put_arrays("x.npz", {"ragged": np.array([[1], [1, 2]], dtype=object)})
        assert not store.exists("x.npz")

    def test_file_round_trip(self, store: ArtefactStore, tmp_path: Path) -> None:
        source = tmp_path / "weights.bin"
        source.write_bytes(np.random.default_rng(1).bytes(3 * 2**20 + 7))
        store.put_file("models/v1/weights.bin", source)
        dest = store.get_file("models/v1/weights.bin", tmp_path / "out" / "w.bin")
        assert dest == tmp_path / "out" / "w.bin"
        assert dest.read_bytes() == source.read_bytes()
        assert [p.name for p in dest.parent.iterdir()] == ["w.bin"]

    def test_exists_list_delete(self, store: ArtefactStore) -> None:
        for key in ["b/2.txt", "a/1.txt", "ab.txt", "a/sub/3.txt"]:
            store.put_bytes(key, key.encode())
        assert store.exists("a/1.txt") and not store.exists("a/9.txt") and not store.exists("a")
        assert store.list() == ["a/1.txt", "a/sub/3.txt", "ab.txt", "b/2.txt"]
        assert store.list("a/") == ["a/1.txt", "a/sub/3.txt"]
        assert store.list("a") == ["a/1.txt", "a/sub/3.txt", "ab.txt"]
        assert store.list("a/s") == ["a/sub/3.txt"]
        assert store.list("zzz/") == []
        store.delete("a/1.txt")
        store.delete("a/1.txt")  # deleting what is not there is fine
        store.delete("a")  # a folder is not an artefact
        assert store.list() == ["a/sub/3.txt", "ab.txt", "b/2.txt"]

    def test_missing_key_names_the_key(self, store: ArtefactStore, tmp_path: Path) -> None:
        with pytest.raises(ArtefactNotFoundError, match="no/such.bin"):
            store.get_bytes("no/such.bin")
        with pytest.raises(ArtefactNotFoundError, match="no/such.bin"):
            store.get_metadata("no/such.bin")
        with pytest.raises(ArtefactNotFoundError, match="no/such.bin"):
            store.get_file("no/such.bin", tmp_path / "dest.bin")
        assert not (tmp_path / "dest.bin").exists()
        assert list(tmp_path.glob(".dest.bin*")) == []

    @pytest.mark.parametrize("key", BAD_KEYS)
    def test_bad_keys_refused_by_every_operation(self, store: ArtefactStore, key: str, tmp_path: Path) -> None:
        operations = [
            lambda: store.put_bytes(key, b"x"),
            lambda: store.get_bytes(key),
            lambda: store.put_file(key, __file__),
            lambda: store.get_file(key, tmp_path / "d"),
            lambda: store.exists(key),
            lambda: store.delete(key),
            lambda: store.uri(key),
        ]
        for operation in operations:
            with pytest.raises(ValueError, match="invalid artefact key"):
                operation()

    @pytest.mark.parametrize("prefix", ["../", "/abs", "a/../"])
    def test_bad_list_prefix_refused(self, store: ArtefactStore, prefix: str) -> None:
        with pytest.raises(ValueError, match="invalid artefact key"):
            store.list(prefix)

    def test_uri_names_the_artefact(self, store: ArtefactStore) -> None:
        uri = store.uri("models/v1/w.bin")
        if isinstance(store, LocalArtefactStore):
            assert uri == (store.root / "models" / "v1" / "w.bin").as_uri()
        else:
            assert uri == f"s3://{store.bucket}/{store.prefix}/models/v1/w.bin"


class TestLocalStore:
    """Guarantees only the local store can show: files on disk, atomic writes, traversal."""

    def test_files_live_under_root(self, tmp_path: Path) -> None:
        store = LocalArtefactStore(tmp_path / "root")
        store.put_bytes("a/b.txt", b"hi")
        assert (tmp_path / "root" / "a" / "b.txt").read_bytes() == b"hi"
        assert sorted(p.name for p in (tmp_path / "root").iterdir()) == ["a"]

    def test_killed_writer_leaves_old_artefact(self, tmp_path: Path) -> None:
        """A process killed after writing the bytes but before the rename leaves no partial artefact."""
        store = LocalArtefactStore(tmp_path / "root")
        store.put_bytes("model/w.bin", b"old")
        child = textwrap.dedent(f"""
            import os, signal
            from active_learning.store import LocalArtefactStore
            os.fsync = lambda fd: os.kill(os.getpid(), signal.SIGKILL)  # die just before os.replace
            LocalArtefactStore({str(tmp_path / "root")!r}).put_bytes("model/w.bin", b"new" * 100000)
            LocalArtefactStore({str(tmp_path / "root")!r}).put_bytes("model/other.bin", b"new")
            """)
        result = subprocess.run([sys.executable, "-c", child], cwd=REPO, capture_output=True, timeout=120)
        assert result.returncode == -9, result.stderr.decode()
        assert store.get_bytes("model/w.bin") == b"old"
        assert store.list() == ["model/w.bin"]
        leftovers = [p.name for p in (tmp_path / "root" / "model").iterdir() if p.name != "w.bin"]
        assert len(leftovers) == 1 and leftovers[0].startswith(".w.bin.")  # a hidden temp file, never a key

    def test_failed_write_cleans_up(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        store = LocalArtefactStore(tmp_path / "root")
        store.put_bytes("k.bin", b"old")

        def fail(*args: object) -> None:
            raise OSError("disk full")

        monkeypatch.setattr("active_learning.store.base.os.replace", fail)
        with pytest.raises(OSError, match="disk full"):
            store.put_bytes("k.bin", b"new")
        monkeypatch.undo()
        assert store.get_bytes("k.bin") == b"old"
        assert sorted(p.name for p in (tmp_path / "root").iterdir()) == ["k.bin"]


class TestOpenStore:
    """``open_store`` picks the store from the URI and takes S3 settings from ``Settings``."""

    def _settings(self, **fields: object) -> Settings:
        return Settings(_env_file=None, **fields)

    def test_local_path_and_file_uri(self, tmp_path: Path) -> None:
        settings = self._settings()
        plain = open_store(str(tmp_path / "a"), settings)
        via_uri = open_store((tmp_path / "b c").as_uri(), settings)
        assert isinstance(plain, LocalArtefactStore) and plain.root == tmp_path / "a"
        assert isinstance(via_uri, LocalArtefactStore) and via_uri.root == tmp_path / "b c"

    def test_s3_uri_uses_settings(self) -> None:
        settings = self._settings(
            s3_endpoint_url="http://127.0.0.1:1",
            aws_access_key_id="AK",
            aws_secret_access_key="SK",
            aws_region="eu-west-1",
        )
        store = open_store("s3://my-bucket/runs/scraiber/", settings, create_bucket=True)
        assert isinstance(store, S3ArtefactStore)
        assert (store.bucket, store.prefix, store.endpoint_url, store.create_bucket) == (
            "my-bucket",
            "runs/scraiber",
            "http://127.0.0.1:1",
            True,
        )
        assert store.uri("x.npz") == "s3://my-bucket/runs/scraiber/x.npz"
        credentials = store._client._request_signer._credentials
        assert (credentials.access_key, credentials.secret_key) == ("AK", "SK")
        assert store._client.meta.region_name == "eu-west-1"
        assert "SK" not in repr(store)

    @pytest.mark.parametrize(
        ("uri", "message"),
        [
            ("ftp://host/x", "unknown artefact store URI scheme 'ftp'.*file://, s3://"),
            ("s3:///prefix", "has no bucket"),
        ],
    )
    def test_bad_uris(self, uri: str, message: str) -> None:
        with pytest.raises(ValueError, match=message):
            open_store(uri, self._settings())

    def test_bad_bucket_name(self) -> None:
        with pytest.raises(ValueError, match="invalid S3 bucket name 'B'"):
            open_store("s3://B/x", self._settings())

    def test_unreachable_endpoint_is_a_clear_error(self) -> None:
        port = free_port()
        store = S3ArtefactStore(
            "bucket", "p", endpoint_url=f"http://127.0.0.1:{port}", access_key_id="a", secret_access_key="b"
        )
        with pytest.raises(ArtefactStoreUnavailableError, match=rf"s3://bucket/p/k.bin.*127.0.0.1:{port}.*unreachable"):
            store.get_bytes("k.bin")


@pytest.mark.slow
class TestS3Errors:
    """Errors from a real S3 server name bucket and key and never show the secret."""

    def test_wrong_secret(self, s3_server) -> None:
        good = _s3_store(s3_server)
        good.put_bytes("k.bin", b"x")
        bad = _s3_store(s3_server, prefix=good.prefix, secret_access_key="wrong-secret")
        for operation in (lambda: bad.get_bytes("k.bin"), lambda: bad.put_bytes("k.bin", b"y"), lambda: bad.list()):
            with pytest.raises(ArtefactAccessError, match=r"s3://contract/.*access denied") as caught:
                operation()
            assert "wrong-secret" not in str(caught.value) and s3_server.secret_access_key not in str(caught.value)
        assert good.get_bytes("k.bin") == b"x"

    def test_unknown_access_key(self, s3_server) -> None:
        bad = _s3_store(s3_server, access_key_id="NOSUCHKEY")
        with pytest.raises(ArtefactAccessError, match="access denied"):
            bad.exists("k.bin")

    def test_missing_bucket_named_or_created(self, s3_server) -> None:
        name = f"new-{uuid.uuid4().hex[:12]}"
        refused = _s3_store(s3_server, bucket=name, prefix="p")
        with pytest.raises(ArtefactNotFoundError, match=f"bucket '{name}' does not exist at {s3_server.endpoint_url}"):
            refused.put_bytes("k.bin", b"x")
        assert not refused.exists("k.bin")
        created = _s3_store(s3_server, bucket=name, prefix="p", create_bucket=True)
        created.put_bytes("k.bin", b"x")
        assert s3_server.client().get_object(Bucket=name, Key="p/k.bin")["Body"].read() == b"x"

    def test_objects_are_plain_s3_objects(self, s3_server) -> None:
        store = _s3_store(s3_server)
        store.put_bytes("d/k.bin", b"payload", {"source": "t1"})
        head = s3_server.client().head_object(Bucket="contract", Key=f"{store.prefix}/d/k.bin")
        assert head["ContentLength"] == 7 and head["Metadata"] == {"source": "t1"}
