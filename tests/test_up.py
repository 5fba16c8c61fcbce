"""`scraiber up`, the README's main command: Label Studio + backend + demo project, twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from active_learning.stack import DEMO_PROJECT
from ml_backend.label_studio import LabelStudioClient
from ml_backend.processes import free_port, url_answers

pytestmark = pytest.mark.slow
READY = "Ctrl-C stops everything"


def _up(data_dir: Path, port: int, backend_port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "SCRAIBER_DATA_DIR": str(data_dir)}
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "ml_backend", "up", "--port", str(port), "--backend-port", str(backend_port), "--fields", "2"],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=data_dir.parent,
        )


def _wait_for(log: Path, process: subprocess.Popen, timeout: float = 600) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text()
        if READY in text:
            return text
        assert process.poll() is None, f"scraiber up exited early:\n{text}"
        time.sleep(1)
    raise AssertionError(f"scraiber up not ready after {timeout} s:\n{log.read_text()}")


def _stop(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=90)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)


def test_up_bootstraps_the_demo_and_a_second_run_reuses_it(tmp_path):
    data_dir = tmp_path / "state"
    port, backend_port = free_port(), free_port()
    first = _up(data_dir, port, backend_port, tmp_path / "first.log")
    try:
        text = _wait_for(tmp_path / "first.log", first)
        account = json.loads((data_dir / "label-studio" / "account.json").read_text())
        assert f"http://127.0.0.1:{port}/projects/" in text and account["password"] in text
        with LabelStudioClient(f"http://127.0.0.1:{port}", account["token"]) as client:
            project = client.find_project_by_title(DEMO_PROJECT)
            tasks = client.list_tasks(project["id"])
            assert len(tasks) == 3  # two synthetic fields and the real TESCAN field
            assert all(len(client.task_predictions(t["id"])) == 1 for t in tasks)
            assert [b["url"] for b in client.list_ml_backends(project["id"])] == [f"http://127.0.0.1:{backend_port}"]
    finally:
        _stop(first)
    assert not url_answers(f"http://127.0.0.1:{port}/health") and not url_answers(f"http://127.0.0.1:{backend_port}/health")
    assert (data_dir / "demo" / "real" / "README.md").read_text().count("MIT License") >= 1

    second = _up(data_dir, port, backend_port, tmp_path / "second.log")
    try:
        _wait_for(tmp_path / "second.log", second, timeout=300)
        with LabelStudioClient(f"http://127.0.0.1:{port}", account["token"]) as client:
            again = client.find_project_by_title(DEMO_PROJECT)
            assert len(client.list_projects()) == 2  # the demo project and the session questionnaire
            assert again["id"] == project["id"]
            tasks = client.list_tasks(again["id"])
            assert len(tasks) == 3
            assert all(len(client.task_predictions(t["id"])) == 1 for t in tasks)  # same model: no new ones
            assert len(client.list_ml_backends(again["id"])) == 1
    finally:
        assert _stop(second) == 0
