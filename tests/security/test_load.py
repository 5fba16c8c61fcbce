"""A short load test of the real backend on loopback: bounded requests, latency percentiles, memory.

Twice the same load: 40 ``/predict`` requests (one 256 x 256 upload each, 4 at a time)
through Label Studio's upload path, 200 ``/health`` requests beside them and 100 webhooks
each delivered twice. Memory is the proportional set size of the backend's processes.
The figures go to ``test-artifacts/security-figures.json`` (``docs/security.md`` quotes them).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import imagecodecs
import pytest
import requests

from tests.fixtures.backend import running_backend
from tests.security.conftest import MINERALS, field, memory_mib, processes, record_figures

pytestmark = pytest.mark.slow
PREDICTS, CONCURRENCY, HEALTHS, WEBHOOKS, ROUNDS = 40, 4, 200, 100, 2


@pytest.fixture(scope="module")
def backend(label_studio, tmp_path_factory):
    with running_backend(label_studio, tmp_path_factory.mktemp("load-backend"), SCRAIBER_WEB_WORKERS="2") as backend:
        yield backend


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def test_load(label_studio, backend, tmp_path):
    client = label_studio.client
    project = client.create_project("Load test", MINERALS)
    paths = []
    for i in range(8):
        paths.append(tmp_path / f"load-{i}.png")
        paths[-1].write_bytes(imagecodecs.png_encode(field(i, 256)))
    tasks = [client.get_task(t) for t in client.upload_files(project["id"], paths)]
    session = requests.Session()

    def predict(i: int) -> tuple[float, dict]:
        body = {"tasks": [tasks[i % len(tasks)]], "label_config": MINERALS, "project": f"{project['id']}.1"}
        started = time.perf_counter()
        answer = requests.post(f"{backend.url}/predict", json=body, auth=backend.auth, timeout=300)
        return time.perf_counter() - started, {"status": answer.status_code, **answer.json()}

    def webhooks(first: int, count: int) -> list[dict]:
        codes = []
        for i in range(first, first + count):  # annotations Label Studio does not have: harvested as "gone"
            payload = {"action": "ANNOTATION_CREATED", "project": {"id": project["id"]},
                       "annotation": {"id": i, "updated_at": "2026-01-01T00:00:00Z"}}  # fmt: skip
            for _ in range(2):
                codes.append(
                    requests.post(f"{backend.url}/webhook", json=payload, auth=backend.auth, timeout=30).json()
                )
        return codes

    # warm up: both web workers load the model, the harvest worker handles a few events
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(predict, range(2 * CONCURRENCY)))
    webhooks(800_000, 10)
    backend.wait(lambda: backend.status()["queue_depth"] == 0, 120, "the warm-up webhooks handled")
    tree = lambda: {k: memory_mib(v, "pss") for k, v in processes(backend).items()}  # noqa: E731
    before = tree()
    peak = {"pss": sum(before.values())}
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.5):
            peak["pss"] = max(peak["pss"], sum(tree().values()))

    health_times: list[float] = []

    def health() -> None:
        for _ in range(HEALTHS):
            started = time.perf_counter()
            assert session.get(f"{backend.url}/health", timeout=30).status_code == 200
            health_times.append(time.perf_counter() - started)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    answers, webhook_codes, after_round, predict_seconds = [], [], [], 0.0
    for round_ in range(ROUNDS):  # the same load twice: memory may settle in the first, must not grow in the second
        pinger = threading.Thread(target=health)
        pinger.start()
        started = time.perf_counter()
        with ThreadPoolExecutor(CONCURRENCY) as pool:
            answers += list(pool.map(predict, range(PREDICTS)))
        predict_seconds += time.perf_counter() - started
        webhook_codes += webhooks(900_000 + round_ * WEBHOOKS, WEBHOOKS)
        pinger.join()
        backend.wait(lambda: backend.status()["queue_depth"] == 0, 180, "the webhook burst handled")
        after_round.append(tree())
    done.set()
    sampler.join()

    times = [t for t, _ in answers]
    bad = [a for _, a in answers if a["status"] != 200 or "result" not in a["results"][0]]
    first, last = 900_000, 900_000 + ROUNDS * WEBHOOKS
    stored = [e for e in backend.events().list_events() if first <= e.payload["annotation"]["id"] < last]
    total = lambda snapshot: round(sum(snapshot.values()))  # noqa: E731
    figures = {
        "predict_requests": len(times), "concurrency": CONCURRENCY, "image_px": "256 x 256",
        "predict_p50_ms": round(1000 * _percentile(times, 0.5)), "predict_p99_ms": round(1000 * _percentile(times, 0.99)),
        "predict_throughput_per_s": round(len(times) / predict_seconds, 2),
        "health_requests": len(health_times), "health_p50_ms": round(1000 * _percentile(health_times, 0.5), 1),
        "health_p99_ms": round(1000 * _percentile(health_times, 0.99), 1),
        "pss_before_mib": total(before), "pss_peak_mib": round(peak["pss"]),
        "pss_after_round_mib": [total(r) for r in after_round],
        "pss_by_process_after_mib": {k: round(v) for k, v in after_round[-1].items()},
        "webhooks_posted": len(webhook_codes), "events_stored": len(stored), "errors": len(bad),
    }  # fmt: skip
    record_figures("load", figures)
    assert bad == []
    assert [c["status"] for c in webhook_codes] == ["stored", "duplicate"] * (ROUNDS * WEBHOOKS)
    assert sorted(e.payload["annotation"]["id"] for e in stored) == list(range(first, last))
    assert all(e.attempts == 1 for e in stored)  # each handled once
    assert figures["health_p99_ms"] < 2000
    assert total(after_round[-1]) - total(after_round[0]) < 150  # no growth under the same load again
