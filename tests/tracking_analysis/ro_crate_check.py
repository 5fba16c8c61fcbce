"""Validate an RO-Crate offline with roc-validator (the ``rocrate-validator`` of the RO-Crate community).

The validator resolves the crate's JSON-LD ``@context`` (``https://w3id.org/ro/crate/1.1/context``)
over HTTP, which these machines cannot reach. It has an offline mode that answers from its
HTTP cache; the cache is filled here with the RO-Crate context document that the ``rocrate``
library ships (``rocrate/data/ro-crate.jsonld``, the 1.3 context: a superset of 1.1 with the
same IRIs for every term 1.1 defines), so every check runs, none is skipped.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import requests
import urllib3

CONTEXTS = ("https://w3id.org/ro/crate/1.1/context",)


def _cache_context(session, url: str) -> None:
    from rocrate.vocabs import RO_CRATE

    body = json.dumps({"@context": RO_CRATE["@context"]}).encode()
    headers = {"Content-Type": "application/ld+json"}
    response = requests.Response()
    response.status_code, response.reason, response.url, response._content = 200, "OK", url, body
    response.headers = requests.structures.CaseInsensitiveDict(headers)
    response.request = requests.Request(
        "GET", url, headers={"Accept": "application/ld+json, application/json"}
    ).prepare()
    response.raw = urllib3.HTTPResponse(
        io.BytesIO(body), headers=headers, status=200, preload_content=False, request_url=url
    )
    session.cache.save_response(response)


def validate_ro_crate(root: Path, cache: Path, severity: str = "RECOMMENDED") -> list[str]:
    """Issues roc-validator finds in the crate at ``root`` against the RO-Crate 1.1 profile (empty: valid)."""
    from rocrate_validator import models, services
    from rocrate_validator.utils.http import HttpRequester

    settings = services.ValidationSettings(
        rocrate_uri=str(root), profile_identifier="ro-crate-1.1", requirement_severity=models.Severity[severity],
        cache_path=str(cache / "http-cache"), offline=True,
    )  # fmt: skip
    for url in CONTEXTS:
        _cache_context(HttpRequester().session, url)
    result = services.validate(settings)
    return [f"{issue.severity.name}: {issue.message}" for issue in result.get_issues()]
