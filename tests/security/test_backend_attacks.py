"""Attacks on the real backend process (gunicorn) in front of a real Label Studio 1.23.2.

Every case asserts the exact status, a JSON answer without a traceback, and that the
backend still answers ``/health`` afterwards. Image-source cases go through ``/predict``
with files Label Studio really serves: a bypass would come back as a prediction.
"""

from __future__ import annotations

import base64
import socket
import time
from urllib.parse import quote

import imagecodecs
import pytest
import requests

from tests.fixtures.backend import running_backend
from tests.security.cases import LOCAL_FILE_BYPASSES, MALFORMED_BODIES, RAW_REQUESTS, SSRF_URLS, bad_authorizations
from tests.security.conftest import (
    MINERALS,
    SECRET_TEXT,
    assert_up,
    backend_env,
    check_answer,
    field,
    huge_png,
    memory_mib,
    post,
    processes,
    record_figures,
)

pytestmark = pytest.mark.slow
UNREACHABLE_S3 = "http://127.0.0.1:9"  # the discard port: nothing listens


@pytest.fixture(scope="module")
def backend(label_studio, private_files, tmp_path_factory):
    env = backend_env(
        label_studio,
        private_files,
        SCRAIBER_MAX_REQUEST_BYTES=str(60 * 2**20),
        AWS_ENDPOINT_URL_S3=UNREACHABLE_S3,
        AWS_ACCESS_KEY_ID="AKIDEXAMPLE",
        AWS_SECRET_ACCESS_KEY="x" * 20,
    )
    with running_backend(label_studio, tmp_path_factory.mktemp("attacked-backend"), **env) as backend:
        yield backend


@pytest.fixture(scope="module")
def uploads(label_studio):
    """A project with two uploaded images: a small field and the 30000 x 30000 px PNG (875 KB)."""
    client = label_studio.client
    project = client.create_project("Security uploads", MINERALS)
    folder = label_studio.data_dir.parent / "security-uploads"
    folder.mkdir(exist_ok=True)
    (folder / "small.png").write_bytes(imagecodecs.png_encode(field(3)))
    (folder / "huge.png").write_bytes(huge_png())
    small, huge = client.upload_files(project["id"], [folder / "small.png", folder / "huge.png"])
    return {"project": project["id"], "small": client.get_task(small), "huge": client.get_task(huge)}


def _predict(backend, urls: list[str], project: int | None = None) -> list[dict]:
    tasks = [{"id": i + 1, "data": {"image": url}} for i, url in enumerate(urls)]
    body = {"tasks": tasks, "label_config": MINERALS, **({"project": f"{project}.1"} if project else {})}
    return check_answer(post(backend, "/predict", body), 200)["results"]


def test_label_studio_really_serves_the_secret_files(label_studio, private_files):
    """The control: without the backend's checks, these files would be fetched."""
    served = label_studio.client.download("/data/local-files/?d=secret/secret.png", max_bytes=2**20)
    assert served == (private_files["secret"] / "secret.png").read_bytes()
    assert label_studio.client.download("/data/local-files/?d=secret/secret.txt", max_bytes=2**20) == SECRET_TEXT


def test_allowed_local_file_is_predicted(backend):
    (result,) = _predict(backend, ["/data/local-files/?d=allowed/good.png"])
    assert result.get("result"), result


@pytest.mark.parametrize("url", LOCAL_FILE_BYPASSES + SSRF_URLS)
def test_no_image_source_bypass(backend, url):
    answer = post(backend, "/predict", {"tasks": [{"id": 1, "data": {"image": url}}], "label_config": MINERALS})
    (result,) = check_answer(answer, 200)["results"]
    assert "result" not in result and result["error"].startswith("task 1: "), result
    assert SECRET_TEXT.decode() not in answer.text and "TOPS" not in answer.text  # no bytes of the file echoed
    assert_up(backend)


def test_bypasses_over_the_suite_are_zero(backend):
    results = _predict(backend, LOCAL_FILE_BYPASSES + SSRF_URLS)
    bypasses = [r for r in results if "result" in r]
    record_figures("image_source", {"urls_tried": len(results), "bypasses": len(bypasses)})
    assert bypasses == []


def test_errors_name_no_endpoint_nor_label_studio_internals(backend, label_studio):
    missing, s3 = _predict(backend, ["/data/upload/999/missing.png", "s3://allowed-bucket/key.png"])
    # Label Studio 1.23.2 answers a missing upload with HTTP 500 and its own error page
    assert missing["error"] == "task 1: Label Studio refused '/data/upload/999/missing.png' (HTTP 500)"
    assert s3["error"].startswith("task 2: cannot reach S3 for 's3://allowed-bucket/key.png'"), s3
    assert UNREACHABLE_S3 not in s3["error"] and "127.0.0.1" not in s3["error"]


@pytest.mark.parametrize(("path", "data", "content_type"), MALFORMED_BODIES,
                         ids=[f"{p}-{i}" for i, (p, _, _) in enumerate(MALFORMED_BODIES)])  # fmt: skip
def test_malformed_bodies_are_400(backend, path, data, content_type):
    check_answer(post(backend, path, data=data, headers={"Content-Type": content_type}), 400)
    assert_up(backend)


def test_oversized_bodies_are_413_and_a_huge_webhook_stores_a_few_bytes(backend):
    events_db = backend.data_dir / "events.sqlite"
    size = lambda: sum(p.stat().st_size for p in events_db.parent.glob("events.sqlite*"))  # noqa: E731
    before = size()
    regions = "x" * (50 * 2**20)  # 50 MB of annotation regions the harvest never reads
    webhook = {"action": "ANNOTATION_CREATED", "annotation": {"id": 424242, "updated_at": "2026-01-01T00:00:00Z",
               "result": regions}, "task": {"id": 7, "data": {"image": regions[:1000]}}, "project": {"id": 3}}  # fmt: skip
    check_answer(post(backend, "/webhook", webhook), 200)
    stored = [e for e in backend.events().list_events() if e.payload.get("annotation", {}).get("id") == 424242]
    assert len(stored) == 1 and len(str(stored[0].payload)) < 300
    growth = size() - before
    check_answer(post(backend, "/webhook", data=b"{" + b" " * (61 * 2**20) + b"}"), 413)
    check_answer(requests.post(f"{backend.url}/webhook", data=iter([b" " * 2**20] * 61), auth=backend.auth,
                               timeout=60), 413)  # chunked, without a Content-Length  # fmt: skip
    record_figures("webhook_storage", {"webhook_bytes": len(regions), "event_log_growth_bytes": growth})
    assert growth < 64 * 1024
    assert_up(backend)


def test_huge_image_fails_its_task_only_without_allocating(backend, uploads):
    web = processes(backend)["web"]
    before = memory_mib(web)
    started = time.monotonic()
    small, huge = _predict(backend, [uploads["small"]["data"]["image"], uploads["huge"]["data"]["image"]])
    seconds = time.monotonic() - started
    after = memory_mib(web)
    assert small.get("result")
    assert "result" not in huge and "30000 x 30000 px (900 MPix) needs about" in huge["error"], huge
    assert "scraiber ingest" in huge["error"]
    record_figures("huge_image", {"pixels": 30000 * 30000, "png_bytes": len(huge_png()), "seconds": round(seconds, 2),
                                  "web_rss_growth_mib": round(after - before, 1)})  # fmt: skip
    assert seconds < 30 and after - before < 200
    assert_up(backend)


def test_auth_variants_are_401(backend):
    user, password = backend.auth
    for header in bad_authorizations(user, password):
        headers = {} if header is None else {"Authorization": header}
        for method, path in (("get", "/status"), ("post", "/predict"), ("post", "/webhook"), ("post", "/setup")):
            answer = requests.request(method, f"{backend.url}{path}", headers=headers, json={}, timeout=10)
            check_answer(answer, 401)
            assert answer.headers["WWW-Authenticate"] == 'Basic realm="scraiber"'
            assert password not in answer.text
    check_answer(requests.get(f"{backend.url}/status", auth=backend.auth, timeout=10), 200)


def test_only_scraibers_routes_exist(backend):
    for method, path, status in (
        ("post", "/versions", 404), ("get", "/versions", 404), ("get", "/metrics", 404), ("get", "/is_training", 404),
        ("post", "/job_status", 404), ("get", "/predict", 405), ("put", "/webhook", 405), ("get", "/../etc/passwd", 404),
        ("post", "/predict/", 404), ("delete", "/status", 405),
    ):  # fmt: skip
        answer = requests.request(
            method, f"{backend.url}{path}", auth=backend.auth, json={"project": "1.1"}, timeout=10
        )
        body = check_answer(answer, status)
        assert "model_dir" not in body and "traceback" not in answer.text.lower()
    health = check_answer(requests.get(f"{backend.url}/health", timeout=10), 200)
    assert set(health) == {"status", "model_version", "worker", "queue"} and "model_dir" not in health


@pytest.mark.parametrize("raw_status", RAW_REQUESTS, ids=[str(i) for i in range(len(RAW_REQUESTS))])
def test_raw_http_errors_are_json(backend, raw_status):
    raw, status = raw_status
    header = "Basic " + base64.b64encode(":".join(backend.auth).encode()).decode()
    host, port = backend.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=15) as sock:
        sock.sendall(raw.replace(b"{auth}", header.encode()))
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < _length(answer):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == str(status).encode(), answer[:300]
    assert b"application/json" in head.lower() and b'"error"' in body and b"Traceback" not in answer
    assert_up(backend)


def _length(answer: bytes) -> int:
    for line in answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


def test_setup_checks_the_config_and_a_good_setup_passes(backend):
    check_answer(post(backend, "/setup", {"project": "5.1700000000", "schema": MINERALS}), 200)
    check_answer(post(backend, "/setup", {"project": "5.1700000000", "schema": "<View></View>"}), 400)
    for project in ("0.1", "2147483648.1", "1" * 30, quote("١٢")):
        check_answer(post(backend, "/setup", {"project": project, "schema": MINERALS}), 400)


def test_no_gunicorn_control_socket(backend):
    """gunicorn 25+ opens a control socket at a path shared by every gunicorn of the user; scrAiber's has none."""
    sockets = [
        c.laddr for p in processes(backend)["master"] + processes(backend)["web"] for c in p.net_connections("unix")
    ]
    assert not [s for s in sockets if s and "gunicorn" in str(s)], sockets
