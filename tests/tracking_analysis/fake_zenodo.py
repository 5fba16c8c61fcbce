"""A local stand-in for Zenodo's deposition REST API (the subset ``scraiber publish`` uses).

Zenodo cannot be reached from the machines scrAiber is built on, so the client is tested
against this server on 127.0.0.1. It follows https://developers.zenodo.org as documented:

* ``POST /api/deposit/depositions`` -> 201, a draft with ``links.bucket`` and a pre-reserved DOI;
* ``PUT /api/deposit/depositions/<id>`` ``{"metadata": ...}`` -> 200, or 400 ``{"status", "message",
  "errors": [{"field", "message"}]}`` for missing or invalid fields (upload_type, title, creators
  with names, description, access_right, licence of open records, ISO publication date, relations);
* ``PUT /api/files/<bucket>/<name>`` (raw bytes) -> 201 ``{"key", "size", "checksum": "md5:..."}``;
* ``GET /api/deposit/depositions/<id>`` -> 200;
* ``POST /api/deposit/depositions/<id>/actions/publish`` -> 202 (``state`` done, ``submitted``,
  ``doi``), or 400 without files or valid metadata;
* every request needs ``Authorization: Bearer <token>`` (else 401); a token in the query string is refused.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

UPLOAD_TYPES = {
    "publication",
    "poster",
    "presentation",
    "dataset",
    "image",
    "video",
    "software",
    "lesson",
    "physicalobject",
    "other",
}
RELATIONS = {
    "isCitedBy", "cites", "isSupplementTo", "isSupplementedBy", "isContinuedBy", "continues", "isDescribedBy",
    "describes", "hasMetadata", "isMetadataFor", "isNewVersionOf", "isPreviousVersionOf", "isPartOf", "hasPart",
    "isReferencedBy", "references", "isDocumentedBy", "documents", "isCompiledBy", "compiles", "isVariantFormOf",
    "isOriginalFormOf", "isIdenticalTo", "isAlternateIdentifier", "isReviewedBy", "reviews", "isDerivedFrom",
    "isSourceOf", "requires", "isRequiredBy", "isObsoletedBy", "obsoletes",
}  # fmt: skip


def metadata_errors(metadata: Any) -> list[dict[str, str]]:
    """Zenodo's validation of deposition metadata (the documented required fields and vocabularies)."""
    if not isinstance(metadata, dict):
        return [{"field": "metadata", "message": "Not a valid object."}]
    errors = []

    def need(name: str, ok: bool, message: str = "Field is required.") -> None:
        if not ok:
            errors.append({"field": f"metadata.{name}", "message": message})

    need("upload_type", metadata.get("upload_type") in UPLOAD_TYPES, "Invalid upload type.")
    need("title", bool(str(metadata.get("title", "")).strip()))
    need("description", bool(str(metadata.get("description", "")).strip()))
    creators = metadata.get("creators")
    need(
        "creators",
        isinstance(creators, list) and bool(creators) and all(isinstance(c, dict) and c.get("name") for c in creators),
    )
    for i, creator in enumerate(creators or []):
        orcid = creator.get("orcid") if isinstance(creator, dict) else None
        need(
            f"creators.{i}.orcid",
            orcid is None or bool(re.fullmatch(r"\d{4}-\d{4}-\d{4}-\d{3}[\dX]", orcid)),
            "Not a valid ORCID.",
        )
    access = metadata.get("access_right", "open")
    need("access_right", access in {"open", "embargoed", "restricted", "closed"}, "Invalid access right.")
    if access in {"open", "embargoed"}:
        need("license", bool(metadata.get("license")))
    if "publication_date" in metadata:
        need(
            "publication_date",
            bool(re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(metadata["publication_date"]))),
            "Not a valid date.",
        )
    for i, related in enumerate(metadata.get("related_identifiers") or []):
        need(f"related_identifiers.{i}.relation", related.get("relation") in RELATIONS, "Invalid relation.")
        need(f"related_identifiers.{i}.identifier", bool(related.get("identifier")))
    return errors


@dataclass
class FakeDeposition:
    id: int
    bucket: str
    metadata: dict[str, Any] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)
    state: str = "unsubmitted"


@dataclass
class FakeZenodo:
    """The server's state, for tests to inspect."""

    token: str
    url: str = ""
    depositions: dict[int, FakeDeposition] = field(default_factory=dict)
    requests: list[tuple[str, str, str]] = field(default_factory=list)  # (method, path with query, Authorization)
    _server: ThreadingHTTPServer | None = None

    def deposition_json(self, dep: FakeDeposition) -> dict[str, Any]:
        api = f"{self.url}/api"
        doi = f"10.5072/zenodo.{dep.id}"
        return {
            "id": dep.id, "state": dep.state, "submitted": dep.state == "done",
            "doi": doi if dep.state == "done" else "",
            "metadata": {**dep.metadata, "prereserve_doi": {"doi": doi, "recid": dep.id}},
            "files": [{"filename": name, "filesize": len(data), "checksum": hashlib.md5(data).hexdigest()} for name, data in dep.files.items()],
            "links": {"self": f"{api}/deposit/depositions/{dep.id}", "html": f"{self.url}/deposit/{dep.id}",
                      "bucket": f"{api}/files/{dep.bucket}", "publish": f"{api}/deposit/depositions/{dep.id}/actions/publish"},
        }  # fmt: skip

    def start(self) -> FakeZenodo:
        state = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _handle(self, method: str) -> None:
                state.requests.append((method, self.path, self.headers.get("Authorization", "")))
                body = self._body()
                if "access_token" in self.path or self.headers.get("Authorization") != f"Bearer {state.token}":
                    return self._answer(
                        401, {"status": 401, "message": "The server could not verify that you are authorized."}
                    )
                path = self.path.split("?", 1)[0]
                if method == "POST" and path == "/api/deposit/depositions":
                    dep = FakeDeposition(len(state.depositions) + 1000, uuid.uuid4().hex)
                    state.depositions[dep.id] = dep
                    return self._answer(201, state.deposition_json(dep))
                if match := re.fullmatch(r"/api/deposit/depositions/(\d+)", path):
                    dep = state.depositions.get(int(match.group(1)))
                    if dep is None:
                        return self._answer(404, {"status": 404, "message": "PID does not exist."})
                    if method == "GET":
                        return self._answer(200, state.deposition_json(dep))
                    if method == "PUT":
                        if dep.state == "done":
                            return self._answer(
                                400, {"status": 400, "message": "Published deposition cannot be edited."}
                            )
                        metadata = json.loads(body or b"{}").get("metadata")
                        errors = metadata_errors(metadata)
                        if errors:
                            return self._answer(400, {"status": 400, "message": "Validation error.", "errors": errors})
                        dep.metadata = metadata
                        return self._answer(200, state.deposition_json(dep))
                if method == "POST" and (
                    match := re.fullmatch(r"/api/deposit/depositions/(\d+)/actions/publish", path)
                ):
                    dep = state.depositions[int(match.group(1))]
                    errors = metadata_errors(dep.metadata) + (
                        [] if dep.files else [{"field": "files", "message": "Minimum one file must be provided."}]
                    )
                    if errors:
                        return self._answer(400, {"status": 400, "message": "Validation error.", "errors": errors})
                    dep.state = "done"
                    return self._answer(202, state.deposition_json(dep))
                if method == "PUT" and (match := re.fullmatch(r"/api/files/([0-9a-f]+)/(.+)", path)):
                    dep = next((d for d in state.depositions.values() if d.bucket == match.group(1)), None)
                    if dep is None or dep.state == "done":
                        return self._answer(
                            404 if dep is None else 403, {"status": 404, "message": "Bucket not found."}
                        )
                    dep.files[match.group(2)] = body
                    return self._answer(
                        201,
                        {"key": match.group(2), "size": len(body), "checksum": f"md5:{hashlib.md5(body).hexdigest()}"},
                    )
                return self._answer(404, {"status": 404, "message": "Not found."})

            def do_GET(self) -> None:  # noqa: N802 - http.server API
                self._handle("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._handle("POST")

            def do_PUT(self) -> None:  # noqa: N802
                self._handle("PUT")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
