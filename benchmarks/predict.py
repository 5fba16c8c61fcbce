"""``scraiber bench predict``: end-to-end /predict latency, and brush RLE against the SDK.

The backend app runs in-process behind a real HTTP server on loopback; the images are
served by a second loopback HTTP server standing in for Label Studio's ``/data/upload``.
"""

from __future__ import annotations

import functools
import http.server
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
import numpy as np
import requests
from PIL import Image
from werkzeug.serving import make_server

from active_learning.event_log import EventLog
from label_config import load_catalogue
from label_config.generate import CONFIG_DIR
from ml_backend.adapter import BackendServices
from ml_backend.app import create_app
from ml_backend.brush import mask_to_rle, rle_to_mask
from ml_backend.image_source import ImageSource
from ml_backend.label_studio import LabelStudioClient
from ml_backend.predictor import Predictor
from ml_backend.segmenters import create_segmenter, segmenter_names
from ml_backend.synthetic import generate_section
from scraiber.serve import SegmenterProvider, status_counters


@contextmanager
def _http(app_or_dir) -> Iterator[str]:
    if isinstance(app_or_dir, Path):
        handler = functools.partial(_QuietHandler, directory=str(app_or_dir))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    else:
        server = make_server("127.0.0.1", 0, app_or_dir, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # noqa: D102 - silence per-request logging
        pass


def _best_of(repeats: int, run) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


@click.command("predict")
@click.option("--sizes", default="1024,4096", show_default=True, help="Square image sizes in px.")
@click.option("--method", type=click.Choice(segmenter_names()), default="unsupervised", show_default=True)
@click.option("--repeats", default=3, show_default=True)
def bench_predict(sizes: str, method: str, repeats: int) -> None:
    """Print /predict latency (fetch + segmentation + RLE) and RLE encode/decode vs label_studio_sdk."""
    from label_studio_sdk.converter.brush import decode_rle, mask2rle

    catalogue = load_catalogue()
    config = (CONFIG_DIR / "minerals.xml").read_text()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        upload = root / "data" / "upload" / "1"
        upload.mkdir(parents=True)
        sections = {}
        for size in (int(s) for s in sizes.split(",")):
            sections[size] = generate_section(size, seed=size)
            Image.fromarray(sections[size].image).save(upload / f"field-{size}.png")
        provider = SegmenterProvider(lambda: create_segmenter(method, catalogue))
        events = EventLog.from_url(f"sqlite:///{root / 'events.sqlite'}")
        with _http(root) as host:
            predictor = Predictor(catalogue, provider, ImageSource(LabelStudioClient(host, "0" * 40)))
            services = BackendServices(predictor, events, status_counters(events, provider))
            with _http(create_app(services, None, 2**30)) as backend:
                click.echo(f"model_version {provider().version}")
                click.echo("size      /predict s   regions")
                for size in sections:
                    body = {
                        "tasks": [{"id": 1, "data": {"image": f"/data/upload/1/field-{size}.png"}}],
                        "label_config": config,
                    }
                    answer = {}

                    def call(body=body, answer=answer) -> None:
                        answer.update(requests.post(f"{backend}/predict", json=body, timeout=3600).json())

                    seconds = _best_of(repeats, call)
                    click.echo(f"{size:>4}x{size:<4} {seconds:10.2f}   {len(answer['results'][0]['result'])}")
        click.echo("\nbrush RLE, one mask per class of the true map (all classes together)")
        click.echo("size      encode ours  encode sdk   decode ours  decode sdk")
        for size, section in sections.items():
            masks = [section.classes == c for c in np.unique(section.classes)]
            ours = _best_of(repeats, lambda: [mask_to_rle(m) for m in masks])
            sdk = _best_of(1 if size > 2048 else repeats, lambda: [mask2rle(m.astype(np.uint8) * 255) for m in masks])
            rles = [mask_to_rle(m) for m in masks]
            dec = _best_of(repeats, lambda: [rle_to_mask(r, size, size) for r in rles])
            dec_sdk = _best_of(1, lambda: [decode_rle(r) for r in rles])
            click.echo(
                f"{size:>4}x{size:<4} {ours:10.3f}s {sdk:10.3f}s {dec:11.3f}s {dec_sdk:10.3f}s"
                f"   ({sdk / ours:.1f}x, {dec_sdk / dec:.1f}x)"
            )
