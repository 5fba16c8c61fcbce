"""Helpers of the security suite: files that must stay private, answer checks, process handles, figures."""

from __future__ import annotations

import json
import os
import struct
import time
import zlib
from pathlib import Path
from typing import Any

import imagecodecs
import numpy as np
import psutil
import pytest
import requests

from label_config.generate import CONFIG_DIR
from tests.fixtures.backend import Backend

MINERALS = (CONFIG_DIR / "minerals.xml").read_text()
SECRET_TEXT = b"TOPSECRET-0123456789-do-not-serve"
FIGURES = Path(__file__).resolve().parents[2] / "test-artifacts" / "security-figures.json"


def field(seed: int = 0, size: int = 64) -> np.ndarray:
    """A small 16-bit grey field with two phases (a prediction of it has at least one region)."""
    rng = np.random.default_rng(seed)
    image = np.where(np.arange(size)[None, :] < size // 2, 3000, 40000).astype(np.uint16)
    return image + rng.integers(0, 500, (size, size), dtype=np.uint16)


def huge_png(width: int = 30000, height: int = 30000) -> bytes:
    """A valid grey PNG of ``width`` x ``height`` zeros: 875 KB on disk at 30000 x 30000, 900 MPix."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    compressor = zlib.compressobj(9)
    block = (b"\x00" * (width + 1)) * 1000
    idat = b"".join(compressor.compress(block) for _ in range(height // 1000)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


@pytest.fixture(scope="session")
def private_files(label_studio) -> dict[str, Path]:
    """Below Label Studio's local-files root: ``allowed/`` (the backend may read it) and
    ``secret/`` (it may not, although Label Studio serves it), a symlink from one to the other."""
    root = label_studio.local_files_root
    (root / "allowed").mkdir(exist_ok=True)
    (root / "secret").mkdir(exist_ok=True)
    (root / "allowed" / "good.png").write_bytes(imagecodecs.png_encode(field(1)))
    (root / "secret" / "secret.png").write_bytes(imagecodecs.png_encode(field(2)))
    (root / "secret" / "secret.txt").write_bytes(SECRET_TEXT)
    link = root / "allowed" / "link-to-secret.png"
    if not link.exists():
        link.symlink_to(root / "secret" / "secret.png")
    project = label_studio.client.create_project("Local files of the security suite", MINERALS)
    for folder in ("allowed", "secret"):  # Label Studio serves both to its users
        label_studio.client.create_local_storage(project["id"], root / folder, folder)
    return {"root": root, "allowed": root / "allowed", "secret": root / "secret"}


def backend_env(label_studio, private_files, **extra: str) -> dict[str, str]:
    """Settings of a backend that may read ``allowed/`` only."""
    return {
        "LOCAL_FILES_DOCUMENT_ROOT": str(private_files["root"]),
        "SCRAIBER_ALLOWED_LOCAL_ROOTS": str(private_files["allowed"]),
        "SCRAIBER_ALLOWED_BUCKETS": "allowed-bucket",
        **extra,
    }


def check_answer(response: requests.Response, status: int) -> dict[str, Any]:
    """Assert the exact status, a JSON body, an ``error`` message for errors, and no traceback."""
    text = response.text
    assert response.status_code == status, (response.status_code, text[:500])
    assert "Traceback" not in text and 'File "' not in text, text[:500]
    assert response.headers.get("Content-Type", "").startswith("application/json"), response.headers
    body = response.json()
    if status >= 400:
        assert isinstance(body.get("error"), str) and body["error"], body
    return body


def assert_up(backend: Backend, timeout: float = 5.0) -> None:
    """``/health`` answers 200 within ``timeout`` seconds."""
    answer = requests.get(f"{backend.url}/health", timeout=timeout)
    assert answer.status_code == 200, answer.text


def post(backend: Backend, path: str, body: Any = None, data: bytes | None = None, **kwargs: Any) -> requests.Response:
    """POST to the backend with its basic auth (JSON ``body`` or raw ``data``)."""
    kwargs.setdefault("timeout", 120)
    return requests.post(f"{backend.url}{path}", json=body, data=data, auth=backend.auth, **kwargs)


def processes(backend: Backend) -> dict[str, list[psutil.Process]]:
    """The backend's processes: ``master`` (gunicorn arbiter), ``web`` workers, the harvest ``worker``
    (a child of the fork server) and ``helpers`` (multiprocessing's fork server and resource tracker)."""
    master = psutil.Process(backend.process.pid)
    kinds: dict[str, list[psutil.Process]] = {"master": [master], "web": [], "worker": [], "helpers": []}
    for child in master.children():
        try:
            command = " ".join(child.cmdline())
            if "multiprocessing" in command:
                kinds["helpers"].append(child)
                kinds["worker"].extend(child.children())
            else:
                kinds["worker" if " worker" in command else "web"].append(child)
        except psutil.NoSuchProcess:
            continue
    return kinds


def memory_mib(procs: list[psutil.Process], kind: str = "rss") -> float:
    """Memory of processes together, in MiB: resident (``rss``) or proportional (``pss``: shared pages
    counted once overall)."""
    total = 0
    for proc in procs:
        try:
            total += getattr(proc.memory_full_info() if kind == "pss" else proc.memory_info(), kind)
        except psutil.NoSuchProcess:
            continue
    return total / 2**20


def wait_for(condition, timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll until ``condition()`` is truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def record_figures(section: str, values: dict[str, Any]) -> None:
    """Merge measured figures into ``test-artifacts/security-figures.json`` (for docs/security.md)."""
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    figures = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    figures[section] = {**values, "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"), "cpus": os.cpu_count()}
    FIGURES.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    print(f"\n{section}: {json.dumps(values, sort_keys=True)}")
