"""The backend's HTTP layer, with real services (event log on SQLite, a real HTTP image host)."""

import base64
import functools
import http.server
import threading

import imagecodecs
import numpy as np
import pytest

from active_learning.event_log import EventLog
from label_config import load_catalogue
from label_config.generate import minerals_xml
from ml_backend.adapter import BackendServices
from ml_backend.app import create_app
from ml_backend.brush import rle_to_mask
from ml_backend.image_source import ImageSource
from ml_backend.label_studio import LabelStudioClient
from ml_backend.predictor import Predictor
from ml_backend.segmenters import create_segmenter
from scraiber.serve import SegmenterProvider, status_counters

AUTH = ("scraiber", "correct horse battery staple")


@pytest.fixture(scope="module")
def image_host(tmp_path_factory):
    """A real HTTP server on loopback standing in for Label Studio's /data/upload file serving."""
    root = tmp_path_factory.mktemp("host")
    (root / "data" / "upload" / "1").mkdir(parents=True)
    yy, xx = np.mgrid[:96, :128]
    field = np.where(xx < 40, 3000, np.where((yy - 48) ** 2 + (xx - 90) ** 2 < 400, 40000, 18000)).astype(np.uint16)
    field += np.random.default_rng(0).integers(0, 500, field.shape, dtype=np.uint16)
    (root / "data" / "upload" / "1" / "field.png").write_bytes(imagecodecs.png_encode(field))
    (root / "data" / "upload" / "1" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.fixture
def backend(tmp_path, image_host):
    catalogue = load_catalogue()
    provider = SegmenterProvider(lambda: create_segmenter("unsupervised", catalogue))
    events = EventLog.from_url(f"sqlite:///{tmp_path / 'events.sqlite'}")
    predictor = Predictor(catalogue, provider, ImageSource(LabelStudioClient(image_host, "0123456789abcdef")))
    services = BackendServices(predictor=predictor, events=events, status=status_counters(events, provider))
    app = create_app(services, AUTH, max_request_bytes=200_000)
    return app.test_client(), events, provider


def _auth(user=AUTH[0], password=AUTH[1]):
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_health_is_open_and_everything_else_needs_auth(backend):
    client, _, provider = backend
    health = client.get("/health")
    assert health.status_code == 200
    assert health.get_json() == {"status": "UP", "model_version": provider().version}
    for method, path in [("get", "/status"), ("post", "/predict"), ("post", "/setup"), ("post", "/webhook")]:
        assert getattr(client, method)(path, json={}).status_code == 401
    wrong = client.get("/status", headers=_auth(password="guess"))
    assert wrong.status_code == 401
    assert "basic auth" in wrong.get_json()["error"]


def test_projects_that_call_setup_or_predict_are_the_ones_served(tmp_path, backend):
    from active_learning.harvest_log import HarvestLog
    from scraiber.serve import project_noter

    _, events, provider = backend
    harvests = HarvestLog(events.engine)
    catalogue = load_catalogue()
    predictor = Predictor(catalogue, provider, ImageSource(None))
    services = BackendServices(predictor, events, status_counters(events, provider), connected=project_noter(harvests))
    client = create_app(services, AUTH, max_request_bytes=200_000).test_client()
    schema = minerals_xml(catalogue)
    for _ in range(2):
        assert (
            client.post("/setup", json={"project": "7.1764000000", "schema": schema}, headers=_auth()).status_code
            == 200
        )
    assert client.post("/setup", json={"schema": schema}, headers=_auth()).status_code == 200  # no project named
    body = {"tasks": [], "label_config": schema, "project": "8.1764000000"}
    assert client.post("/predict", json=body, headers=_auth()).status_code == 200
    assert harvests.known_projects() == [7, 8]
    assert harvests.backend_urls(7) == {"http://localhost"}  # as Label Studio called it (Host)


def test_setup_reports_the_served_model_version(backend):
    client, _, provider = backend
    answer = client.post("/setup", json={"project": "1.1", "schema": minerals_xml(load_catalogue())}, headers=_auth())
    assert answer.status_code == 200
    assert answer.get_json()["model_version"] == provider().version
    assert provider().version.startswith("unsupervised-")


def test_predict_returns_brush_regions_and_per_task_errors(backend):
    client, _, provider = backend
    tasks = [
        {"id": 1, "data": {"image": "/data/upload/1/field.png"}},
        {"id": 2, "data": {"image": "/data/upload/1/broken.png"}},
        {"id": 3, "data": {"image": "http://169.254.169.254/data/upload/x.png"}},
        {"id": 4, "data": {"text": "no image"}},
    ]
    answer = client.post(
        "/predict", json={"tasks": tasks, "label_config": minerals_xml(load_catalogue())}, headers=_auth()
    )
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["model_version"] == provider().version
    good, broken, ssrf, missing = body["results"]
    assert good["model_version"] == provider().version
    assert 0.0 <= good["score"] <= 1.0
    regions = good["result"]
    labels = [r["value"]["brushlabels"][0] for r in regions]
    assert len(labels) == len(set(labels)) >= 2
    coverage = sum(rle_to_mask(r["value"]["rle"], 96, 128).astype(int) for r in regions)
    assert (coverage == 1).all()  # every pixel painted exactly once
    masks = {label: rle_to_mask(r["value"]["rle"], 96, 128) for label, r in zip(labels, regions)}
    dark_band = [label for label, mask in masks.items() if mask[:, 5:35].mean() > 0.9]
    bright_disc = [label for label, mask in masks.items() if mask[44:52, 86:94].mean() > 0.9]
    assert len(dark_band) == len(bright_disc) == 1 and dark_band != bright_disc
    assert "result" not in broken and "broken.png: image has no pixels" in broken["error"]
    assert "result" not in ssrf and "only URLs on Label Studio" in ssrf["error"]
    assert "result" not in missing and "data.image" in missing["error"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("not json", "JSON object"),
        ({"tasks": "x", "label_config": "<View/>"}, "'tasks' must be a list"),
        ({"tasks": []}, "label_config"),
    ],
)
def test_predict_bad_requests_get_400_with_message(backend, body, message):
    client, _, _ = backend
    kwargs = {"data": body, "content_type": "application/json"} if isinstance(body, str) else {"json": body}
    answer = client.post("/predict", headers=_auth(), **kwargs)
    assert answer.status_code == 400
    assert message in answer.get_json()["error"]
    assert "Traceback" not in answer.get_data(as_text=True)


def test_config_scraiber_cannot_fill_is_a_bad_request_at_setup_and_predict(backend):
    client, _, _ = backend
    config = '<View><Image name="i" value="$image"/><Choices name="c" toName="i"><Choice value="ok"/></Choices></View>'
    answer = client.post("/predict", json={"tasks": [{"id": 7, "data": {}}], "label_config": config}, headers=_auth())
    assert answer.status_code == 400
    assert "no <BrushLabels>" in answer.get_json()["error"]
    setup = client.post("/setup", json={"project": "1.1", "schema": config}, headers=_auth())
    assert setup.status_code == 400 and "no <BrushLabels>" in setup.get_json()["error"]


def test_request_size_limit(backend):
    client, _, _ = backend
    answer = client.post(
        "/webhook", data=b"{" + b" " * 300_000 + b"}", content_type="application/json", headers=_auth()
    )
    assert answer.status_code == 413


def test_webhook_stores_events_idempotently_and_status_counts_them(backend):
    client, events, provider = backend
    payload = {"action": "ANNOTATION_CREATED", "annotation": {"id": 11}, "task": {"id": 1}}
    first = client.post("/webhook", json=payload, headers=_auth())
    again = client.post("/webhook", json=payload, headers=_auth())
    unknown = client.post("/webhook", json={"action": "PROJECT_UPDATED"}, headers=_auth())
    assert [r.get_json()["status"] for r in (first, again, unknown)] == ["stored", "duplicate", "stored"]
    malformed = client.post("/webhook", json={"annotation": {}}, headers=_auth())
    assert malformed.status_code == 400 and "action" in malformed.get_json()["error"]
    status = client.get("/status", headers=_auth()).get_json()
    assert status["events_received"] == 2
    assert status["events_processed"] == 1  # the unknown event is recorded and ignored
    assert status["queue_depth"] == 1
    assert status["model_version"] == provider().version
    assert {"implicit_labels", "training_runs"} <= set(status)
    assert [e.action for e in events.list_events()] == ["ANNOTATION_CREATED", "PROJECT_UPDATED"]


def test_demo_without_auth(tmp_path, backend):
    _, events, provider = backend
    services = BackendServices(
        predictor=Predictor(load_catalogue(), provider, ImageSource(None)),
        events=events,
        status=status_counters(events, provider),
    )
    client = create_app(services, None, 10_000).test_client()
    assert client.get("/status").status_code == 200


def test_two_apps_in_one_process_share_nothing(tmp_path, backend):
    _, events, provider = backend
    services = BackendServices(Predictor(load_catalogue(), provider, ImageSource(None)), events,
                               status_counters(events, provider))  # fmt: skip
    first = create_app(services, ("a", "one"), 10_000).test_client()
    second = create_app(services, ("a", "two"), 20_000).test_client()
    assert first.get("/status", headers=_auth("a", "one")).status_code == 200
    assert second.get("/status", headers=_auth("a", "one")).status_code == 401
    assert second.get("/status", headers=_auth("a", "two")).status_code == 200
    body = b'{"action": "X", "pad": "' + b" " * 15_000 + b'"}'
    assert (
        first.post("/webhook", data=body, headers=_auth("a", "one"), content_type="application/json").status_code == 413
    )
    assert (
        second.post("/webhook", data=body, headers=_auth("a", "two"), content_type="application/json").status_code
        == 200
    )
    for client, auth in ((first, _auth("a", "one")), (second, _auth("a", "two"))):
        for path in ("/versions", "/metrics", "/is_training"):  # label-studio-ml's routes are not served
            answer = client.get(path, headers=auth)
            assert answer.status_code == 404 and answer.get_json()["status"] == 404


@pytest.mark.parametrize("error", [FileNotFoundError, IndexError, AssertionError, RuntimeError])
def test_unexpected_errors_are_json_without_traceback(tmp_path, backend, error):
    """label-studio-ml answered these three as text/html with the exception's text; now one JSON 500."""
    _, events, _ = backend

    def broken():
        raise error("/srv/secret/path/model.onnx missing")

    services = BackendServices(Predictor(load_catalogue(), broken, ImageSource(None)), events, lambda: {})
    answer = create_app(services, AUTH, 10_000).test_client().get("/health")
    assert answer.status_code == 500 and answer.is_json
    assert answer.get_json() == {"status": 500, "error": f"internal error ({error.__name__}); see the backend log"}
    assert "Traceback" not in answer.get_data(as_text=True) and "/srv/secret" not in answer.get_data(as_text=True)
