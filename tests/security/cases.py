"""The adversarial corpus of the standing security suite: every case an attack or a crash test found.

Each list is replayed against the real backend process (and, where it matters, a real Label
Studio) by the tests beside this module. Add a case here when a new hole is found.
"""

from __future__ import annotations

import base64
import json

#: Local-files URLs that must never fetch ``secret/secret.png`` (outside the allowed root
#: ``allowed/``). The first three fetched it before the URL parser matched Label Studio's.
LOCAL_FILE_BYPASSES = [
    "/data/local-files/?d=allowed/good.png&d=secret/secret.png",  # Label Studio reads the last d
    "/data/%6cocal-files/?d=secret/secret.png",  # percent-encoded path, decoded before routing
    "/data/local-files/x?d=secret/secret.png",  # Label Studio's route is not anchored
    "/x/data/local-files/?d=secret/secret.png",
    "/api/data/local-files/?d=secret/secret.png",
    "/data/upload/1/../../data/local-files/?d=secret/secret.png",
    "/data/./local-files/?d=secret/secret.png",  # requests would remove the dot segment
    "/data//local-files/?d=secret/secret.png",
    "/data/local-files?d=secret/secret.png",  # Django would redirect to the slash form
    "/data/local-files/?d=secret/secret.png",
    "/data/local-files/?d=/secret/secret.png",
    "/data/local-files/?d=allowed/../secret/secret.png",
    "/data/local-files/?d=allowed/%2e%2e/secret/secret.png",
    "/data/local-files/?d=allowed%2F..%2Fsecret%2Fsecret.png",
    "/data/local-files/?%64=secret/secret.png",  # an encoded parameter name
    "/data/local-files/?d=allowed/good.png;d=secret/secret.png",
    "/data/local-files/?d=allowed/link-to-secret.png",  # a symlink inside the allowed root
    "/data/local-files/?d=secret/secret.txt",  # a text file: its bytes must not be echoed
    "/data/local-files/?d=allowed\\..\\secret\\secret.png",
    "/data/local-files/?d=allowed/good.png%00/../../secret/secret.png",
    "/data%2flocal-files/?d=secret/secret.png",
    "/data/local-files/%3Fd=secret/secret.png",
]

#: Task URLs that point off Label Studio (SSRF) or at files of the backend's own host.
SSRF_URLS = [
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.169.254/data/upload/1/x.png",
    "http://127.0.0.1:22/data/upload/1/x.png",
    "http://localhost/data/upload/1/x.png",
    "http://[::1]/data/upload/1/x.png",
    "http://0x7f000001/data/upload/1/x.png",
    "http://2130706433/data/upload/1/x.png",
    "//evil.example/data/upload/1/x.png",
    "https://evil.example/data/upload/1/x.png",
    "file:///etc/passwd",
    "ftp://evil.example/x.png",
    "gopher://127.0.0.1:6379/_INFO",
    "/etc/passwd",
    "etc/passwd",
    "/static/../../etc/passwd",
    "/api/projects/",
    "/api/current-user/token",
    "/data/avatars/x.png",
    "/data/upload/%2e%2e/%2e%2e/etc/passwd",
    "/data/upload/..%2f..%2fetc/passwd",
    "/data/upload/%252e%252e/%252e%252e/etc/passwd",
    "/tasks/1/presign/?fileuri=" + base64.urlsafe_b64encode(b"http://169.254.169.254/").decode(),
    "/tasks/1/presign/?fileuri=" + base64.urlsafe_b64encode(b"s3://not-allowed/key.png").decode(),
    "/tasks/1/presign/?fileuri=" + base64.urlsafe_b64encode(b"file:///etc/passwd").decode(),
    "s3://not-allowed/key.png",
    "s3://allowed-bucket/../other/key.png",
    "",
    " ",
    "\x00",
]

_LABELS = (
    '<View><Image name="image" value="$image"/><BrushLabels name="m" toName="image"><Label value="{}"/>'
    "</BrushLabels></View>"
)
#: An external entity (file read) and an entity expansion bomb in a labelling config.
XXE = '<!DOCTYPE View [<!ENTITY x SYSTEM "file:///etc/passwd">]>' + _LABELS.format("&x;")
BILLION_LAUGHS = (
    '<!DOCTYPE View [<!ENTITY a "aaaaaaaaaa">'
    + "".join(f'<!ENTITY {n} "{("&" + p + ";") * 10}">' for p, n in zip("abcdefgh", "bcdefghi"))
    + "]>"
    + _LABELS.format("&i;")
)

#: Bodies that are not what a route takes: (route, raw body, content type). Each must be a 400.
MALFORMED_BODIES = [
    ("/predict", b"not json", "application/json"),
    ("/predict", b"[]", "application/json"),
    ("/predict", b"\xff\xfe\x00", "application/json"),
    ("/predict", b"[" * 100_000 + b"]" * 100_000, "application/json"),  # RecursionError before
    ("/predict", b'{"a":' * 70 + b"1" + b"}" * 70, "application/json"),  # parses, but too deep
    ("/predict", b'{"tasks": "x", "label_config": "<View/>"}', "application/json"),
    ("/predict", b'{"tasks": [1, 2], "label_config": "<View/>"}', "application/json"),
    ("/predict", b'{"tasks": []}', "application/json"),
    ("/predict", b'{"tasks": [], "label_config": "<View><Image"}', "application/json"),  # not XML
    (
        "/predict",
        b'{"tasks": [], "label_config": "<!DOCTYPE x [<!ENTITY a \\"b\\">]><View>&a;</View>"}',
        "application/json",
    ),
    (
        "/predict",
        b'{"tasks": [], "label_config": "<View/>", "project": "99999999999999999999999.1"}',
        "application/json",
    ),  # OverflowError before
    (
        "/predict",
        '{"tasks": [], "label_config": "<View/>", "project": "\u0661\u0662.1"}'.encode(),
        "application/json",
    ),  # non-ASCII digits: ValueError before
    ("/predict", b'{"tasks": [], "label_config": "<View/>", "project": {"id": 1}}', "application/json"),
    ("/predict", b'{"tasks": [], "label_config": "<View/>", "project": "-1.5"}', "application/json"),
    (
        "/predict",
        b'--b\r\nContent-Disposition: form-data; name="x"\r\n\r\n1\r\n--b--\r\n',
        "multipart/form-data; boundary=b",
    ),
    ("/setup", json.dumps({"project": "1.1", "schema": XXE}).encode(), "application/json"),
    ("/setup", json.dumps({"project": "1.1", "schema": BILLION_LAUGHS}).encode(), "application/json"),
    ("/predict", json.dumps({"tasks": [], "label_config": XXE}).encode(), "application/json"),
    (
        "/predict",
        json.dumps({"tasks": [], "label_config": "<View>" + " " * 2**20 + "</View>"}).encode(),
        "application/json",
    ),  # fmt: skip
    ("/setup", b'{"project": "1.1"}', "application/json"),  # no schema
    ("/setup", b'{"project": "1.1", "schema": "<View><"}', "application/json"),
    (
        "/setup",
        b'{"project": "1.1", "schema": "<View><Image name=\\"i\\" value=\\"$i\\"/></View>"}',
        "application/json",
    ),  # parses, but nothing scrAiber fills
    ("/setup", b'{"project": "18446744073709551617", "schema": "<View/>"}', "application/json"),
    ("/webhook", b'{"annotation": {"id": 1}}', "application/json"),  # no action
    ("/webhook", b'{"action": "ANNOTATION_CREATED"}', "application/json"),
    ("/webhook", b'{"action": "ANNOTATION_CREATED", "annotation": {"id": "1e9"}}', "application/json"),
    (
        "/webhook",
        b'{"action": "ANNOTATION_CREATED", "annotation": {"id": 99999999999999999999999}}',
        "application/json",
    ),
    ("/webhook", b'{"action": "ANNOTATIONS_DELETED", "annotations": "all"}', "application/json"),
    ("/webhook", b'{"action": "ANNOTATIONS_DELETED", "annotations": [{"id": -3}]}', "application/json"),
    ("/train", b'{"project": "abc"}', "application/json"),
    ("/train", b"{", "application/json"),
]

#: Raw HTTP requests that must be answered 4xx with JSON, never a traceback: (bytes, status);
#: ``{auth}`` is replaced by the backend's Authorization header. gunicorn parses the head
#: (scrAiber's worker answers its errors as JSON), the app the body.
RAW_REQUESTS = [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET /health HTTP/1.1\r\nBad Header\r\n\r\n", 400),
    (b"GET /health HTTP/9.9\r\nHost: x\r\n\r\n", 400),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(150)) + b"\r\n", 431),
    (b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"y" * 70_000 + b"\r\n\r\n", 431),
    (
        b"POST /webhook HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n",
        400,
    ),
    (b"POST /webhook HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nTransfer-Encoding: gzip\r\n\r\n", 400),
    (b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
]


#: Authorization headers that must all be refused with 401 (the right user/password never appears).
def bad_authorizations(user: str, password: str) -> list[str | None]:
    """Wrong, malformed and other-scheme credentials for a backend with basic auth ``user:password``."""

    def basic(text: bytes) -> str:
        return "Basic " + base64.b64encode(text).decode()

    return [
        None,
        "",
        "Basic",
        "Basic !!!not-base64!!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        basic(f"{user}:".encode()),
        basic(f":{password}".encode()),
        basic(f"{user}:{password}x".encode()),
        basic(f"{user}x:{password}".encode()),
        basic(f"{user.upper()}:{password}".encode()),
        basic("ü:ß".encode()),
        basic(b"\xff\xfe:\xff"),
        f"Bearer {password}",
        f"Token {password}",
        "Digest username=" + user,
        basic(f"{user}:{password}".encode()).lower(),
    ]
