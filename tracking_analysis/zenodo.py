"""Depositing a package on Zenodo through its deposition REST API (``ZENODO_TOKEN``).

The subset of https://developers.zenodo.org used (all JSON, ``Authorization: Bearer <token>``):

1. ``POST /api/deposit/depositions`` with ``{}``: a new draft (``201``), its ``links.bucket``;
2. ``PUT /api/deposit/depositions/<id>`` with ``{"metadata": ...}`` (the ``.zenodo.json`` of the
   package): Zenodo validates it (``400`` with ``errors`` naming the fields);
3. ``PUT <bucket>/<file name>`` with the file's bytes: the answer's ``checksum`` (``md5:...``)
   is compared with the file's MD5;
4. only when asked: ``POST /api/deposit/depositions/<id>/actions/publish`` (``202``). Published
   records cannot be deleted; a draft can be reviewed (and discarded) on Zenodo first.

The token is sent only in the header and never logged or shown in errors. Zenodo cannot be
reached from the machines scrAiber is developed on: the client is tested against a local
HTTP server implementing this subset (``tests/tracking_analysis/fake_zenodo.py``).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests

log = logging.getLogger(__name__)

ZENODO_API = "https://zenodo.org/api"
SANDBOX_API = "https://sandbox.zenodo.org/api"
#: DataCite relation types -> Zenodo's (the same words, lower camel case).


class ZenodoError(OSError):
    """Zenodo refused a request or could not be reached; the message says what and why."""


@dataclass(frozen=True)
class Deposition:
    """A deposition as Zenodo describes it.

    Attributes:
        id: Deposition (record) id.
        state: ``unsubmitted`` (draft), ``inprogress`` or ``done`` (published).
        submitted: True once published.
        html_url: The deposition's page on Zenodo.
        bucket_url: Where files are uploaded.
        doi: The DOI (reserved for a draft, registered once published), or None.
        files: Uploaded files as Zenodo lists them.
    """

    id: int
    state: str
    submitted: bool
    html_url: str
    bucket_url: str
    doi: str | None = None
    files: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Deposition:
        """Read Zenodo's deposition JSON."""
        links = data.get("links") or {}
        reserved = ((data.get("metadata") or {}).get("prereserve_doi") or {}).get("doi")
        return cls(
            id=int(data["id"]), state=str(data.get("state", "")), submitted=bool(data.get("submitted")),
            html_url=str(links.get("html", "")), bucket_url=str(links.get("bucket", "")),
            doi=data.get("doi") or reserved, files=list(data.get("files") or []),
        )  # fmt: skip


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        while block := handle.read(2**20):
            digest.update(block)
    return digest.hexdigest()


class ZenodoClient:
    """The deposition API of one Zenodo instance.

    Args:
        api_url: API root, ``https://zenodo.org/api`` or ``https://sandbox.zenodo.org/api``.
        token: Personal access token with scopes ``deposit:write`` (and ``deposit:actions`` to publish).
        timeout: Seconds per request (uploads of large archives take longer: give more).
    """

    def __init__(self, api_url: str, token: str, timeout: float = 600.0) -> None:
        if not token:
            raise ValueError("set ZENODO_TOKEN (a Zenodo personal access token with deposit:write) to deposit")
        self.api_url = api_url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()
        self._session.headers["Authorization"] = f"Bearer {token}"

    def __repr__(self) -> str:
        return f"ZenodoClient({self.api_url!r})"  # never the token

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()

    def __enter__(self) -> ZenodoClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, url: str, expect: tuple[int, ...], **kwargs: Any) -> dict[str, Any]:
        try:
            response = self._session.request(method, url, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise ZenodoError(f"cannot reach Zenodo at {self.api_url} ({type(exc).__name__})") from None
        if response.status_code not in expect:
            raise ZenodoError(
                f"Zenodo answered {method} {url.split('?')[0]} with HTTP {response.status_code}: {_explain(response)}"
            )
        return response.json() if response.content else {}

    def create(self) -> Deposition:
        """A new, empty draft deposition."""
        return Deposition.from_json(self._request("POST", f"{self.api_url}/deposit/depositions", (200, 201), json={}))

    def get(self, deposition_id: int) -> Deposition:
        """The deposition's current state."""
        return Deposition.from_json(self._request("GET", f"{self.api_url}/deposit/depositions/{deposition_id}", (200,)))

    def set_metadata(self, deposition: Deposition, metadata: dict[str, Any]) -> Deposition:
        """Replace the deposition's metadata (Zenodo validates it)."""
        url = f"{self.api_url}/deposit/depositions/{deposition.id}"
        return Deposition.from_json(self._request("PUT", url, (200,), json={"metadata": metadata}))

    def upload(self, deposition: Deposition, path: Path, name: str | None = None) -> dict[str, Any]:
        """Upload a file into the deposition's bucket and check Zenodo's MD5 of it.

        Raises:
            ZenodoError: if the upload fails or Zenodo's checksum differs from the file's.
        """
        name = name or path.name
        with path.open("rb") as handle:
            stored = self._request("PUT", f"{deposition.bucket_url}/{quote(name)}", (200, 201), data=handle,
                                   headers={"Content-Type": "application/octet-stream"})  # fmt: skip
        expected = f"md5:{_md5(path)}"
        if stored.get("checksum") != expected:
            raise ZenodoError(
                f"Zenodo stored {name} with checksum {stored.get('checksum')}, the file has {expected}: upload again"
            )
        return stored

    def publish(self, deposition: Deposition) -> Deposition:
        """Publish the deposition (irreversible: the record gets its DOI and cannot be deleted)."""
        url = f"{self.api_url}/deposit/depositions/{deposition.id}/actions/publish"
        return Deposition.from_json(self._request("POST", url, (200, 202)))


def _explain(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or response.reason
    errors = "; ".join(f"{e.get('field', '?')}: {e.get('message', '')}" for e in body.get("errors") or [])
    return f"{body.get('message', response.reason)}" + (f" ({errors})" if errors else "")


def deposit(client: ZenodoClient, files: list[Path], metadata: dict[str, Any], publish: bool = False) -> Deposition:
    """Create a draft, set its metadata, upload ``files`` and, if ``publish``, publish it.

    Returns:
        The deposition as Zenodo describes it at the end.
    """
    draft = client.create()
    log.info("Zenodo draft %s created", draft.id)
    draft = client.set_metadata(draft, metadata)
    for path in files:
        client.upload(draft, path)
        log.info("uploaded %s (%d bytes)", path.name, path.stat().st_size)
    return client.publish(draft) if publish else client.get(draft.id)
