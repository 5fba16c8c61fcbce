"""``scraiber up``: Label Studio and the backend on this machine, bootstrapped for a demo.

Everything lives under the data directory (``SCRAIBER_DATA_DIR``, default ``.scraiber``):
Label Studio's SQLite database and uploads, the admin account, the event log, MLflow
runs and artefacts, and the demo images. A second run reuses all of it.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np
from PIL import Image

from active_learning.reconcile import authorise_webhooks
from label_config import Catalogue
from label_config.generate import CONFIG_DIR
from ml_backend.label_studio import LabelStudioClient
from ml_backend.label_studio_server import LabelStudioAccount, LabelStudioServer
from ml_backend.processes import ManagedProcess
from ml_backend.settings import Settings
from ml_backend.synthetic import generate_section, write_section

log = logging.getLogger(__name__)

DEMO_PROJECT = "scrAiber demo: mineral maps"
QUESTIONNAIRE_PROJECT = "scrAiber session questionnaire"
QUESTIONNAIRE_TASK = (
    "After each labelling session, open this task, add an annotation (+) and answer. "
    "Your answers are matched to your latest session (by account and time) in the tracking report."
)
BACKEND_TITLE = "scrAiber"
REAL_FIELD_DIR = Path(str(files("ml_backend") / "demo" / "real"))


@dataclass(frozen=True)
class DemoImage:
    """One demo image to upload, with where its ground truth is (if synthetic)."""

    path: Path
    truth: Path | None


def prepare_demo_images(demo_dir: Path, catalogue: Catalogue, n_fields: int = 4, size: int = 512) -> list[DemoImage]:
    """Synthetic fields (16-bit PNG for the browser, ground truth beside) and the real field.

    Existing files are kept, so a second run does not regenerate them.
    """
    demo_dir.mkdir(parents=True, exist_ok=True)
    images = []
    for seed in range(n_fields):
        stem = f"synthetic-field-{seed:02d}"
        png = demo_dir / f"{stem}.png"
        if not png.exists():
            section = generate_section(size, seed=seed, catalogue=catalogue)
            write_section(section, demo_dir / "truth", stem)
            Image.fromarray(np.ascontiguousarray(section.image)).save(png)
        images.append(DemoImage(png, demo_dir / "truth" / f"{stem}_classes.png"))
    real_dir = demo_dir / "real"
    if not real_dir.exists():
        shutil.copytree(REAL_FIELD_DIR, real_dir)  # the licence README travels with the image
    images.append(DemoImage(real_dir / "tescan-tima-field1-bse.png", None))
    return images


@dataclass(frozen=True)
class Bootstrap:
    """What :func:`bootstrap_project` found or made."""

    project_id: int
    tasks_created: int
    backend_connected: bool
    predictions: dict


def bootstrap_project(
    client: LabelStudioClient,
    backend_url: str,
    images: list[DemoImage],
    label_config: str,
    title: str = DEMO_PROJECT,
    basic_auth: tuple[str, str] | None = None,
) -> Bootstrap:
    """Make sure the demo project exists with its tasks and backend, then ask for predictions.

    Idempotent: an existing project, its tasks and its backend connection are reused.
    """
    project = client.find_project_by_title(title) or client.create_project(
        title,
        label_config,
        description="BSE images of thin sections, pre-annotated by scrAiber. Correct the mineral masks and submit.",
    )
    project_id = int(project["id"])
    created = 0
    if not client.list_tasks(project_id):
        created = len(client.upload_files(project_id, [image.path for image in images]))
    connected = any(b.get("url", "").rstrip("/") == backend_url.rstrip("/") for b in client.list_ml_backends(project_id))
    if not connected:
        client.connect_ml_backend(project_id, backend_url, BACKEND_TITLE, is_interactive=True, basic_auth=basic_auth)
        authorise_webhooks(client, project_id, basic_auth)
    predictions = client.retrieve_predictions(project_id)
    return Bootstrap(project_id, created, not connected, predictions)


def bootstrap_questionnaire(client: LabelStudioClient, label_config: str, title: str = QUESTIONNAIRE_PROJECT) -> int:
    """Make sure the session questionnaire project exists with its one template task; returns its id.

    Idempotent: an existing project and task are reused. Many annotators answer the same task
    (one annotation each per session), so its overlap is set high.
    """
    project = client.find_project_by_title(title) or client.create_project(
        title,
        label_config,
        description="A 2-minute questionnaire after each labelling session (used by scraiber report).",
        maximum_annotations=1000,
        show_skip_button=False,
    )
    project_id = int(project["id"])
    if not client.list_tasks(project_id):
        client.import_tasks(project_id, [{"data": {"session": QUESTIONNAIRE_TASK}}])
    return project_id


def backend_process(env: dict[str, str], port: int, log_path: Path, secrets: list[str]) -> ManagedProcess:
    """``scraiber backend`` as a child process on loopback, configured by ``env``.

    Args:
        env: Settings for the backend (``SCRAIBER_*``, ``LABEL_STUDIO_*``...).
        port: Port on 127.0.0.1.
        log_path: Where its output goes.
        secrets: Values hidden from error messages.
    """
    return ManagedProcess(
        [sys.executable, "-m", "ml_backend", "backend", "--host", "127.0.0.1", "--port", str(port)],
        log_path=log_path,
        env=env,
        ready=f"http://127.0.0.1:{port}/health",
        ready_timeout=120,
        name="scraiber backend",
        redact=secrets,
    )


def run_stack(settings: Settings, catalogue: Catalogue, port: int, backend_port: int, n_fields: int, echo) -> None:
    """Start Label Studio and the backend, bootstrap the demo, and wait for Ctrl-C.

    Args:
        echo: Prints a line for the user (``click.echo``).
    """
    data_dir = settings.data_dir.resolve()
    ls_dir = data_dir / "label-studio"
    account = LabelStudioAccount.load_or_create(ls_dir / "account.json")
    echo(f"Starting Label Studio on http://127.0.0.1:{port} (first start: about a minute) ...")
    with LabelStudioServer(ls_dir, account, port=port) as label_studio:
        echo("Starting the scrAiber backend ...")
        env = {
            "SCRAIBER_DEMO": "true",
            "SCRAIBER_DATA_DIR": str(data_dir),
            "LABEL_STUDIO_URL": label_studio.url,
            "LABEL_STUDIO_API_KEY": label_studio.api_key,
        }
        with backend_process(env, backend_port, data_dir / "backend.log", [label_studio.api_key]) as backend:
            echo("Preparing demo images and the project (first run: predictions take a minute) ...")
            images = prepare_demo_images(data_dir / "demo", catalogue, n_fields=n_fields)
            client = LabelStudioClient(label_studio.url, label_studio.api_key, timeout=600)
            result = bootstrap_project(
                client, f"http://127.0.0.1:{backend_port}", images, (CONFIG_DIR / "minerals.xml").read_text()
            )
            questionnaire = bootstrap_questionnaire(client, (CONFIG_DIR / "questionnaire.xml").read_text())
            echo("")
            echo(f"  Label Studio:  {label_studio.url}/projects/{result.project_id}/data")
            echo(f"  Questionnaire: {label_studio.url}/projects/{questionnaire}/data (after each session)")
            echo(f"  Login:         {account.email} / {account.password}")
            echo(f"  API key:       kept in {ls_dir / 'account.json'}")
            echo(f"  Backend:       http://127.0.0.1:{backend_port}/status")
            echo(f"  Predictions:   {result.predictions.get('detail', result.predictions)}")
            echo("")
            echo("Open the project, sort by 'Prediction score' (descending: most uncertain first),")
            echo("click 'Label All Tasks', correct the mineral masks and submit. Ctrl-C stops everything.")
            _wait(label_studio, backend, echo)


def _wait(label_studio: LabelStudioServer, backend: ManagedProcess, echo) -> None:
    try:
        while True:
            time.sleep(1.0)
            for name, running, tail in (
                ("Label Studio", label_studio.running, label_studio.log_tail),
                ("the backend", backend.running, backend.log_tail),
            ):
                if not running:
                    raise RuntimeError(f"{name} stopped unexpectedly; last log lines:\n{tail()}")
    except KeyboardInterrupt:
        echo("\nStopping ...")
