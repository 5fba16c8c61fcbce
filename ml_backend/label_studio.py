"""Label Studio access through ``label-studio-sdk`` (verified against Label Studio 1.23.2, SDK 2.1.2).

:class:`LabelStudioClient` is a thin layer over the SDK's ``LabelStudio`` client: every
method returns plain JSON-like dicts and lists (what the rooms store and compare), and
every failure is a :class:`LabelStudioError` with the HTTP status and a message that says
what to do and never contains the key. The SDK does the rest:

* the key is a legacy token (40 hex characters, sent as ``Authorization: Token KEY``;
  Label Studio 1.23 refuses it with 401 unless legacy tokens are enabled for the
  organisation, see :meth:`LabelStudioLogin.update_jwt_settings`) or a Personal Access
  Token (a JWT refresh token), which the SDK exchanges at ``POST /api/token/refresh/``
  for a 5-minute access token and exchanges again, once for all threads, when it expires;
* API GETs are retried on connection errors and 5xx answers; nothing else is (an annotation
  must not be stored twice; a file download fails at once);
* one ``httpx`` connection pool, safe to share between threads.

Three calls have no SDK method and go through the SDK's own HTTP client (the one its
generated clients use, so authentication and retries are the same): the multipart file
upload, the Data Manager columns, and the Data Manager action whose answer the SDK drops.
File downloads keep this module's SSRF guard (:meth:`LabelStudioClient.resolve_url`).

:class:`LabelStudioLogin` is the cookie session of a user who logged in through the login
form (what a browser does): it can change the organisation's token settings and create
Personal Access Tokens, which API keys cannot always do and the SDK cannot log in for.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qsl, unquote, urljoin, urlsplit

import httpx
import pydantic
import requests
from label_studio_sdk.client import LabelStudio
from label_studio_sdk.core.api_error import ApiError
from label_studio_sdk.core.request_options import RequestOptions

from ml_backend.label_studio_urls import origin

_RETRIES = 2  # GETs only, on connection errors and 5xx answers (the SDK's back-off: 1 s, 2 s)
_ONCE: RequestOptions = {"max_retries": 0}  # a POST, PATCH or DELETE is sent once: no duplicate annotations
_UPLOAD_BATCH_FILES = 50  # Label Studio accepts at most 100 files per request (DATA_UPLOAD_MAX_NUMBER_FILES)
_UPLOAD_BATCH_BYTES = 200 * 2**20  # and 250 MiB per request (DATA_UPLOAD_MAX_MEMORY_SIZE)
_MAX_REDIRECTS = 3
_PAGE_SIZE = 100
_B64URL = re.compile(r"^[A-Za-z0-9_-]+={0,2}$")


class LabelStudioError(RuntimeError):
    """Label Studio answered with an error status, or could not be reached.

    Attributes:
        status_code: The HTTP status, or None when no answer came.
        method: HTTP method of the failed request.
        path: Path of the failed request (without host).
    """

    def __init__(self, message: str, status_code: int | None = None, method: str = "", path: str = "") -> None:
        super().__init__(message)
        self.status_code = status_code
        self.method = method
        self.path = path


def is_personal_access_token(key: str) -> bool:
    """True when ``key`` has the shape of a JWT (a Personal Access Token), not a legacy token."""
    parts = key.split(".")
    if len(parts) != 3 or not all(_B64URL.match(part) for part in parts):
        return False
    try:
        header = json.loads(base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4)))
    except (ValueError, binascii.Error):
        return False
    return isinstance(header, dict) and "alg" in header


def _body_detail(body: Any) -> str:
    """A short readable reason from the body of a Label Studio error answer."""
    if body is None:
        return "no details"
    if isinstance(body, str | bytes):
        text = " ".join((body.decode(errors="replace") if isinstance(body, bytes) else body).split())
        return text[:300] or "no details"
    if not isinstance(body, dict):
        return json.dumps(body, default=str)[:300]
    detail = str(body.get("detail") or body.get("message") or body.get("error") or "")
    errors = body.get("validation_errors")
    if errors:
        detail = f"{detail}: {json.dumps(errors)[:500]}" if detail else json.dumps(errors)[:500]
    return detail or json.dumps(body, default=str)[:300]


def _answer_body(response: requests.Response | httpx.Response) -> Any:
    """An answer's parsed JSON, its text when it is not JSON, None when it is empty (read it first)."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text


def _error_hint(status: int, detail: str, scheme: str) -> str:
    if status == 401 and "legacy token authentication has been disabled" in detail:
        return (
            " (legacy tokens are off for this organisation: enable them under Organization > API Tokens Settings"
            " or use a Personal Access Token)"
        )
    if status == 401 and scheme == "Bearer":
        return (
            " (Label Studio refused the Personal Access Token, which is exchanged at POST /api/token/refresh/:"
            " create a new one under Account & Settings)"
        )
    if status == 401:
        return f" (check the API key; it was sent as '{scheme}' authorization)"
    return ""


def _plain(value: Any) -> Any:
    """The SDK's typed answer as the JSON Label Studio sent (dicts and lists; fields it left out stay out)."""
    if isinstance(value, pydantic.BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_unset=True)
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


def _batches(paths: Sequence[Path]) -> Iterator[list[Path]]:
    batch: list[Path] = []
    size = 0
    for path in paths:
        length = path.stat().st_size
        if batch and (len(batch) >= _UPLOAD_BATCH_FILES or size + length > _UPLOAD_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(path)
        size += length
    if batch:
        yield batch


class LabelStudioClient:
    """Label Studio through ``label-studio-sdk``, authenticated with a legacy token or a PAT.

    The SDK client is made at the first call (so making this one needs no server) and
    again after :meth:`close`.

    Args:
        url: Base URL of Label Studio, e.g. ``http://127.0.0.1:8080``.
        api_key: Legacy token or Personal Access Token (told apart by shape).
        timeout: Seconds for connecting and for each read.
    """

    def __init__(self, url: str, api_key: str, timeout: float = 30) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"Label Studio URL must be http(s)://host[:port], got {url!r}")
        if not api_key or not api_key.strip():
            raise ValueError("a Label Studio API key is required (legacy token or Personal Access Token)")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._key = api_key.strip()
        self._pat = is_personal_access_token(self._key)
        self._lock = threading.Lock()
        self._sdk: LabelStudio | None = None
        self._http: httpx.Client | None = None

    def __repr__(self) -> str:
        return f"LabelStudioClient({self.url!r}, auth={self.auth_scheme!r})"

    @property
    def auth_scheme(self) -> str:
        """``'Bearer'`` for a Personal Access Token, ``'Token'`` for a legacy token."""
        return "Bearer" if self._pat else "Token"

    @property
    def sdk(self) -> LabelStudio:
        """The ``label_studio_sdk`` client behind this one (made at first use, shared by threads)."""
        with self._lock:
            if self._sdk is None:
                # redirects are not followed: what the SSRF guard checked is what is fetched
                self._http = httpx.Client(timeout=self.timeout, follow_redirects=False)
                self._sdk = LabelStudio(
                    base_url=self.url, api_key=self._key, timeout=self.timeout, max_retries=_RETRIES,
                    httpx_client=self._http,
                )  # fmt: skip
            return self._sdk

    def close(self) -> None:
        """Close the connection pool; the next call opens a new one."""
        with self._lock:
            http, self._http, self._sdk = self._http, None, None
        if http is not None:
            http.close()

    def __enter__(self) -> LabelStudioClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- users and projects ------------------------------------------------------------

    def whoami(self) -> dict:
        """The user the key belongs to (``GET /api/current-user/whoami``)."""
        return self._call("GET /api/current-user/whoami", lambda ls: ls.users.whoami())

    def create_project(self, title: str, label_config: str, **extra: Any) -> dict:
        """Create a project (``POST /api/projects/``); ``title`` needs 3 or more characters.

        Args:
            title: Project title.
            label_config: Labelling configuration XML.
            **extra: Other project fields (``description``, ``sampling``, ``show_collab_predictions``...).
        """
        return self._call(
            "POST /api/projects/",
            lambda ls: ls.projects.create(title=title, label_config=label_config, request_options=_ONCE, **extra),
        )

    def get_project(self, project_id: int) -> dict:
        """One project (``GET /api/projects/ID/``)."""
        return self._call(f"GET /api/projects/{int(project_id)}/", lambda ls: ls.projects.get(id=int(project_id)))

    def update_project(self, project_id: int, **fields: Any) -> dict:
        """Change project fields (``PATCH /api/projects/ID/``); returns the updated project."""
        return self._call(
            f"PATCH /api/projects/{int(project_id)}/",
            lambda ls: ls.projects.update(id=int(project_id), request_options=_ONCE, **fields),
        )

    def list_projects(self) -> list[dict]:
        """All projects the user can see, every page (``GET /api/projects/``)."""
        return self._call("GET /api/projects/", lambda ls: list(ls.projects.list(page_size=_PAGE_SIZE)))

    def find_project_by_title(self, title: str) -> dict | None:
        """The first project whose title equals ``title`` exactly, or None."""
        found = self._call("GET /api/projects/", lambda ls: list(ls.projects.list(title=title, page_size=_PAGE_SIZE)))
        return next((project for project in found if project.get("title") == title), None)

    # -- tasks ---------------------------------------------------------------------------

    def import_tasks(self, project_id: int, tasks: list[dict]) -> list[int]:
        """Create tasks from JSON (``POST /api/projects/ID/import``); returns their ids in order.

        Each task is ``{"data": {...}}`` and may carry ``predictions``/``annotations``.
        """
        if not tasks:
            return []
        answer = self._call(
            f"POST /api/projects/{int(project_id)}/import",
            lambda ls: ls.projects.import_tasks(
                id=int(project_id),
                request=tasks,  # type: ignore[arg-type]  # dicts are sent as they are, keys the SDK has no field for too
                return_task_ids=True,
                request_options=_ONCE,
            ),
        )
        return [int(task_id) for task_id in answer.get("task_ids") or []]

    def upload_files(self, project_id: int, paths: Iterable[str | Path]) -> list[int]:
        """Upload image files as new tasks, the way the Label Studio UI does.

        Multipart ``POST /api/projects/ID/import`` (in batches of at most 50 files /
        200 MiB; the SDK's ``import_tasks`` sends JSON only). Label Studio stores each file
        under ``/data/upload/ID/...`` and makes one task per file whose data points at it.

        Returns:
            The created task ids, in the order of ``paths``.
        """
        files = [Path(path) for path in paths]
        for path in files:
            if not path.is_file():
                raise FileNotFoundError(f"cannot upload {path}: not a file")
        endpoint = f"api/projects/{int(project_id)}/import"
        task_ids: list[int] = []
        for batch in _batches(files):
            with ExitStack() as stack:
                parts = {f"file{i}": (item.name, stack.enter_context(item.open("rb"))) for i, item in enumerate(batch)}
                answer = self._raw("POST", endpoint, params={"return_task_ids": "true"}, files=parts)
            task_ids.extend(int(task_id) for task_id in answer.get("task_ids", []))
        return task_ids

    def list_tasks(self, project_id: int, full: bool = False) -> list[dict]:
        """All tasks of a project, every page (``GET /api/tasks/?project=ID``).

        ``full``: also their predictions, annotations and computed fields such as
        ``predictions_model_versions`` (``fields=all``; Label Studio leaves them out otherwise).
        """
        fields = "all" if full else "task_only"
        return self._call(
            "GET /api/tasks/",
            lambda ls: list(ls.tasks.list(project=int(project_id), fields=fields, page_size=_PAGE_SIZE)),
        )

    def get_task(self, task_id: int) -> dict:
        """One task with its data (``GET /api/tasks/ID/``)."""
        return self._call(f"GET /api/tasks/{int(task_id)}/", lambda ls: ls.tasks.get(id=str(int(task_id))))

    def update_task(self, task_id: int, data: dict) -> dict:
        """Replace a task's data (``PATCH /api/tasks/ID/``); returns the updated task."""
        return self._call(
            f"PATCH /api/tasks/{int(task_id)}/",
            lambda ls: ls.tasks.update(id=str(int(task_id)), data=data, request_options=_ONCE),
        )

    # -- storages ------------------------------------------------------------------------

    def local_storages(self, project_id: int) -> list[dict]:
        """Local-files source storages of a project (``GET /api/storages/localfiles/?project=ID``)."""
        return self._call(
            "GET /api/storages/localfiles/", lambda ls: ls.import_storage.local.list(project=int(project_id))
        )

    def create_local_storage(self, project_id: int, path: str | Path, title: str) -> dict:
        """Connect a folder as local-files source storage of a project (``POST /api/storages/localfiles/``).

        ``path`` must be an existing absolute folder below Label Studio's
        ``LOCAL_FILES_DOCUMENT_ROOT``; Label Studio then serves ``/data/local-files/?d=...``
        URLs below it to the project's users. Nothing is synced (no tasks are created).
        """
        return self._call(
            "POST /api/storages/localfiles/",
            lambda ls: ls.import_storage.local.create(
                project=int(project_id), path=str(path), title=title, use_blob_urls=True, request_options=_ONCE
            ),
        )

    # -- predictions and annotations -----------------------------------------------------

    def task_predictions(self, task_id: int) -> list[dict]:
        """Predictions stored for a task (``GET /api/predictions/?task=ID``)."""
        return self._call("GET /api/predictions/", lambda ls: ls.predictions.list(task=int(task_id)))

    def create_prediction(self, task_id: int, result: list[dict], score: float, model_version: str) -> dict:
        """Store a prediction for a task (``POST /api/predictions/``)."""
        return self._call(
            "POST /api/predictions/",
            lambda ls: ls.predictions.create(
                task=int(task_id), result=result, score=float(score), model_version=model_version,
                request_options=_ONCE,
            ),
        )  # fmt: skip

    def delete_prediction(self, prediction_id: int) -> None:
        """Delete a prediction (``DELETE /api/predictions/ID/``)."""
        self._call(
            f"DELETE /api/predictions/{int(prediction_id)}/",
            lambda ls: ls.predictions.delete(id=int(prediction_id), request_options=_ONCE),
        )

    def annotations(self, task_id: int) -> list[dict]:
        """Annotations of a task (``GET /api/tasks/ID/annotations/``)."""
        return self._call(
            f"GET /api/tasks/{int(task_id)}/annotations/", lambda ls: ls.annotations.list(id=int(task_id))
        )

    def get_annotation(self, annotation_id: int) -> dict:
        """One annotation (``GET /api/annotations/ID/``)."""
        return self._call(
            f"GET /api/annotations/{int(annotation_id)}/", lambda ls: ls.annotations.get(id=int(annotation_id))
        )

    def create_annotation(
        self,
        task_id: int,
        result: list[dict],
        lead_time: float | None = None,
        was_cancelled: bool = False,
        **extra: Any,
    ) -> dict:
        """Submit an annotation as the key's user (``POST /api/tasks/ID/annotations/``).

        Args:
            task_id: The task.
            result: Regions in Label Studio format.
            lead_time: Seconds the annotator spent, if known.
            was_cancelled: True for a skipped task.
            **extra: Other annotation fields (``parent_prediction``, ``ground_truth``...).
        """
        if lead_time is not None:
            extra["lead_time"] = float(lead_time)
        return self._call(
            f"POST /api/tasks/{int(task_id)}/annotations/",
            lambda ls: ls.annotations.create(
                id=int(task_id), result=result, was_cancelled=was_cancelled, request_options=_ONCE, **extra
            ),
        )

    def delete_annotation(self, annotation_id: int) -> None:
        """Delete an annotation (``DELETE /api/annotations/ID/``)."""
        self._call(
            f"DELETE /api/annotations/{int(annotation_id)}/",
            lambda ls: ls.annotations.delete(id=int(annotation_id), request_options=_ONCE),
        )

    # -- ML backends ---------------------------------------------------------------------

    def connect_ml_backend(
        self,
        project_id: int,
        url: str,
        title: str,
        is_interactive: bool = False,
        basic_auth: tuple[str, str] | None = None,
    ) -> dict:
        """Connect an ML backend to a project (``POST /api/ml/``).

        Label Studio checks the backend's ``/health`` and ``/setup`` first. A backend on
        loopback or a private network needs ``ML_BLOCK_LOCAL_IP=false`` in Label Studio's
        environment, otherwise this fails with 403/400.

        Args:
            project_id: The project.
            url: Backend URL as Label Studio (not this client) reaches it.
            title: Name shown in the project settings.
            is_interactive: Enable interactive pre-annotations (smart tools).
            basic_auth: ``(user, password)`` when the backend requires HTTP basic auth.
        """
        auth: dict[str, Any] = {}
        if basic_auth is not None:
            user, password = basic_auth
            auth = {"auth_method": "BASIC_AUTH", "basic_auth_user": user, "basic_auth_pass": password}
        return self._call(
            "POST /api/ml/",
            lambda ls: ls.ml.create(
                url=url, project=int(project_id), title=title, is_interactive=is_interactive, request_options=_ONCE,
                **auth,
            ),
        )  # fmt: skip

    def list_ml_backends(self, project_id: int) -> list[dict]:
        """ML backends connected to a project (``GET /api/ml/?project=ID``)."""
        return self._call("GET /api/ml/", lambda ls: ls.ml.list(project=int(project_id)))

    def disconnect_ml_backend(self, ml_backend_id: int) -> None:
        """Remove an ML backend from its project (``DELETE /api/ml/ID``); the project stays."""
        self._call(
            f"DELETE /api/ml/{int(ml_backend_id)}",
            lambda ls: ls.ml.delete(id=int(ml_backend_id), request_options=_ONCE),
        )

    def train_ml_backend(self, ml_backend_id: int) -> None:
        """Press "Start training" for a connected backend (``POST /api/ml/ID/train``)."""
        self._call(
            f"POST /api/ml/{int(ml_backend_id)}/train",
            lambda ls: ls.ml.train(id=int(ml_backend_id), request_options=_ONCE),
        )

    def list_webhooks(self, project_id: int) -> list[dict]:
        """Webhooks of a project (``GET /api/webhooks/?project=ID``), e.g. the one to a backend's /webhook."""
        return self._call("GET /api/webhooks/", lambda ls: ls.webhooks.list(project=str(int(project_id))))

    def update_webhook(self, webhook_id: int, **fields: Any) -> dict:
        """Change a webhook (``PATCH /api/webhooks/ID/``), e.g. ``headers={"Authorization": ...}``."""
        return self._call(
            f"PATCH /api/webhooks/{int(webhook_id)}/",
            lambda ls: ls.webhooks.update(id=int(webhook_id), request_options=_ONCE, **fields),
        )

    def retrieve_predictions(self, project_id: int) -> dict:
        """Ask the connected backend for predictions on all tasks of a project.

        ``POST /api/dm/actions/?id=retrieve_tasks_predictions&project=ID`` with all items
        selected; Label Studio skips tasks that already have a prediction of the backend's
        current ``model_version``. Returns Label Studio's answer, e.g.
        ``{"processed_items": 3, "detail": "Retrieved 3 predictions"}`` (the SDK's
        ``actions.create`` drops it, so this call goes through :meth:`_raw`).
        """
        return self._raw(
            "POST",
            "api/dm/actions/",
            params={"id": "retrieve_tasks_predictions", "project": int(project_id)},
            json={"selectedItems": {"all": True}},
        )

    # -- Data Manager ---------------------------------------------------------------------

    def data_manager_columns(self, project_id: int) -> list[dict]:
        """The Data Manager's columns (``GET /api/dm/columns``, no SDK method), with ``visibility_defaults``."""
        return self._raw("GET", "api/dm/columns", params={"project": int(project_id)})["columns"]

    def data_manager_views(self, project_id: int) -> list[dict]:
        """The project's Data Manager tabs (``GET /api/dm/views``): ``id`` and ``data`` (title, ordering...)."""
        return self._call("GET /api/dm/views/", lambda ls: ls.views.list(project=int(project_id)))

    def create_data_manager_view(self, project_id: int, data: dict) -> dict:
        """Add a Data Manager tab (``POST /api/dm/views``); ``data`` as the UI stores it."""
        return self._call(
            "POST /api/dm/views/",
            lambda ls: ls.views.create(project=int(project_id), data=data, request_options=_ONCE),  # type: ignore[arg-type]
        )

    # -- files ---------------------------------------------------------------------------

    def resolve_url(self, url_or_path: str) -> str:
        """The absolute URL of a Label Studio path or URL, refusing anything off this host.

        Raises:
            ValueError: ``url_or_path`` is on another scheme, host or port than the client's
                base URL, carries user info, or contains a ``..`` segment (also
                percent-encoded); the message names the URL.
        """
        if not isinstance(url_or_path, str) or not url_or_path.strip():
            raise ValueError(f"not a Label Studio URL or path: {url_or_path!r}")
        raw = urlsplit(url_or_path.strip())  # before joining, which would swallow '..' segments
        segments = [raw.path] + [value for _, value in parse_qsl(raw.query, keep_blank_values=True)]
        absolute = urljoin(self.url + "/", url_or_path.strip())
        parts = urlsplit(absolute)
        if origin(absolute) != origin(self.url):
            raise ValueError(f"refusing to fetch {url_or_path!r}: only URLs on Label Studio at {self.url} are allowed")
        if parts.username is not None or parts.password is not None:
            raise ValueError(f"refusing to fetch {url_or_path!r}: URLs with user info are not allowed")
        for segment in segments:
            for _ in range(3):  # undo double percent-encoding too
                segment = unquote(segment)
            if ".." in PurePosixPath(segment.replace("\\", "/")).parts:
                raise ValueError(f"refusing to fetch {url_or_path!r}: '..' path traversal is not allowed")
        return absolute

    def download(self, url_or_path: str, max_bytes: int, follow_redirects: bool = True) -> bytes:
        """Fetch a file from Label Studio with this client's authorization.

        ``url_or_path`` is a task data value such as ``/data/upload/3/abc.png`` or an
        absolute URL on the same scheme, host and port as the client (the SSRF guard, see
        :meth:`resolve_url`). Redirects are followed only on that same origin.

        Args:
            url_or_path: Label Studio path or same-origin URL.
            max_bytes: Largest accepted size; the download stops once it is exceeded.
            follow_redirects: False: a redirect is an error (task images: what was checked
                must be what is fetched).

        Raises:
            ValueError: The URL is refused or the file is larger than ``max_bytes``.
            LabelStudioError: Label Studio answered with an error status (401: bad key).
        """
        if max_bytes <= 0:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        url = self.resolve_url(url_or_path)

        def fetch(ls: LabelStudio) -> bytes:
            nonlocal url
            # the SDK's current authorization (a PAT's access token is exchanged again when it has expired)
            headers = {"Authorization": ls._client_wrapper.get_headers()["Authorization"]}
            http = ls._client_wrapper.httpx_client.httpx_client
            for _ in range(_MAX_REDIRECTS + 1):
                with http.stream("GET", url, headers=headers, timeout=self.timeout) as response:
                    if response.status_code >= 400:
                        response.read()
                        raise ApiError(status_code=response.status_code, body=_answer_body(response))
                    if not response.is_redirect:
                        return self._read_limited(response, url_or_path, max_bytes)
                    if not follow_redirects:
                        raise LabelStudioError(
                            f"Label Studio redirected {url_or_path!r} (HTTP {response.status_code}); not followed",
                            response.status_code, "GET", urlsplit(url).path,
                        )  # fmt: skip
                    url = self.resolve_url(response.headers["Location"])  # Django redirects to absolute paths
            raise LabelStudioError(f"too many redirects fetching {url_or_path!r}", None, "GET", urlsplit(url).path)

        return self._call(f"GET {urlsplit(url).path}", fetch)

    # -- plumbing ------------------------------------------------------------------------

    @staticmethod
    def _read_limited(response: httpx.Response, what: str, max_bytes: int) -> bytes:
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            raise ValueError(f"{what} is {int(declared)} bytes, more than the limit of {max_bytes}")
        chunks: list[bytes] = []
        received = 0
        for chunk in response.iter_bytes(chunk_size=1 << 16):
            received += len(chunk)
            if received > max_bytes:
                raise ValueError(f"{what} is more than the limit of {max_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _call(self, what: str, call: Callable[[LabelStudio], Any]) -> Any:
        """Run ``call`` on the SDK client; its answer as plain JSON, its failures as :class:`LabelStudioError`.

        ``what`` is ``"METHOD /path"`` for the messages.
        """
        method, path = what.split(" ", 1)
        try:
            return _plain(call(self.sdk))
        except ApiError as exc:
            status = exc.status_code or 0
            detail = _body_detail(exc.body)
            message = (
                f"Label Studio {method} {path} failed with HTTP {status}: {detail}"
                f"{_error_hint(status, detail, self.auth_scheme)}"
            )
            raise LabelStudioError(message.replace(self._key, "***"), exc.status_code, method, path) from None
        except httpx.HTTPError as exc:
            raise LabelStudioError(
                f"cannot reach Label Studio at {self.url} ({method} {path}): {exc}".replace(self._key, "***"),
                None,
                method,
                path,
            ) from None

    def _raw(self, method: str, path: str, **kwargs: Any) -> Any:
        """A request the SDK has no method for, sent by the SDK's own HTTP client (its auth and retries).

        ``path`` is relative to the base URL; ``kwargs`` are ``params``, ``json`` or ``files``.
        """

        def send(ls: LabelStudio) -> Any:
            http = ls._client_wrapper.httpx_client  # what the SDK's generated raw clients call
            options = None if method == "GET" else _ONCE
            response = http.request(path, method=method, request_options=options, **kwargs)
            body = _answer_body(response)
            if response.status_code >= 400:
                raise ApiError(status_code=response.status_code, body=body)
            if isinstance(body, str):
                raise ApiError(status_code=response.status_code, body=f"not JSON: {body[:200]!r}")
            return body

        return self._call(f"{method} /{path}", send)


class LabelStudioLogin:
    """A user's cookie session, logged in through the login form like a browser.

    Args:
        url: Base URL of Label Studio.
        email: The user's e-mail (Label Studio's user name).
        password: The user's password.
        timeout: Seconds per request.

    Raises:
        LabelStudioError: The login form refused the e-mail or password.
    """

    def __init__(self, url: str, email: str, password: str, timeout: float = 30) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()
        login = self.url + "/user/login/"
        try:
            self.session.get(login, timeout=timeout).raise_for_status()
            response = self.session.post(
                login,
                data={
                    "email": email,
                    "password": password,
                    "csrfmiddlewaretoken": self.session.cookies.get("csrftoken", ""),
                },
                headers={"Referer": login},
                timeout=timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise LabelStudioError(
                f"cannot log in to Label Studio at {self.url}: {exc}", None, "POST", "/user/login/"
            ) from exc
        if response.status_code != 302 or "sessionid" not in self.session.cookies:
            raise LabelStudioError(
                f"Label Studio login as {email} failed (HTTP {response.status_code}); check the e-mail and password",
                response.status_code,
                "POST",
                "/user/login/",
            )

    def close(self) -> None:
        """Close the session's connections."""
        self.session.close()

    def __enter__(self) -> LabelStudioLogin:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def cookies(self) -> dict[str, str | None]:
        """The session cookies (``sessionid``, ``csrftoken``), e.g. for a browser."""
        return dict(self.session.cookies.items())

    def jwt_settings(self) -> dict:
        """The organisation's token settings (``GET /api/jwt/settings``)."""
        return self._call("GET", "/api/jwt/settings")

    def update_jwt_settings(self, legacy_api_tokens_enabled: bool = True, api_tokens_enabled: bool = True) -> dict:
        """Enable or disable legacy tokens and PATs for the organisation (``POST /api/jwt/settings``)."""
        body = {"legacy_api_tokens_enabled": legacy_api_tokens_enabled, "api_tokens_enabled": api_tokens_enabled}
        return self._call("POST", "/api/jwt/settings", body)

    def legacy_token(self) -> str:
        """The user's legacy API token (``GET /api/current-user/token``)."""
        return str(self._call("GET", "/api/current-user/token")["token"])

    def create_personal_access_token(self) -> str:
        """Create a Personal Access Token for the user (``POST /api/token/``).

        Label Studio allows one valid PAT per user: existing ones are revoked first
        (``POST /api/token/blacklist/``), so earlier PATs of this user stop working.
        """
        for token in self._call("GET", "/api/token/"):
            self._call("POST", "/api/token/blacklist/", {"refresh": token["token"]})
        return str(self._call("POST", "/api/token/")["token"])

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        # a None value (a cookie without one) makes requests leave the header out; its stub allows no None
        headers: dict[str, Any] = {"X-CSRFToken": self.session.cookies.get("csrftoken", ""), "Referer": self.url + "/"}
        try:
            response = self.session.request(method, self.url + path, json=body, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            raise LabelStudioError(f"cannot reach Label Studio at {self.url}: {exc}", None, method, path) from exc
        if response.status_code >= 400:
            raise LabelStudioError(
                f"Label Studio {method} {path} failed with HTTP {response.status_code}: {_body_detail(_answer_body(response))}",
                response.status_code,
                method,
                path,
            )
        return response.json() if response.content else None
