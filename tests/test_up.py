"""`scraiber up`, the README's main command: Label Studio + backend + demo project, used as a new user
would: the Data Manager shows and sorts the prediction scores, the printed next commands run as printed,
SIGTERM stops everything, and a second run reuses it all."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from ml_backend.label_studio import LabelStudioClient
from scraiber.processes import free_port, url_answers
from scraiber.stack import DEMO_PROJECT, UNCERTAIN_TAB
from tests.fixtures.browser import login_label_studio, screenshot

pytestmark = pytest.mark.slow
READY = "stops everything"
# nothing of the caller's environment may point the commands at a stack: they must find it themselves
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("SCRAIBER_", "LABEL_STUDIO_", "MLFLOW_"))}


@dataclass
class Up:
    """A running `scraiber up` in ``folder`` (data dir ``folder/.scraiber``, the default)."""

    folder: Path
    process: subprocess.Popen
    port: int
    backend_port: int
    output: str

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def account(self) -> dict:
        return json.loads((self.folder / ".scraiber" / "label-studio" / "account.json").read_text())

    def client(self) -> LabelStudioClient:
        return LabelStudioClient(self.url, self.account["token"])


def _up(folder: Path, port: int, backend_port: int, log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "scraiber", "up", "--port", str(port), "--backend-port", str(backend_port), "--fields", "2"],
            stdout=out, stderr=subprocess.STDOUT, env=CLEAN_ENV, start_new_session=True, cwd=folder,
        )  # fmt: skip


def _wait_for(log: Path, process: subprocess.Popen, timeout: float = 600) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = log.read_text()
        if READY in text:
            return text
        assert process.poll() is None, f"scraiber up exited early:\n{text}"
        time.sleep(1)
    raise AssertionError(f"scraiber up not ready after {timeout} s:\n{log.read_text()}")


def _stop(process: subprocess.Popen, sig: signal.Signals = signal.SIGINT) -> int:
    """Send ``sig`` to `scraiber up` alone (not its process group) and wait for it."""
    process.send_signal(sig)
    try:
        return process.wait(timeout=90)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)


def _listening(port: int) -> bool:
    return url_answers(f"http://127.0.0.1:{port}/health")


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    """`scraiber up` in a fresh folder, running for the module's tests (the SIGTERM test stops it)."""
    folder = tmp_path_factory.mktemp("up")
    port, backend_port = free_port(), free_port()
    process = _up(folder, port, backend_port, folder / "first.log")
    try:
        yield Up(folder, process, port, backend_port, _wait_for(folder / "first.log", process))
    finally:
        if process.poll() is None:
            _stop(process)


def _scores(client: LabelStudioClient, tasks: list[dict]) -> dict[int, float]:
    return {task["id"]: client.task_predictions(task["id"])[0]["score"] for task in tasks}


def test_up_bootstraps_the_demo(up):
    assert f"{up.url}/projects/" in up.output and up.account["password"] in up.output
    with up.client() as client:
        project = client.find_project_by_title(DEMO_PROJECT)
        tasks = client.list_tasks(project["id"])
        assert len(tasks) == 3  # two synthetic fields and the real TESCAN field
        predictions = [client.task_predictions(t["id"]) for t in tasks]
        assert all(len(p) == 1 for p in predictions)
        assert [b["url"] for b in client.list_ml_backends(project["id"])] == [f"http://127.0.0.1:{up.backend_port}"]
        # the project's model version is the served one (Label Studio set it to the backend's title)
        served = {p[0]["model_version"] for p in predictions}
        assert served == {client.get_project(project["id"])["model_version"]} and re.fullmatch(
            r"fcn-[0-9a-f]{12}", *served
        )
        assert f"Model:         {served.pop()}" in up.output
        # synthetic fields carry their pixel size (per-mm² indicators); the real field's is unknown
        sizes = sorted(str(t["data"].get("pixel_size_um")) for t in tasks)
        assert sizes[-1] == "None" and all(1.0 <= float(s) <= 2.0 for s in sizes[:2])
    assert (up.folder / ".scraiber" / "demo" / "real" / "README.md").read_text().count("MIT License") >= 1


def test_data_manager_shows_and_sorts_the_prediction_scores(up, chromium_page):
    page = chromium_page
    with up.client() as client:
        project = client.find_project_by_title(DEMO_PROJECT)["id"]
        scores = _scores(client, client.list_tasks(project))
    assert len(set(scores.values())) == 3, f"the three fields should score differently: {scores}"
    login_label_studio(page, up.url, up.account["email"], up.account["password"])
    page.goto(f"{up.url}/projects/{project}/data")
    page.get_by_text(UNCERTAIN_TAB, exact=True).first.click()

    def table() -> list[tuple[int, str]]:
        """(task id, text of the 'Prediction score' cell) of each row, top to bottom."""
        page.wait_for_selector(".lsf-table__row-wrapper")
        page.wait_for_timeout(1500)  # the rows re-render once the tab's data arrive
        cells = page.evaluate("""() => {
            const heads = [...document.querySelectorAll('.lsf-table-head .lsf-table__cell')].map(e => e.innerText.trim());
            const rows = [...document.querySelectorAll('.lsf-table__row-wrapper')]
                .map(r => [...r.querySelectorAll('.lsf-table__cell')].map(e => e.innerText.trim()));
            return {heads, rows};
        }""")  # fmt: skip
        assert "Prediction score" in cells["heads"], f"no 'Prediction score' column: {cells['heads']}"
        column, ids = cells["heads"].index("Prediction score"), cells["heads"].index("ID")
        return [(int(row[ids]), row[column]) for row in cells["rows"]]

    rows = table()
    screenshot(page, "data-manager-most-uncertain-first")
    assert all(text for _, text in rows), f"empty prediction scores in the Data Manager: {rows}"
    assert [float(text) for _, text in rows] == pytest.approx([round(scores[i], 3) for i, _ in rows], abs=1e-3)
    assert [i for i, _ in rows] == sorted(scores, key=scores.get, reverse=True)  # most uncertain first

    # the toolbar's "Order by: Prediction score" with its direction toggle
    page.get_by_role("button", name="Sort ascending").click()
    page.wait_for_timeout(1500)
    assert [i for i, _ in table()] == sorted(scores, key=scores.get)  # ascending now
    screenshot(page, "data-manager-sorted-ascending")


def test_next_commands_run_as_printed_and_find_the_stack(up):
    assert (up.folder / ".scraiber" / "stack.json").exists()
    commands = {}
    for line in up.output.splitlines():
        command = line.split("#", 1)[0].strip()
        for name in ("retrain", "report", "export"):
            if f" {name}" in command and "scraiber" in command:
                commands[name] = shlex.split(command)
    assert set(commands) == {"retrain", "report", "export"}, up.output

    report = subprocess.run(
        commands["report"], cwd=up.folder, env=CLEAN_ENV, capture_output=True, text=True, timeout=600
    )
    assert report.returncode == 0, report.stderr[-3000:]
    assert f"tracking report: {DEMO_PROJECT}" in (up.folder / "report.html").read_text()
    retrain = subprocess.run(
        commands["retrain"], cwd=up.folder, env=CLEAN_ENV, capture_output=True, text=True, timeout=600
    )
    assert retrain.returncode == 0, retrain.stderr[-3000:]
    assert "no-labels" in retrain.stdout and "[retrain] gathering implicit labels" in retrain.stdout
    status = requests.get(f"http://127.0.0.1:{up.backend_port}/status", timeout=30).json()
    assert status["training"]["status"] == "no-labels" and status["training_runs"] == 1


def test_sigterm_stops_label_studio_and_the_backend(up):
    assert _listening(up.port) and _listening(up.backend_port)
    status = _stop(up.process, signal.SIGTERM)
    left = [
        p for p in Path("/proc").glob("[0-9]*") if _cmdline_has(p, f"--port {up.backend_port}", f"--port {up.port}")
    ]
    for proc in left:  # what `up` left behind, so that it does not outlive the test
        try:
            os.killpg(os.getpgid(int(proc.name)), signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert not left, f"processes of the stack still run after SIGTERM: {[p.name for p in left]}"
    assert status == 0 and not _listening(up.port) and not _listening(up.backend_port)
    assert not (up.folder / ".scraiber" / "stack.json").exists()


def _cmdline_has(proc: Path, *needles: str) -> bool:
    try:
        command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return any(needle in command for needle in needles)


def test_a_second_run_reuses_everything(up):
    assert up.process.poll() is not None, "runs after the SIGTERM test"
    second = _up(up.folder, up.port, up.backend_port, up.folder / "second.log")
    try:
        _wait_for(up.folder / "second.log", second, timeout=300)
        with up.client() as client:
            project = client.find_project_by_title(DEMO_PROJECT)
            assert len(client.list_projects()) == 2  # the demo project and the session questionnaire
            tasks = client.list_tasks(project["id"])
            assert len(tasks) == 3
            assert all(len(client.task_predictions(t["id"])) == 1 for t in tasks)  # same model: no new ones
            assert len(client.list_ml_backends(project["id"])) == 1
            assert [v["data"]["title"] for v in client.data_manager_views(project["id"])].count(UNCERTAIN_TAB) == 1
    finally:
        assert _stop(second) == 0
