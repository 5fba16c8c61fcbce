"""The WSGI app Label Studio talks to: the ML-backend protocol, and nothing else.

Label Studio 1.23.2 calls ``GET /health``, ``POST /setup``, ``POST /predict``,
``POST /webhook`` and (with its webhook feature flag off) ``POST /train``. This app is a
Flask app of its own per :func:`create_app` call with exactly these routes and
``GET /status``; label-studio-ml's module-level app is not used (its ``/versions``
answered with a traceback and server paths, its error handlers answered raw text, and
every app built from it shared one Flask object). Label Studio treats a missing
``/versions`` (404) as "one version, the current one".

* ``/predict`` and ``/setup`` report the served model's version and check the labelling
  config (400 when it does not parse or has no control scrAiber fills);
* ``/webhook`` stores the fields the harvest needs before answering (400 for a payload
  the harvest could not use);
* ``/train`` stores a START_TRAINING event instead of training inside the request;
* ``/health`` is open (Label Studio checks it without auth): UP or DEGRADED, the model
  version, and the harvest worker's state and queue age when known;
* every other path needs basic auth.

Every request that is not understood is answered 4xx with ``{"status", "error"}``; request
bodies are read with a size limit and JSON nesting is bounded. Tracebacks never reach a
response body: an unexpected error is logged and answered 500 with the exception's type.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import time
from typing import Any

from flask import Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ml_backend.adapter import BackendServices
from ml_backend.label_map import LabelConfigError

log = logging.getLogger(__name__)
OPEN_PATHS = frozenset({"/health", "/"})
#: Deepest JSON accepted: Label Studio's payloads nest about 8 levels (webhook regions).
MAX_JSON_DEPTH = 64
#: Longest labelling config accepted (Label Studio's own are a few KB).
MAX_CONFIG_CHARS = 2**20
#: Largest Label Studio id (PostgreSQL integer).
MAX_ID = 2**31 - 1
_PROJECT = re.compile(r"([0-9]{1,10})(?:\.[0-9]{1,20})?")
_HOST = re.compile(r"[A-Za-z0-9.\-]{1,253}(?::[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](?::[0-9]{1,5})?")


class BadRequest(ValueError):
    """A request the client must fix; answered with HTTP 400 and the message."""


def create_app(services: BackendServices, basic_auth: tuple[str, str] | None, max_request_bytes: int) -> Flask:
    """Build the Flask app serving Label Studio (a new, independent app per call).

    Args:
        services: Predictor, event sink and status, built once per process.
        basic_auth: (user, password) required on every path except /health; None disables auth
            (only for the local demo).
        max_request_bytes: Larger request bodies get HTTP 413.
    """
    app = Flask("scraiber")
    app.config["SCRAIBER_MAX_REQUEST_BYTES"] = max_request_bytes
    # Werkzeug >= 2.3 cuts a chunked body at MAX_CONTENT_LENGTH without an error; one byte more
    # lets _json_body see that the body is larger than the limit and answer 413.
    app.config["MAX_CONTENT_LENGTH"] = max_request_bytes + 1

    def note_project(project: int | None) -> None:
        if project is not None and services.connected is not None:
            services.connected(project, _backend_url())

    def check_config(config: Any, what: str) -> str:
        if not isinstance(config, str) or not config.strip():
            raise BadRequest(f"'{what}' (the project's labelling config XML) is missing")
        if len(config) > MAX_CONFIG_CHARS:
            raise BadRequest(f"'{what}' is longer than {MAX_CONFIG_CHARS} characters")
        try:
            services.predictor.check_config(config)
        except LabelConfigError as exc:
            raise BadRequest(str(exc)) from None
        return config

    @app.route("/predict", methods=["POST"])
    def predict() -> Response:
        body = _json_body()
        project = _project_id(body.get("project"))
        tasks = body.get("tasks")
        if not isinstance(tasks, list) or not all(isinstance(t, dict) for t in tasks):
            raise BadRequest("'tasks' must be a list of task objects")
        label_config = check_config(body.get("label_config"), "label_config")
        note_project(project)
        raw_params = body.get("params")
        params = raw_params if isinstance(raw_params, dict) else {}
        context = params.get("context") if isinstance(params.get("context"), dict) else None
        if context and services.refiner is not None and len(tasks) == 1:
            results = services.refiner.refine(tasks[0], context, label_config)
        else:
            results = services.predictor.predict(tasks, label_config, project)
        return jsonify({"results": results, "model_version": services.predictor.model_version(project)})

    @app.route("/setup", methods=["POST"])
    def setup() -> Response:
        body = _json_body()
        project = _project_id(body.get("project"))
        check_config(body.get("schema"), "schema")
        note_project(project)
        return jsonify({"model_version": services.predictor.model_version(project)})

    @app.route("/webhook", methods=["POST"])
    def webhook() -> tuple[Response, int]:
        body = _json_body()
        if not isinstance(body.get("action"), str) or not body["action"]:
            raise BadRequest("webhook payload has no 'action'")
        try:
            stored = services.events.record(body)
        except ValueError as exc:  # the event sink's verdict on a malformed payload
            raise BadRequest(str(exc)) from None
        return jsonify({"status": "stored" if stored else "duplicate"}), 200

    @app.route("/train", methods=["POST"])
    def train() -> tuple[Response, int]:
        body = _json_body()
        project = body.get("project")
        project_id = _project_id(project.get("id") if isinstance(project, dict) else project)
        payload = {"action": "START_TRAINING", "project": {"id": project_id} if project_id is not None else None,
                   "via": "/train", "requested_at": time.time()}  # fmt: skip
        services.events.record(payload)
        return jsonify({"job": f"start-training-{payload['requested_at']:.0f}"}), 201

    @app.route("/health", methods=["GET"])
    @app.route("/", methods=["GET"])
    def health() -> Response:
        body: dict[str, Any] = {"status": "UP", "model_version": services.predictor.model_version()}
        if services.health is not None:
            body.update(services.health())
        return jsonify(body)

    @app.route("/status", methods=["GET"])
    def status() -> Response:
        return jsonify(services.status())

    app.before_request(lambda: _check_auth(basic_auth))
    app.register_error_handler(BadRequest, lambda exc: _error(400, str(exc)))
    app.register_error_handler(HTTPException, lambda exc: _error(exc.code or 500, exc.description or exc.name))
    app.register_error_handler(Exception, _unexpected)
    return app


def _json_body() -> dict[str, Any]:
    limit = current_app.config["SCRAIBER_MAX_REQUEST_BYTES"]
    if request.content_length is not None and request.content_length > limit:
        raise RequestEntityTooLarge(f"request body of {request.content_length} bytes exceeds {limit} bytes")
    try:
        raw = request.stream.read(limit + 1)  # also bounds chunked bodies without a Content-Length
    except (OSError, ValueError) as exc:  # a stalled client, a broken chunked encoding
        raise BadRequest(f"the request body could not be read ({type(exc).__name__})") from None
    if len(raw) > limit:
        raise RequestEntityTooLarge(f"request body exceeds {limit} bytes")
    try:
        body = json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError):
        body = None
    except RecursionError:
        raise BadRequest(f"request body nests deeper than {MAX_JSON_DEPTH} levels") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    if _depth(body) > MAX_JSON_DEPTH:
        raise BadRequest(f"request body nests deeper than {MAX_JSON_DEPTH} levels")
    return body


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > MAX_JSON_DEPTH:
            return deepest
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        stack.extend((child, level + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def _project_id(value: Any) -> int | None:
    """The project id from Label Studio's ``"ID.created_timestamp"`` (or a plain id); None if absent.

    Raises:
        BadRequest: for anything else (not ASCII digits, zero, larger than a database id).
    """
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, str):
        text = value
    else:
        raise BadRequest("'project' must be Label Studio's 'ID.TIMESTAMP' string or an id")
    match = _PROJECT.fullmatch(text)
    if match is None or not 0 < int(match.group(1)) <= MAX_ID:
        raise BadRequest(f"'project' must be Label Studio's 'ID.TIMESTAMP' (ID 1-{MAX_ID}), got {text[:40]!r}")
    return int(match.group(1))


def _backend_url() -> str | None:
    """This backend's URL as the caller reached it (its ``Host``), to recognise it in Label Studio later."""
    host = request.headers.get("Host", "")
    return f"{request.scheme}://{host.lower()}" if _HOST.fullmatch(host) else None


def _check_auth(basic_auth: tuple[str, str] | None) -> Response | None:
    if basic_auth is None or request.path in OPEN_PATHS:
        return None
    auth = request.authorization
    if (
        auth is None
        or not hmac.compare_digest((auth.username or "").encode(), basic_auth[0].encode())
        or not hmac.compare_digest((auth.password or "").encode(), basic_auth[1].encode())
    ):
        response = _error(401, "authentication required: set the ML backend's basic auth user and password")
        response.headers["WWW-Authenticate"] = 'Basic realm="scraiber"'
        return response
    return None


def _error(code: int, message: str) -> Response:
    response = jsonify({"status": code, "error": message})
    response.status_code = code
    return response


def _unexpected(exc: Exception) -> Response:
    log.exception("unhandled error in %s %s", request.method, request.path)
    return _error(500, f"internal error ({type(exc).__name__}); see the backend log")
