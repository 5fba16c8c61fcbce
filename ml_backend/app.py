"""The WSGI app Label Studio talks to: label-studio-ml's Flask app, hardened.

We take the app ``label_studio_ml.api.init_app`` returns and replace four of its views:

* ``/predict`` and ``/setup`` report the served model's version (label-studio-ml 1.0.9
  reports a job id or "INITIAL", and Label Studio would then re-predict every task on
  every request or never ask for the new model's predictions);
* ``/webhook`` stores the event durably before answering (1.0.9 runs a training job
  inline and answers 500 on a payload without ``action``);
* ``/train`` (Label Studio's "Start training" when its webhook feature flag is off) stores a
  START_TRAINING event instead of training inside the request;
* ``/health`` says only UP and the model version (1.0.9 also shows server paths).

We also add ``GET /status``, basic auth, a request-size limit and JSON errors, and drop
1.0.9's request/response debug logging hooks (they log Authorization headers and
bodies). Tracebacks never reach a response body.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from typing import Any

from flask import Flask, Response, current_app, jsonify, request
from label_studio_ml.api import init_app
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ml_backend.adapter import BackendServices, ScraiberModel

log = logging.getLogger(__name__)
OPEN_PATHS = frozenset({"/health", "/"})


class BadRequest(ValueError):
    """A request the client must fix; answered with HTTP 400 and the message."""


def create_app(
    services: BackendServices,
    basic_auth: tuple[str, str] | None,
    max_request_bytes: int,
    model_dir: str,
) -> Flask:
    """Build the Flask app serving Label Studio.

    Args:
        services: Predictor, event sink and status, built once per process.
        basic_auth: (user, password) required on every path except /health; None disables auth
            (only for the local demo).
        max_request_bytes: Larger request bodies get HTTP 413.
        model_dir: Working folder label-studio-ml requires.
    """
    app = init_app(ScraiberModel, model_dir=model_dir, services=services)
    app.before_request_funcs.pop(None, None)
    app.after_request_funcs.pop(None, None)
    app.config["MAX_CONTENT_LENGTH"] = max_request_bytes

    def note_project(body: dict[str, Any]) -> None:
        project = _project_id(body)
        if project is not None and services.connected is not None:
            services.connected(project)

    def predict() -> Response:
        body = _json_body()
        note_project(body)
        tasks, label_config = body.get("tasks"), body.get("label_config")
        if not isinstance(tasks, list) or not all(isinstance(t, dict) for t in tasks):
            raise BadRequest("'tasks' must be a list of task objects")
        if not isinstance(label_config, str) or not label_config.strip():
            raise BadRequest("'label_config' (the project's labelling config XML) is missing")
        params = body.get("params") if isinstance(body.get("params"), dict) else {}
        context = params.get("context") if isinstance(params.get("context"), dict) else None
        project = _project_id(body)
        model = ScraiberModel(label_config=label_config, services=services)
        results = model.predict(tasks, context=context, project=project)
        return jsonify({"results": results, "model_version": services.predictor.model_version(project)})

    def setup() -> Response:
        body = _json_body()
        note_project(body)
        return jsonify({"model_version": services.predictor.model_version(_project_id(body))})

    def webhook() -> Response:
        body = _json_body()
        if not isinstance(body.get("action"), str) or not body["action"]:
            raise BadRequest("webhook payload has no 'action'")
        stored = services.events.record(body)
        return jsonify({"status": "stored" if stored else "duplicate"}), 200

    def train() -> Response:
        project = _project_id(_json_body())
        payload = {"action": "START_TRAINING", "project": {"id": project} if project is not None else None,
                   "via": "/train", "requested_at": time.time()}  # fmt: skip
        services.events.record(payload)
        return jsonify({"job": f"start-training-{payload['requested_at']:.0f}"}), 201

    def health() -> Response:
        return jsonify({"status": "UP", "model_version": services.predictor.model_version()})

    def status() -> Response:
        return jsonify(services.status())

    app.view_functions.update(
        {"_predict": predict, "_setup": setup, "webhook": webhook, "_train": train, "health": health}
    )
    if "status" in app.view_functions:
        app.view_functions["status"] = status
    else:
        app.add_url_rule("/status", "status", status, methods=["GET"])

    app.before_request_funcs[None] = [lambda: _check_auth(basic_auth)]
    app.register_error_handler(BadRequest, lambda exc: _error(400, str(exc)))
    app.register_error_handler(HTTPException, lambda exc: _error(exc.code or 500, exc.description or exc.name))
    app.register_error_handler(Exception, _unexpected)
    return app


def _json_body() -> dict[str, Any]:
    limit = current_app.config["MAX_CONTENT_LENGTH"]
    if request.content_length is not None and request.content_length > limit:
        raise RequestEntityTooLarge(f"request body of {request.content_length} bytes exceeds {limit} bytes")
    raw = request.stream.read(limit + 1)  # also bounds chunked bodies without a Content-Length
    if len(raw) > limit:
        raise RequestEntityTooLarge(f"request body exceeds {limit} bytes")
    try:
        body = json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    return body


def _project_id(body: dict[str, Any]) -> int | None:
    """The project id from Label Studio's ``"project": "ID.created_timestamp"`` (None if absent)."""
    project = str(body.get("project") or "").split(".")[0]
    return int(project) if project.isdigit() else None


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
