"""The one parser of Label Studio file URLs agrees with Label Studio 1.23.2's own URL resolver.

Fast tests check the parser on the adversarial corpus; the slow test asks Label Studio's
Django resolver (its real ``urls.py``, in a subprocess) how it routes every URL of the corpus
and every request the backend would send, and compares.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from ml_backend.label_studio_urls import LOCAL_FILES, STORAGE, UPLOAD, FileURLError, parse_file_url
from tests.security.cases import LOCAL_FILE_BYPASSES, SSRF_URLS

BASE = "http://127.0.0.1:8080"
LEGIT = [
    "/data/upload/3/2b1c-field.png",
    "/data/upload/3/2b1c-field%20one.png",
    "/data/upload/3/d%C3%BCnn.png",
    "http://127.0.0.1:8080/data/upload/3/a.png",
    "/data/local-files/?d=allowed/good.png",
    "/data/local-files/?d=allowed%2Fgood.png",
    "/data/local-files/?d=allowed/sub%20dir/good.png",
    "/tasks/12/resolve/?fileuri=czM6Ly9hbGxvd2VkLWJ1Y2tldC9rZXkucG5n",
    "/tasks/12/presign/?fileuri=czM6Ly9hbGxvd2VkLWJ1Y2tldC9rZXkucG5n",
]
CORPUS = LOCAL_FILE_BYPASSES + SSRF_URLS + LEGIT


def _parse(url: str):
    try:
        return parse_file_url(url, BASE)
    except FileURLError:
        return None


@pytest.mark.parametrize("url", LEGIT)
def test_label_studio_file_urls_are_accepted(url):
    assert _parse(url) is not None


@pytest.mark.parametrize("url", LOCAL_FILE_BYPASSES)
def test_no_local_files_bypass_parses_to_anything_but_the_named_file(url):
    parsed = _parse(url)
    if parsed is not None:  # accepted only as exactly one local file, which the allowed-root check then judges
        assert parsed.kind == LOCAL_FILES
        assert parse_qsl(urlsplit(parsed.target).query) == [("d", parsed.local_path)]
        assert ".." not in parsed.local_path.split("/")


def test_ambiguous_urls_are_refused_with_a_reason():
    assert (
        parse_file_url(LOCAL_FILE_BYPASSES[1], BASE).local_path == "secret/secret.png"
    )  # seen as Label Studio sees it
    cases = {
        LOCAL_FILE_BYPASSES[0]: "2 'd' parameters",
        LOCAL_FILE_BYPASSES[2]: "serves it as local files",
        LOCAL_FILE_BYPASSES[3]: "serves it as local files",
        "/data/./local-files/?d=x.png": "'.', '..'",
        "http://127.0.0.1:99999/data/upload/1/a.png": "only URLs on Label Studio",
        "http://user:pw@127.0.0.1:8080/data/upload/1/a.png": "user info",
    }
    for url, reason in cases.items():
        with pytest.raises(FileURLError, match=reason):
            parse_file_url(url, BASE)


_RESOLVER = r"""
import json, os, pathlib, sys
from urllib.parse import unquote_to_bytes
import label_studio
sys.path.insert(0, str(pathlib.Path(label_studio.__file__).parent))
import django
django.setup()
from django.http import QueryDict
from django.urls import Resolver404, resolve
out = []
for raw_path, query in json.load(sys.stdin):
    path = unquote_to_bytes(raw_path).decode("utf-8", "replace")  # what the WSGI server hands Django
    try:
        match = resolve(path)
        view = match.url_name or match.func.__module__
    except Resolver404:
        view = None
    out.append([view, path, QueryDict(query).get("d"), QueryDict(query).get("fileuri")])
print("RESULT" + json.dumps(out))
"""


def _label_studio_routes(urls: list[str], tmp_path: Path) -> list[list]:
    """How Label Studio's resolver routes each URL (view name, decoded path, last d, last fileuri)."""
    requests = [[urlsplit(u).path or "/", urlsplit(u).query] for u in urls]
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "core.settings.label_studio",
        "LABEL_STUDIO_BASE_DATA_DIR": str(tmp_path),
        "LATEST_VERSION_CHECK": "false",
        "COLLECT_ANALYTICS": "false",
        "SENTRY_DSN": "",
    }
    done = subprocess.run(
        [sys.executable, "-c", _RESOLVER], input=json.dumps(requests), capture_output=True, text=True,
        env=env, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("RESULT")), None)
    assert line is not None, done.stderr[-3000:]
    return json.loads(line[len("RESULT") :])


@pytest.mark.slow
def test_parser_agrees_with_label_studio_resolver(tmp_path):
    from posixpath import normpath

    views = {UPLOAD: "data-upload", LOCAL_FILES: "localfiles_data", STORAGE: {"task-storage-data-resolve",
             "task-storage-data-presign"}}  # fmt: skip
    parsed = [_parse(url) for url in CORPUS]
    raw = _label_studio_routes([u for u in CORPUS], tmp_path)
    sent = _label_studio_routes([p.target for p in parsed if p is not None and p.kind != STORAGE], tmp_path)
    # 1. whatever Label Studio would serve as a local file is refused or parsed as that local file
    for url, ours, (view, _, d, _) in zip(CORPUS, parsed, raw):
        if view == "localfiles_data":
            assert ours is None or (ours.kind == LOCAL_FILES and ours.local_path == normpath(d or "").lstrip("/")), url
    # 2. the request the backend sends reaches the view of the parsed kind, for the same file
    accepted = [p for p in parsed if p is not None and p.kind != STORAGE]
    for ours, (view, path, d, _) in zip(accepted, sent):
        assert view == views[ours.kind], (ours, view)
        if ours.kind == LOCAL_FILES:
            assert normpath(d).lstrip("/") == ours.local_path
        else:
            assert path == ours.path
    # 3. storage links are Label Studio's resolve/presign views
    for url, ours, (view, *_rest) in zip(CORPUS, parsed, raw):
        if ours is not None and ours.kind == STORAGE:
            assert view in views[STORAGE], url
    assert {p.kind for p in parsed if p is not None} == {UPLOAD, LOCAL_FILES, STORAGE}
