"""SIGKILL of each process kind in a burst of annotations, downtime, and disconnection: real
backend process, real Label Studio 1.23.2.

Each kill test creates annotations in Label Studio (each makes Label Studio POST ``/webhook``),
kills one process part-way, and then requires every annotation to be harvested exactly once
(one harvest record per annotation version) within a bounded time. The tests share one
backend and run in file order; the Label Studio kill comes last.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import psutil
import pytest
import requests
from sqlalchemy import select

from active_learning.harvest_log import HarvestLog
from active_learning.reconcile import authorise_webhooks
from active_learning.worker import worker_lease
from label_config import load_catalogue
from ml_backend.brush import mask_to_rle
from tests.fixtures.backend import Backend, running_backend
from tests.security.conftest import MINERALS, field, processes, record_figures, wait_for

pytestmark = pytest.mark.slow
CATALOGUE = load_catalogue()
SIZE = 64
RECONCILE_SECONDS = 4
BURST = 6


@pytest.fixture(scope="module")
def backend(label_studio, tmp_path_factory):
    data = tmp_path_factory.mktemp("failures-backend")
    with running_backend(label_studio, data, SCRAIBER_WEB_WORKERS="2",
                         SCRAIBER_RECONCILE_SECONDS=str(RECONCILE_SECONDS)) as backend:  # fmt: skip
        yield backend


@pytest.fixture(scope="module")
def project(label_studio, backend, tmp_path_factory):
    """A minerals project of small fields, connected to the backend, webhooks authorised."""
    import imagecodecs

    client = label_studio.client
    folder = tmp_path_factory.mktemp("failure-fields")
    paths = []
    for i in range(6 * BURST + 4):
        paths.append(folder / f"field-{i}.png")
        paths[-1].write_bytes(imagecodecs.png_encode(field(i, SIZE)))
    created = client.create_project("Failure suite", MINERALS)
    tasks = client.upload_files(created["id"], paths)
    client.connect_ml_backend(created["id"], backend.url, "scrAiber", basic_auth=backend.auth)
    authorise_webhooks(client, created["id"], backend.auth)  # (or the backend's own reconciliation did already)
    assert all((h.get("headers") or {}).get("Authorization") for h in client.list_webhooks(created["id"]))
    return {"id": created["id"], "tasks": tasks, "next": 0}


def _result(seed: int) -> list[dict]:
    mask = np.zeros((SIZE, SIZE), bool)
    mask[seed % 32 : seed % 32 + 20, 10:40] = True
    return [{"from_name": "minerals", "to_name": "image", "type": "brushlabels", "original_width": SIZE,
             "original_height": SIZE, "value": {"format": "rle", "rle": mask_to_rle(mask),
                                                "brushlabels": [CATALOGUE.names[2]]}}]  # fmt: skip


def _burst(label_studio, project, kill=None, kill_after: int = 2, count: int = BURST) -> list[int]:
    """Create ``count`` annotations; call ``kill()`` after ``kill_after`` of them."""
    ids = []
    for i in range(count):
        if kill is not None and i == kill_after:
            kill()
        task = project["tasks"][project["next"]]
        project["next"] += 1
        ids.append(label_studio.client.create_annotation(task, _result(task), lead_time=2.0)["id"])
    return ids


def _all_harvested_once(backend: Backend, project, expected: list[int], timeout: float = 120) -> None:
    harvests = HarvestLog(backend.events().engine)

    def done() -> bool:
        records = harvests.records(project=project["id"], include_superseded=True, include_retracted=True)
        return {r.annotation_id for r in records} >= set(expected)

    backend.wait(done, timeout, f"annotations {expected} harvested")
    time.sleep(RECONCILE_SECONDS + 1)  # one more reconciliation round: it must not harvest anything twice
    records = harvests.records(project=project["id"], include_superseded=True, include_retracted=True)
    ids = [r.annotation_id for r in records if r.annotation_id in expected]
    assert sorted(ids) == sorted(expected), "an annotation was harvested more than once or not at all"
    keys = [e.payload for e in backend.events().list_events()]
    assert len({repr(sorted(p.items())) for p in keys}) == len(keys), "an event was stored twice"


def _lease_pid(backend: Backend) -> int | None:
    with backend.events().engine.connect() as connection:
        row = connection.execute(select(worker_lease.c.pid)).first()
    return row.pid if row else None


def _health(backend: Backend) -> dict:
    return requests.get(f"{backend.url}/health", timeout=10).json()


def test_health_reports_the_worker_and_the_queue(backend, project):
    body = wait_for(lambda: (b := _health(backend))["worker"]["state"] == "up" and b, 60, "the worker up")
    assert body["status"] == "UP" and body["queue"]["waiting"] == 0


def test_sigkill_of_the_harvest_worker(label_studio, backend, project):
    killed: dict = {}

    def back() -> bool:
        fresh = processes(backend)["worker"]
        return bool(fresh) and fresh[0].pid != killed["pid"] and _lease_pid(backend) == fresh[0].pid

    def watch() -> None:  # from the kill on, independently of the burst
        wait_for(back, 30, "a new harvest worker holding the lease", interval=0.1)
        killed["back"] = time.monotonic()

    def kill() -> None:
        worker = processes(backend)["worker"][0]
        killed.update(pid=worker.pid, at=time.monotonic())
        os.kill(worker.pid, signal.SIGKILL)
        killed["watcher"] = threading.Thread(target=watch, daemon=True)
        killed["watcher"].start()

    ids = _burst(label_studio, project, kill)
    killed["watcher"].join(timeout=40)
    seconds = killed["back"] - killed["at"]
    _all_harvested_once(backend, project, ids)
    record_figures("kill_harvest_worker", {"worker_back_after_s": round(seconds, 1), "annotations": len(ids)})
    assert seconds < 10
    assert wait_for(lambda: _health(backend)["worker"]["state"] == "up", 30, "health: worker up")


def test_sigkill_of_the_fork_server_and_then_the_worker(label_studio, backend, project):
    """gunicorn's arbiter reaps the dead fork server; the next worker needs a new fork server (slower)."""
    (server,) = [p for p in processes(backend)["helpers"] if "forkserver" in " ".join(p.cmdline())]
    os.kill(server.pid, signal.SIGKILL)
    old = _lease_pid(backend)
    ids = _burst(label_studio, project, lambda: os.kill(old, signal.SIGKILL) if psutil.pid_exists(old) else None)
    wait_for(lambda: _lease_pid(backend) not in (None, old), 90, "a worker from a new fork server")
    assert server.pid not in {p.pid for p in processes(backend)["helpers"]}
    _all_harvested_once(backend, project, ids)


def test_sigkill_of_a_web_worker(label_studio, backend, project):
    web = processes(backend)["web"]
    killed = {}

    def kill() -> None:
        killed["at"] = time.monotonic()
        os.kill(web[0].pid, signal.SIGKILL)

    ids = _burst(label_studio, project, kill)
    wait_for(lambda: len(processes(backend)["web"]) == 2 and web[0].pid not in {p.pid for p in processes(backend)["web"]},
             30, "gunicorn to replace the web worker")  # fmt: skip
    seconds = time.monotonic() - killed["at"]
    _all_harvested_once(backend, project, ids)
    record_figures("kill_web_worker", {"web_worker_back_after_s": round(seconds, 1), "annotations": len(ids)})


def test_sigkill_of_the_whole_backend(label_studio, backend, project):
    killed = {}

    def kill() -> None:
        killed["at"] = time.monotonic()
        os.killpg(backend.process.pid, signal.SIGKILL)
        backend.process.stop()  # reaps the group

    ids = _burst(label_studio, project, kill)  # webhooks of the later ones find nobody
    backend.process.start()
    seconds = time.monotonic() - killed["at"]
    _all_harvested_once(backend, project, ids)
    record_figures("kill_whole_backend", {"backend_back_after_s": round(seconds, 1), "annotations": len(ids)})


def test_annotations_made_during_downtime_are_harvested_after_reconnect(label_studio, backend, project):
    backend.process.stop()
    ids = _burst(label_studio, project)
    backend.process.start()
    _all_harvested_once(backend, project, ids)


def test_disconnected_project_is_no_longer_served(label_studio, backend, project, tmp_path):
    import imagecodecs

    client = label_studio.client
    other = client.create_project("Disconnected project", MINERALS)
    (path := tmp_path / "f.png").write_bytes(imagecodecs.png_encode(field(5, SIZE)))
    first, second = client.upload_files(other["id"], [path, path])
    client.connect_ml_backend(other["id"], backend.url, "scrAiber", basic_auth=backend.auth)
    authorise_webhooks(client, other["id"], backend.auth)
    before = client.create_annotation(first, _result(1), lead_time=1.0)["id"]
    harvests = HarvestLog(backend.events().engine)
    backend.wait(lambda: harvests.records(project=other["id"]), 60, "the first annotation harvested")
    assert other["id"] in harvests.known_projects()
    for ml in client.list_ml_backends(other["id"]):
        client.disconnect_ml_backend(ml["id"])
    backend.wait(
        lambda: other["id"] not in harvests.known_projects(), 4 * RECONCILE_SECONDS + 30, "the project forgotten"
    )
    after = client.create_annotation(second, _result(2), lead_time=1.0)["id"]
    backend.restart()  # a restart reconciles at once: the forgotten project stays forgotten
    time.sleep(3 * RECONCILE_SECONDS)
    assert [r.annotation_id for r in harvests.records(project=other["id"])] == [before]
    assert other["id"] not in harvests.known_projects() and after
    # connected again: served again, and what was missed is harvested
    client.connect_ml_backend(other["id"], backend.url, "scrAiber", basic_auth=backend.auth)
    authorise_webhooks(client, other["id"], backend.auth)
    backend.wait(lambda: {r.annotation_id for r in harvests.records(project=other["id"])} == {before, after},
                 4 * RECONCILE_SECONDS + 60, "the project served again")  # fmt: skip


def test_sigkill_of_label_studio(label_studio, backend, project):
    ids = _burst(label_studio, project, count=BURST)
    server = label_studio.server
    os.killpg(server._process.pid, signal.SIGKILL)  # while the worker still harvests the burst
    killed = time.monotonic()
    server.stop()
    time.sleep(2 * RECONCILE_SECONDS)  # the worker backs off, events wait
    server.start()
    seconds = time.monotonic() - killed
    ids += _burst(label_studio, project, count=2)
    _all_harvested_once(backend, project, ids, timeout=180)
    record_figures("kill_label_studio", {"label_studio_back_after_s": round(seconds, 1), "annotations": len(ids)})
