"""``scraiber up``: Label Studio and the backend on this machine, bootstrapped for a demo.

Everything lives under the data directory (``SCRAIBER_DATA_DIR``, default ``.scraiber``):
Label Studio's SQLite database and uploads, the admin account, the event log, MLflow
runs and artefacts, and the demo images. A second run reuses all of it.
"""

from __future__ import annotations

import json
import logging
import shlex
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np
import requests
from PIL import Image

from active_learning.reconcile import authorise_webhooks
from active_learning.repredict import drop_duplicate_predictions
from label_config import Catalogue
from label_config.generate import CONFIG_DIR
from ml_backend.label_studio import LabelStudioClient
from ml_backend.synthetic import generate_section, write_section
from scraiber.label_studio_server import LabelStudioAccount, LabelStudioServer
from scraiber.local_stack import STACK_FILE, LocalStack, running_stack
from scraiber.processes import ManagedProcess, ProcessError
from scraiber.settings import Settings
from tracking_analysis.snapshot import QUESTIONNAIRE_PROJECT

log = logging.getLogger(__name__)

DEMO_PROJECT = "scrAiber demo: mineral maps"
QUESTIONNAIRE_TASK = (
    "After each labelling session, open this task, add an annotation (+) and answer. "
    "Your answers are matched to your latest session (by account and time) in the tracking report."
)
BACKEND_TITLE = "scrAiber"
UNCERTAIN_TAB = "Most uncertain first"
REAL_FIELD_DIR = Path(str(files("ml_backend") / "demo" / "real"))


@dataclass(frozen=True)
class DemoImage:
    """One demo image to upload, with where its ground truth is (if synthetic) and its pixel size (if known)."""

    path: Path
    truth: Path | None
    pixel_size_um: float | None = None


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
        metadata = json.loads((demo_dir / "truth" / f"{stem}.json").read_text(encoding="utf-8"))
        images.append(DemoImage(png, demo_dir / "truth" / f"{stem}_classes.png", float(metadata["pixel_size_um"])))
    real_dir = demo_dir / "real"
    if not real_dir.exists():
        shutil.copytree(REAL_FIELD_DIR, real_dir)  # the licence README travels with the image
    images.append(DemoImage(real_dir / "tescan-tima-field1-bse.png", None))  # its pixel size was not recorded
    return images


@dataclass(frozen=True)
class Bootstrap:
    """What :func:`bootstrap_project` found or made."""

    project_id: int
    tasks_created: int
    backend_connected: bool
    predictions: dict
    model_version: str | None = None


def bootstrap_project(
    client: LabelStudioClient,
    backend_url: str,
    images: list[DemoImage],
    label_config: str,
    title: str = DEMO_PROJECT,
    basic_auth: tuple[str, str] | None = None,
) -> Bootstrap:
    """Make sure the demo project exists with its tasks and backend, ask for predictions, and set the
    project's ``model_version`` to the version the backend serves it.

    Label Studio sets a project's ``model_version`` to the backend's title when it is connected
    and its Data Manager averages only predictions of that version into "Prediction score":
    without this, the score column stays empty and sorting by it does nothing (the harvest
    worker keeps it right afterwards). Tasks get their image's ``pixel_size_um`` where known.
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
    add_pixel_sizes(client, project_id, images)
    connected = any(
        b.get("url", "").rstrip("/") == backend_url.rstrip("/") for b in client.list_ml_backends(project_id)
    )
    if not connected:
        client.connect_ml_backend(project_id, backend_url, BACKEND_TITLE, is_interactive=True, basic_auth=basic_auth)
        authorise_webhooks(client, project_id, basic_auth)
    predictions = client.retrieve_predictions(project_id)
    version = served_version(backend_url, project_id, label_config, basic_auth)
    # the harvest worker may have predicted the new connection's tasks at the same time
    drop_duplicate_predictions(client, project_id, version)
    client.update_project(project_id, model_version=version)
    add_uncertainty_tab(client, project_id)
    return Bootstrap(project_id, created, not connected, predictions, version)


def add_uncertainty_tab(client: LabelStudioClient, project_id: int) -> bool:
    """Add the Data Manager tab "Most uncertain first": the "Prediction score" column shown (Label
    Studio hides it by default) and tasks ordered by it, descending. False if the tab exists."""
    if any(view.get("data", {}).get("title") == UNCERTAIN_TAB for view in client.data_manager_views(project_id)):
        return False
    hidden: dict[str, list[str]] = {"explore": [], "labeling": []}
    for column in client.data_manager_columns(project_id):
        shown = column.get("visibility_defaults")
        if not shown or column.get("target") != "tasks":
            continue
        key = f"tasks:data.{column['id']}" if column.get("parent") == "data" else f"tasks:{column['id']}"
        for view in hidden:
            if not shown.get(view) and column["id"] != "predictions_score":
                hidden[view].append(key)
    client.create_data_manager_view(project_id, {
        "title": UNCERTAIN_TAB, "type": "list", "target": "tasks", "ordering": ["-tasks:predictions_score"],
        "hiddenColumns": hidden, "filters": {"conjunction": "and", "items": []},
    })  # fmt: skip
    return True


def add_pixel_sizes(client: LabelStudioClient, project_id: int, images: list[DemoImage]) -> int:
    """Add ``pixel_size_um`` to the data of tasks made from ``images`` that lack it; returns how many.

    Uploaded files keep their name after Label Studio's prefix (``/data/upload/P/1a2b3c4d-NAME``).
    """
    sizes = {image.path.name: image.pixel_size_um for image in images if image.pixel_size_um is not None}
    changed = 0
    for task in client.list_tasks(project_id):
        data = task.get("data") or {}
        name = str(data.get("image", "")).rsplit("/", 1)[-1].split("-", 1)[-1]
        if "pixel_size_um" not in data and name in sizes:
            client.update_task(task["id"], {**data, "pixel_size_um": sizes[name]})
            changed += 1
    return changed


def served_version(
    backend_url: str, project_id: int, label_config: str, basic_auth: tuple[str, str] | None = None
) -> str:
    """The ``model_version`` the backend serves to the project (its ``/setup`` answer, as Label Studio asks it).

    Raises:
        ProcessError: the backend did not answer with a version.
    """
    response = requests.post(f"{backend_url.rstrip('/')}/setup", json={"project": str(project_id), "schema": label_config},
                             auth=basic_auth, timeout=120)  # fmt: skip
    version = response.json().get("model_version") if response.ok else None
    if not version:
        raise ProcessError(f"the backend's /setup answered HTTP {response.status_code} without a model version")
    return str(version)


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
        [sys.executable, "-m", "scraiber", "backend", "--host", "127.0.0.1", "--port", str(port)],
        log_path=log_path,
        env=env,
        ready=f"http://127.0.0.1:{port}/health",
        ready_timeout=120,
        name="scraiber backend",
        redact=secrets,
    )


def run_stack(settings: Settings, catalogue: Catalogue, port: int, backend_port: int, n_fields: int, echo) -> None:
    """Start Label Studio and the backend, bootstrap the demo, and wait until Ctrl-C, SIGTERM or SIGHUP.

    While it runs, ``<data dir>/stack.json`` (:mod:`scraiber.local_stack`) lets commands started
    with the same data dir find Label Studio and its API key. Every way of stopping it stops both
    servers and removes that record.

    Args:
        echo: Prints a line for the user (``click.echo``).

    Raises:
        ProcessError: another ``scraiber up`` runs on this data dir, or a server does not start.
    """
    data_dir = settings.data_dir.resolve()
    other = running_stack(data_dir)
    if other is not None:
        raise ProcessError(f"scraiber up already runs on {data_dir} (pid {other.pid}, Label Studio at "
                           f"{other.label_studio_url}); stop it first or choose another SCRAIBER_DATA_DIR")  # fmt: skip
    ls_dir = data_dir / "label-studio"
    account = LabelStudioAccount.load_or_create(ls_dir / "account.json")
    with stop_on_signals():
        echo(f"Starting Label Studio on http://127.0.0.1:{port} (first start: about a minute) ...")
        with LabelStudioServer(ls_dir, account, port=port) as label_studio:
            echo("Starting the scrAiber backend ...")
            env = {
                "SCRAIBER_DEMO": "true",
                "SCRAIBER_DATA_DIR": str(data_dir),
                "LABEL_STUDIO_URL": label_studio.url,
                "LABEL_STUDIO_API_KEY": label_studio.api_key,
            }
            backend_url = f"http://127.0.0.1:{backend_port}"
            with backend_process(env, backend_port, data_dir / "backend.log", [label_studio.api_key]) as backend:
                LocalStack.of_this_process(label_studio.url, backend_url, ls_dir / "account.json").write(data_dir)
                try:
                    echo("Preparing demo images and the project (first run: predictions take a minute) ...")
                    images = prepare_demo_images(data_dir / "demo", catalogue, n_fields=n_fields)
                    client = LabelStudioClient(label_studio.url, label_studio.api_key, timeout=600)
                    result = bootstrap_project(client, backend_url, images, (CONFIG_DIR / "minerals.xml").read_text())
                    questionnaire = bootstrap_questionnaire(client, (CONFIG_DIR / "questionnaire.xml").read_text())
                    for line in ready_text(label_studio.url, backend_url, account, result, questionnaire, data_dir):
                        echo(line)
                    _wait(label_studio, backend, echo)
                finally:
                    LocalStack.remove(data_dir)


def ready_text(
    label_studio_url: str,
    backend_url: str,
    account: LabelStudioAccount,
    result: Bootstrap,
    questionnaire: int,
    data_dir: Path,
) -> list[str]:
    """What ``scraiber up`` prints once everything runs: where things are and the next commands, exactly."""
    scraiber = next_command_prefix(data_dir)
    project = result.project_id
    commands = [
        (f"{scraiber} retrain", "fine-tune on your corrections now (2 CPU cores: 15-40 min)"),
        (f"{scraiber} report --project {project} --out report.html", "tracking report of the sessions"),
        (f"{scraiber} export --project {project} --out labels", "implicit labels as an open-data package"),
    ]
    width = max(len(command) for command, _ in commands)
    return [
        "",
        f"  Label Studio:  {label_studio_url}/projects/{project}/data",
        f"  Questionnaire: {label_studio_url}/projects/{questionnaire}/data (after each session)",
        f"  Login:         {account.email} / {account.password}",
        f"  API key:       kept in {data_dir / 'label-studio' / 'account.json'}",
        f"  Backend:       {backend_url}/status (model, harvested labels, retraining progress)",
        f"  Model:         {result.model_version} (the project's model version: its scores fill 'Prediction score')",
        f"  Predictions:   {result.predictions.get('detail', result.predictions)}",
        "",
        f"Open the project: the tab '{UNCERTAIN_TAB}' sorts tasks by 'Prediction score' (descending).",
        "Click 'Label All Tasks', correct the mineral masks and submit.",
        "",
        f"Next, in another terminal in this folder (they find this stack through {data_dir / STACK_FILE}):",
        *(f"  {command:<{width}}  # {what}" for command, what in commands),
        "",
        "Ctrl-C (or SIGTERM) stops everything.",
    ]


def next_command_prefix(data_dir: Path) -> str:
    """How to call ``scraiber`` from the current folder so it finds ``data_dir``'s stack (shell-quoted)."""
    beside = Path(sys.executable).parent / "scraiber"
    program = str(beside) if beside.is_file() else (shutil.which("scraiber") or f"{sys.executable} -m ml_backend")
    cwd = Path.cwd()
    if Path(program).is_absolute() and Path(program).is_relative_to(cwd):
        program = str(Path(program).relative_to(cwd))
    command = " ".join(shlex.quote(part) for part in program.split(" "))
    if data_dir.resolve() != (cwd / ".scraiber").resolve():  # the default data dir needs no variable
        command = f"SCRAIBER_DATA_DIR={shlex.quote(str(data_dir))} {command}"
    return command


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP stop ``scraiber up`` as Ctrl-C does (KeyboardInterrupt, so every server is
    stopped on the way out); once stopping, further signals are ignored so they cannot cut it short."""
    signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.getsignal(sig) for sig in signals}

    def stop(signum: int, frame: object) -> None:
        for sig in signals:
            signal.signal(sig, signal.SIG_IGN)
        raise KeyboardInterrupt

    for sig in signals:
        signal.signal(sig, stop)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


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
