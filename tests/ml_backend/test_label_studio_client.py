"""LabelStudioClient against a real Label Studio 1.23.2 (session fixture ``label_studio``).

The SSRF and key-shape tests need no server; everything else is ``slow``.
"""

from __future__ import annotations

import io
import json
import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from ml_backend.label_studio import LabelStudioClient, LabelStudioError, is_personal_access_token
from scraiber.processes import free_port
from tests.fixtures.browser import login_label_studio, screenshot
from tests.fixtures.label_studio import LabelStudioInstance
from tests.security.test_client_threads import expire_access_token

MINERALS_XML = Path(__file__).resolve().parents[2] / "label_config" / "minerals.xml"


def _png(path: Path, seed: int, shape: tuple[int, int] = (48, 64)) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def _project(client: LabelStudioClient, name: str) -> dict:
    return client.create_project(f"{name} {secrets.token_hex(3)}", MINERALS_XML.read_text(encoding="utf-8"))


# -- without a server ------------------------------------------------------------------


def test_key_shape_tells_personal_access_tokens_from_legacy_tokens():
    header = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"  # {"alg":"HS256","typ":"JWT"}
    assert is_personal_access_token(f"{header}.eyJ0b2tlbl90eXBlIjoicmVmcmVzaCJ9.c2lnbmF0dXJl")
    assert not is_personal_access_token("3c8531313af6148eb9277b94cd82abefb0fef233")
    assert not is_personal_access_token("a.b.c")  # three parts, but no JWT header
    assert not is_personal_access_token(f"{header}.payload")
    assert LabelStudioClient("http://127.0.0.1:1", f"{header}.e30.c2ln").auth_scheme == "Bearer"
    assert LabelStudioClient("http://127.0.0.1:1", "abcdef123456").auth_scheme == "Token"


@pytest.mark.parametrize("url", ["ftp://127.0.0.1:8080", "127.0.0.1:8080", "http://"])
def test_client_refuses_a_base_url_that_is_not_http(url: str):
    with pytest.raises(ValueError, match="must be http"):
        LabelStudioClient(url, "abcdef123456")


def test_client_needs_a_key():
    with pytest.raises(ValueError, match="API key is required"):
        LabelStudioClient("http://127.0.0.1:8080", " ")


@pytest.fixture
def offline_client() -> Iterator[LabelStudioClient]:
    """A client of a port where nothing listens: a request that slipped through would fail differently."""
    port = free_port()
    with LabelStudioClient(f"http://127.0.0.1:{port}", "abcdef123456", timeout=2) as client:
        yield client


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{other}/data/upload/1/a.png",  # same host, other port
        "http://localhost:{port}/data/upload/1/a.png",  # other host name for the same machine
        "https://127.0.0.1:{port}/data/upload/1/a.png",  # other scheme
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "//evil.example/data/upload/1/a.png",  # protocol-relative
        "file:///etc/passwd",
        "http://user:pw@127.0.0.1:{port}/data/upload/1/a.png",  # user info
        "/data/upload/../../etc/passwd",
        "/data/upload/1/%2e%2e/%2e%2e/etc/passwd",
        "/data/upload/1/%252e%252e/secret",  # double-encoded
        "/data/upload/1/..%5c..%5csecret",  # backslash separators
        "/data/local-files/?d=../../etc/passwd",
    ],
)
def test_download_refuses_other_origins_schemes_and_traversal(offline_client: LabelStudioClient, target: str):
    port = offline_client.url.rsplit(":", 1)[1]
    url = target.format(port=port, other=int(port) + 1 if int(port) < 65535 else int(port) - 1)
    with pytest.raises(ValueError) as caught:
        offline_client.download(url, max_bytes=1024)
    assert repr(url) in str(caught.value)


def test_download_resolves_paths_against_the_base_origin(offline_client: LabelStudioClient):
    assert offline_client.resolve_url("/data/upload/3/a b.png") == f"{offline_client.url}/data/upload/3/a b.png"
    assert offline_client.resolve_url(f"{offline_client.url}/data/x.png?d=1") == f"{offline_client.url}/data/x.png?d=1"
    with pytest.raises(ValueError, match="max_bytes must be positive"):
        offline_client.download("/data/upload/3/a.png", max_bytes=0)


def test_unreachable_server_is_a_label_studio_error_without_status(offline_client: LabelStudioClient):
    with pytest.raises(LabelStudioError, match="cannot reach Label Studio") as caught:
        offline_client.whoami()
    assert caught.value.status_code is None
    assert "abcdef123456" not in str(caught.value)


class _FlakyServer(BaseHTTPRequestHandler):
    """Answers every first request to a path with 503, later ones with a JSON body; counts requests per path."""

    counts: dict[str, int] = {}

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = self.path.split("?")[0]
        self.counts[path] = self.counts.get(path, 0) + 1
        status, body = (503, b'{"detail": "busy"}') if self.counts[path] == 1 else (200, b'{"id": 1, "email": "a@b"}')
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:
        pass


def test_gets_are_retried_and_posts_are_sent_once():
    """A busy server: a GET is repeated, a POST is not (a repeated POST could store an annotation twice)."""
    _FlakyServer.counts = {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FlakyServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with LabelStudioClient(f"http://127.0.0.1:{server.server_port}", "abcdef123456", timeout=5) as client:
            assert client.whoami()["email"] == "a@b"
            with pytest.raises(LabelStudioError, match="HTTP 503: busy") as caught:
                client.create_prediction(1, [], 0.5, "v1")
    finally:
        server.shutdown()
        server.server_close()
    assert caught.value.status_code == 503
    assert _FlakyServer.counts == {"/api/current-user/whoami": 2, "/api/predictions/": 1}


# -- authentication ----------------------------------------------------------------------


@pytest.mark.slow
def test_legacy_token_works_only_while_enabled_for_the_organisation(label_studio: LabelStudioInstance):
    client = label_studio.client
    assert client.auth_scheme == "Token"
    assert client.whoami()["email"] == label_studio.username
    with label_studio.login() as session:
        assert session.jwt_settings() == {"api_tokens_enabled": True, "legacy_api_tokens_enabled": True}
        session.update_jwt_settings(legacy_api_tokens_enabled=False, api_tokens_enabled=True)
        try:
            with pytest.raises(LabelStudioError) as caught:
                client.whoami()
        finally:
            session.update_jwt_settings(legacy_api_tokens_enabled=True, api_tokens_enabled=True)
    assert caught.value.status_code == 401
    assert "legacy token authentication has been disabled" in str(caught.value)
    assert "Personal Access Token" in str(caught.value)
    assert label_studio.api_key not in str(caught.value)
    assert client.whoami()["email"] == label_studio.username


@pytest.mark.slow
def test_personal_access_token_is_exchanged_and_refreshed(label_studio: LabelStudioInstance):
    with label_studio.login() as session:
        first = session.create_personal_access_token()
        pat = session.create_personal_access_token()  # revokes the first: one PAT per user
    assert is_personal_access_token(pat) and pat != first
    with LabelStudioClient(label_studio.url, pat) as client:
        assert client.auth_scheme == "Bearer"
        assert client.whoami()["email"] == label_studio.username
        project = _project(client, "PAT project")
        assert client.get_project(project["id"])["title"] == project["title"]
        # An expired access token: the client exchanges the PAT once more before the next request.
        expire_access_token(client)
        expired = client.sdk._client_wrapper._tokens_client._access_token
        assert client.whoami()["email"] == label_studio.username
        assert client.sdk._client_wrapper._tokens_client._access_token != expired
    with pytest.raises(LabelStudioError) as caught:
        LabelStudioClient(label_studio.url, first).whoami()
    assert caught.value.status_code == 401
    assert "/api/token/refresh/" in str(caught.value) and "blacklisted" in str(caught.value)
    assert first not in str(caught.value)
    # The PAT is a JWT, never valid as a bearer token itself
    answer = requests.get(f"{label_studio.url}/api/current-user/whoami", headers={"Authorization": f"Bearer {pat}"})
    assert answer.status_code == 401


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["legacy", "pat"])
def test_wrong_key_gives_401_with_a_clear_message_and_no_key(label_studio: LabelStudioInstance, kind: str):
    if kind == "legacy":
        wrong = secrets.token_hex(20)
    else:
        with label_studio.login() as session:
            real = session.create_personal_access_token()
        head, payload, _ = real.split(".")
        wrong = f"{head}.{payload}.{'A' * 43}"  # valid shape, bad signature
    with pytest.raises(LabelStudioError) as caught:
        LabelStudioClient(label_studio.url, wrong).whoami()
    error = caught.value
    assert error.status_code == 401
    assert "401" in str(error)
    assert ("Invalid token" in str(error)) if kind == "legacy" else ("Token is invalid" in str(error))
    assert wrong not in str(error) and wrong not in repr(error.args)


# -- projects, tasks, files ------------------------------------------------------------


@pytest.mark.slow
def test_create_find_update_and_list_projects(label_studio: LabelStudioInstance):
    client = label_studio.client
    suffix = secrets.token_hex(3)
    config = MINERALS_XML.read_text(encoding="utf-8")
    long = client.create_project(f"Basalt {suffix} long", config, description="thin section 7")
    short = client.create_project(f"Basalt {suffix}", config)
    assert 'name="minerals"' in client.get_project(short["id"])["label_config"]
    assert long["description"] == "thin section 7"
    assert client.find_project_by_title(f"Basalt {suffix}")["id"] == short["id"]
    assert client.find_project_by_title(f"Basalt {suffix} missing") is None
    assert client.update_project(short["id"], description="changed")["description"] == "changed"
    ids = {project["id"] for project in client.list_projects()}
    assert {short["id"], long["id"]} <= ids
    with pytest.raises(LabelStudioError) as caught:
        client.create_project("ab", config)
    assert caught.value.status_code == 400 and "title" in str(caught.value)
    with pytest.raises(LabelStudioError) as caught:
        client.get_project(10**8)
    assert caught.value.status_code == 404


@pytest.mark.slow
def test_uploaded_png_downloads_with_the_token_and_not_without(label_studio: LabelStudioInstance, tmp_path: Path):
    client = label_studio.client
    project = _project(client, "Upload")
    first = _png(tmp_path / "section 1.png", seed=1)
    second = _png(tmp_path / "section-2.png", seed=2, shape=(32, 40))
    task_ids = client.upload_files(project["id"], [tmp_path / "section 1.png", tmp_path / "section-2.png"])
    assert len(task_ids) == 2
    assert sorted(task["id"] for task in client.list_tasks(project["id"])) == sorted(task_ids)
    paths = [client.get_task(task_id)["data"]["image"] for task_id in task_ids]
    assert all(path.startswith(f"/data/upload/{project['id']}/") for path in paths)
    assert paths[0].endswith("section_1.png") and paths[1].endswith("section-2.png")  # ids in upload order
    assert client.download(paths[0], max_bytes=len(first)) == first
    assert client.download(f"{label_studio.url}{paths[1]}", max_bytes=10**6) == second
    with pytest.raises(ValueError, match="more than the limit"):
        client.download(paths[0], max_bytes=len(first) - 1)
    anonymous = requests.get(f"{label_studio.url}{paths[0]}", timeout=10)
    assert anonymous.status_code == 401 and anonymous.content != first
    with pytest.raises(LabelStudioError) as caught:
        LabelStudioClient(label_studio.url, secrets.token_hex(20)).download(paths[0], max_bytes=10**6)
    assert caught.value.status_code == 401
    with pytest.raises(FileNotFoundError, match="not a file"):
        client.upload_files(project["id"], [tmp_path / "missing.png"])


@pytest.mark.slow
def test_tasks_predictions_and_annotations_round_trip(label_studio: LabelStudioInstance):
    client = label_studio.client
    project = _project(client, "Round trip")
    task_ids = client.import_tasks(project["id"], [{"data": {"image": f"/data/upload/x/{i}.png"}} for i in range(3)])
    assert len(task_ids) == 3
    assert [task["data"]["image"] for task in map(client.get_task, task_ids)] == [
        f"/data/upload/x/{i}.png" for i in range(3)
    ]
    assert client.import_tasks(project["id"], []) == []
    region = {
        "from_name": "minerals",
        "to_name": "image",
        "type": "brushlabels",
        "original_width": 4,
        "original_height": 4,
        "value": {"format": "rle", "rle": [0, 1, 2], "brushlabels": ["Olivine"]},
    }
    prediction = client.create_prediction(task_ids[0], [region], score=0.25, model_version="test-1")
    stored = client.task_predictions(task_ids[0])
    assert [(p["id"], p["score"], p["model_version"]) for p in stored] == [(prediction["id"], 0.25, "test-1")]
    annotation = client.create_annotation(task_ids[0], [region], lead_time=12.5, parent_prediction=prediction["id"])
    assert annotation["lead_time"] == 12.5 and annotation["was_cancelled"] is False
    assert [a["id"] for a in client.annotations(task_ids[0])] == [annotation["id"]]
    assert client.get_annotation(annotation["id"])["result"][0]["value"]["brushlabels"] == ["Olivine"]
    assert client.delete_annotation(annotation["id"]) is None
    with pytest.raises(LabelStudioError) as caught:
        client.get_annotation(annotation["id"])
    assert caught.value.status_code == 404
    assert client.annotations(task_ids[0]) == []


class _FakeBackend(BaseHTTPRequestHandler):
    """The smallest ML backend Label Studio accepts: /health, /setup and /predict."""

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        self._answer({"status": "UP", "model_class": "Fake"})

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        self.server.posts.append((self.path, body.get("action")))
        if self.path.rstrip("/").endswith("/predict"):
            self.server.predicted.extend(task["id"] for task in body.get("tasks", []))
            results = [{"result": [], "score": 0.5, "model_version": "fake-1"} for _ in body.get("tasks", [])]
            self._answer({"results": results})
        else:
            self._answer({"model_version": "fake-1"})

    def _answer(self, body: dict) -> None:
        payload = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def fake_backend() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _FakeBackend)
    server.predicted = []
    server.posts = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.mark.slow
def test_retrieve_predictions_without_and_with_a_backend_on_loopback(
    label_studio: LabelStudioInstance, fake_backend: ThreadingHTTPServer
):
    client = label_studio.client
    project = _project(client, "Retrieve")
    task_ids = client.import_tasks(project["id"], [{"data": {"image": f"/data/upload/y/{i}.png"}} for i in range(2)])
    # Without a backend Label Studio still answers (and reports the tasks as processed).
    assert client.retrieve_predictions(project["id"]) == {"processed_items": 2, "detail": "Retrieved 2 predictions"}
    assert all(client.task_predictions(task_id) == [] for task_id in task_ids)
    with pytest.raises(LabelStudioError) as caught:
        client.connect_ml_backend(project["id"], f"http://127.0.0.1:{free_port()}", "nobody home")
    assert caught.value.status_code == 400 and "Can't connect to ML backend" in str(caught.value)
    # A backend on 127.0.0.1 is accepted because the server runs with ML_BLOCK_LOCAL_IP=false.
    url = f"http://127.0.0.1:{fake_backend.server_port}"
    backend = client.connect_ml_backend(project["id"], url, "fake", basic_auth=("user", "pass-word"))
    assert backend["auth_method"] == "BASIC_AUTH" and "basic_auth_pass" not in backend
    assert [(b["id"], b["url"]) for b in client.list_ml_backends(project["id"])] == [(backend["id"], url)]
    answer = client.retrieve_predictions(project["id"])
    assert answer["processed_items"] == 2
    assert sorted(fake_backend.predicted) == sorted(task_ids)
    for task_id in task_ids:
        assert [(p["score"], p["model_version"]) for p in client.task_predictions(task_id)] == [(0.5, "fake-1")]
    # Connecting created a webhook to the backend's /webhook; annotations are announced there.
    webhooks = requests.get(
        f"{label_studio.url}/api/webhooks/",
        params={"project": project["id"]},
        headers={"Authorization": f"Token {label_studio.api_key}"},
        timeout=10,
    ).json()
    assert [hook["url"] for hook in webhooks] == [f"{url}/webhook"]
    client.create_annotation(task_ids[0], [], lead_time=1.0)
    deadline = time.monotonic() + 15
    while ("/webhook", "ANNOTATION_CREATED") not in fake_backend.posts and time.monotonic() < deadline:
        time.sleep(0.1)
    assert ("/webhook", "ANNOTATION_CREATED") in fake_backend.posts
    client.disconnect_ml_backend(backend["id"])
    assert client.list_ml_backends(project["id"]) == [] and client.get_project(project["id"])["id"] == project["id"]


# -- browser -----------------------------------------------------------------------------


@pytest.mark.slow
def test_browser_logs_in_and_opens_the_data_manager_and_a_task(
    label_studio: LabelStudioInstance, chromium_page, tmp_path: Path
):
    client = label_studio.client
    project = _project(client, "Browser")
    _png(tmp_path / "bse.png", seed=3, shape=(96, 128))
    (task_id,) = client.upload_files(project["id"], [tmp_path / "bse.png"])
    page = chromium_page
    login_label_studio(page, label_studio.url, label_studio.username, label_studio.password)
    page.goto(f"{label_studio.url}/projects/{project['id']}/data")
    page.get_by_text(project["title"]).first.wait_for()
    page.wait_for_function(_UPLOADED_IMAGE_SHOWN)  # the grid's thumbnail, fetched with the session cookie
    shot = screenshot(page, "label-studio-data-manager")
    assert shot.is_file() and shot.stat().st_size > 1000
    page.goto(f"{label_studio.url}/projects/{project['id']}/data?task={task_id}")
    page.get_by_text("Olivine").first.wait_for()  # the labelling interface shows the config's labels
    page.wait_for_function(_UPLOADED_IMAGE_SHOWN)
    shot = screenshot(page, "label-studio-task")
    assert shot.is_file() and shot.stat().st_size > 1000


_UPLOADED_IMAGE_SHOWN = (
    "() => [...document.images].some(image => image.src.includes('/data/upload/') && image.naturalWidth > 0)"
)
