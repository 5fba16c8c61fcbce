"""``scraiber bench fast-learner``: from a submitted correction to better pre-annotations, on a real Label Studio.

A real Label Studio and the real backend (gunicorn + harvest worker, local data dir) start
on loopback. Fields of a generator family (test seeds, never trained on) are uploaded and
pre-annotated by the served FCN. The simulated expert then corrects one task after another
to its true labels, each started from its prediction, as Label Studio's editor would post
it. After each submission the benchmark measures the wall time until every open task holds
a prediction of a new fast-learner version (webhook, harvest, features, fit, re-prediction
and posting), and the mIoU of those open tasks' latest predictions against the truth.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import click
import numpy as np
from PIL import Image

from label_config import load_catalogue
from label_config.generate import CONFIG_DIR
from ml_backend.label_studio import LabelStudioClient
from ml_backend.metrics import class_iou, confusion_matrix, mean_iou
from ml_backend.regions import class_map_to_regions, regions_to_class_map
from ml_backend.synthetic.families import TEST_SEED_START, family_names, generate_field
from scraiber.label_studio_server import LabelStudioAccount, LabelStudioServer
from scraiber.processes import free_port
from scraiber.stack import backend_process


def _regions(truth: np.ndarray, catalogue) -> list[dict]:
    return class_map_to_regions(truth, dict(enumerate(catalogue.names)), "minerals", "image", id_prefix="expert")


@click.command("fast-learner")
@click.option("--family", default="vitrophyric", show_default=True, help="Generator family of the sample.")
@click.option("--tasks", default=10, show_default=True, help="Tasks in the project.")
@click.option("--size", default=512, show_default=True, help="Field side (px).")
@click.option("--corrections", default=4, show_default=True, help="Tasks the expert corrects, one after another.")
@click.option("--timeout", default=600.0, show_default=True, help="Longest wait for re-predictions (s).")
def fast_loop_bench(family: str, tasks: int, size: int, corrections: int, timeout: float) -> None:
    """Seconds from each submitted correction to new pre-annotations on every open task, and their mIoU."""
    if family not in family_names():
        raise ValueError(f"unknown family {family!r}; valid: {', '.join(family_names())}")
    if not 1 <= corrections < tasks:
        raise ValueError(f"--corrections must be between 1 and --tasks - 1, got {corrections} and {tasks}")
    catalogue = load_catalogue()
    work = Path(tempfile.mkdtemp(prefix="scraiber-fast-"))
    fields = [generate_field(family, size, TEST_SEED_START + 2000 + i, catalogue) for i in range(tasks)]
    paths = []
    for i, section in enumerate(fields):
        paths.append(work / f"field-{i:03d}.png")
        Image.fromarray(section.image).save(paths[-1])
    with LabelStudioServer(work / "label-studio", LabelStudioAccount.generate("bench@scraiber.local")) as studio:
        port = free_port()
        env = {"SCRAIBER_DEMO": "true", "SCRAIBER_DATA_DIR": str(work / "backend"), "LABEL_STUDIO_URL": studio.url,
               "LABEL_STUDIO_API_KEY": studio.api_key, "SCRAIBER_WEB_WORKERS": "1"}  # fmt: skip
        with backend_process(env, port, work / "backend.log", [studio.api_key]):
            client = LabelStudioClient(studio.url, studio.api_key, timeout=600)
            project = client.create_project(f"Fast learner on {family}", (CONFIG_DIR / "minerals.xml").read_text())[
                "id"
            ]
            task_ids = client.upload_files(project, paths)
            client.connect_ml_backend(project, f"http://127.0.0.1:{port}", "scrAiber")
            client.retrieve_predictions(project)
            truth = dict(zip(task_ids, (f.classes for f in fields)))

            def open_miou(open_tasks: list[int]) -> tuple[float, str]:
                matrix, versions = 0, set()
                for task in open_tasks:
                    latest = client.task_predictions(task)[-1]
                    versions.add(latest["model_version"])
                    classes, _ = regions_to_class_map(latest["result"], (size, size), catalogue)
                    matrix = matrix + confusion_matrix(truth[task], classes, len(catalogue))
                return mean_iou(class_iou(matrix, catalogue.names)), ", ".join(sorted(versions))

            miou, version = open_miou(task_ids[1:])
            click.echo(
                f"{family}: {tasks} tasks of {size} px; before any correction: open-task mIoU {miou:.3f} ({version})"
            )
            click.echo(
                "| corrections | seconds to new pre-annotations on all open tasks | open tasks | open-task mIoU | version |"
            )
            click.echo("| --- | --- | --- | --- | --- |")
            for k in range(1, corrections + 1):
                task = task_ids[k - 1]
                parent = client.task_predictions(task)[-1]
                seen = {t: {p["id"] for p in client.task_predictions(t)} for t in task_ids[k:]}
                started = time.perf_counter()
                client.create_annotation(task, _regions(truth[task], catalogue), lead_time=120.0,
                                         parent_prediction=parent["id"])  # fmt: skip
                while True:
                    fresh = all({p["id"] for p in client.task_predictions(t)} - seen[t] for t in task_ids[k:])
                    if fresh or time.perf_counter() - started > timeout:
                        break
                    time.sleep(0.5)
                seconds = time.perf_counter() - started
                miou, version = open_miou(task_ids[k:])
                late = "" if fresh else f" (not all re-predicted after {timeout:.0f} s)"
                click.echo(f"| {k} | {seconds:.1f}{late} | {tasks - k} | {miou:.3f} | {version} |")
