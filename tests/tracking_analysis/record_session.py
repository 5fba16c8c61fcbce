"""Record the tracking-analysis test session: simulated experts against a real Label Studio.

Regenerate the committed fixture (``data/session.json`` and ``data/truth/*_classes.png``)
with::

    .venv/bin/python -m tests.tracking_analysis.record_session

which starts its own Label Studio on loopback (about a minute) and stops it at the end.
``test_recorded_session.py::test_recording_against_label_studio`` runs the same recording
against the shared ``label_studio`` fixture and checks it (slow).

The session (all seeded; only Label Studio's timestamps and ids vary between recordings):

* project "Tracking session" with four synthetic 256 px fields (seeds 301-304), each task
  with ``pixel_size_um`` and ``truth`` in its data;
* model ``unsupervised-v1`` (the unsupervised segmenter) pre-annotates fields 301-303;
  field 304 gets no prediction;
* annotator A (the administrator) saves a draft on 304, then works the queue with the
  simulated expert (seed 1, 90 s per task): corrects 301-303 in score order and skips 304
  (nothing predicted);
* model ``fcn-v2`` (the shipped FCN) pre-annotates 301-303 again;
* annotator B (a second account) corrects the ``fcn-v2`` predictions of the two
  highest-scored of 301-303 (seed 2, 60 s per task) and submits the third unchanged after
  8 s (a 9 s budget: no correction fits);
* both answer the session questionnaire (project made by ``bootstrap_questionnaire``).
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import requests
from PIL import Image

from benchmarks.simulated_expert import ExpertConfig, SimulatedExpert
from label_config import load_catalogue
from label_config.generate import CONFIG_DIR
from ml_backend.label_map import control_target
from ml_backend.label_studio import LabelStudioClient, LabelStudioLogin
from ml_backend.predictor import brush_results
from ml_backend.segmenters import create_segmenter
from ml_backend.synthetic import generate_section
from ml_backend.uncertainty import task_score
from scraiber.stack import bootstrap_questionnaire
from tracking_analysis.snapshot import Snapshot, capture
from tracking_analysis.truth import TruthLookup

DATA = Path(__file__).resolve().parent / "data"
SEEDS = (301, 302, 303, 304)
SIZE = 256
PSEUDONYM_KEY = b"tracking-analysis-test-key-not-a-secret-0123456789"
TITLE = "Tracking session"
ANSWERS = {
    "A": {
        "usefulness": 4,
        "trust": 3,
        "effort": 2,
        "hardest": ["Plagioclase", "Groundmass"],
        "most_time": ["Boundaries between minerals"],
        "comments": "Plagioclase laths were often called groundmass.",
    },
    "B": {
        "usefulness": 5,
        "trust": 4,
        "effort": 2,
        "hardest": ["Plagioclase"],
        "most_time": ["Small crystals"],
        "comments": "",
    },
}


def sign_up(url: str, admin_key: str, email: str, password: str) -> str:
    """Create a Label Studio user through the invite link (like a colleague would) and return its legacy token."""
    invite = requests.get(f"{url}/api/invite", headers={"Authorization": f"Token {admin_key}"}, timeout=30)
    invite.raise_for_status()
    session = requests.Session()
    signup = f"{url}/user/signup/?token={invite.json()['token']}"
    session.get(signup, timeout=30).raise_for_status()
    answer = session.post(
        signup,
        data={"email": email, "password": password, "csrfmiddlewaretoken": session.cookies.get("csrftoken", "")},
        headers={"Referer": signup},
        timeout=30,
        allow_redirects=False,
    )
    if answer.status_code != 302:
        raise RuntimeError(f"sign-up of {email} failed with HTTP {answer.status_code}")
    with LabelStudioLogin(url, email, password) as login:
        return login.legacy_token()


def _save_draft(url: str, key: str, task_id: int, result: list[dict], lead_time: float) -> None:
    response = requests.post(
        f"{url}/api/tasks/{task_id}/drafts",
        json={"result": result, "lead_time": lead_time},
        headers={"Authorization": f"Token {key}"},
        timeout=30,
    )
    response.raise_for_status()


def _answer(client: LabelStudioClient, task_id: int, answers: dict) -> None:
    result = [
        {"from_name": name, "to_name": "session", "type": "rating", "value": {"rating": answers[name]}}
        for name in ("usefulness", "trust", "effort")
    ]
    result += [
        {"from_name": name, "to_name": "session", "type": "choices", "value": {"choices": answers[name]}}
        for name in ("hardest", "most_time")
    ]
    if answers["comments"]:
        result.append(
            {
                "from_name": "comments",
                "to_name": "session",
                "type": "textarea",
                "value": {"text": [answers["comments"]]},
            }
        )
    client.create_annotation(task_id, result, lead_time=60.0)


def record_session(url: str, admin_key: str, work: Path, log: Callable[[str], None] = print) -> tuple[Snapshot, Path]:
    """Record the session (module docstring) on the Label Studio at ``url``.

    Returns:
        The captured snapshot and the folder of the truth masks (``field-<seed>_classes.png``).
    """
    catalogue = load_catalogue()
    config = (CONFIG_DIR / "minerals.xml").read_text()
    target = control_target(config, catalogue)
    truth_dir = work / "truth"
    truth_dir.mkdir(parents=True, exist_ok=True)
    admin = LabelStudioClient(url, admin_key, timeout=120)
    project_id = int(admin.create_project(TITLE, config)["id"])
    images, sections = [], []
    for seed in SEEDS:
        section = generate_section(SIZE, seed=seed, catalogue=catalogue)
        Image.fromarray(section.classes).save(truth_dir / f"field-{seed}_classes.png")
        path = work / f"field-{seed}.png"
        Image.fromarray(section.image).save(path)
        images.append(path)
        sections.append(section)
    task_ids = admin.upload_files(project_id, images)
    for task_id, seed, section in zip(task_ids, SEEDS, sections):
        data = admin.get_task(task_id)["data"]
        admin.update_task(
            task_id, {**data, "truth": f"field-{seed}", "pixel_size_um": round(float(section.pixel_size_um), 4)}
        )

    def predict(name: str, version: str, **options) -> None:
        segmenter = create_segmenter(name, catalogue, **options)
        for task_id, section in zip(task_ids[:3], sections[:3]):
            probs = segmenter.predict_proba(section.image)
            admin.create_prediction(task_id, brush_results(probs, target), round(task_score(probs), 4), version)
        log(f"predictions {version} stored")

    truth = TruthLookup(truth_dir)
    predict("unsupervised", "unsupervised-v1")
    _save_draft(url, admin_key, task_ids[3], [], lead_time=12.0)
    expert_a = SimulatedExpert(admin, project_id, truth, ExpertConfig(seed=1, budget_seconds=90), catalogue)
    log(f"annotator A: {[(s.task_id, s.skipped, s.lead_time) for s in expert_a.run()]}")

    predict("fcn", "fcn-v2", threads=1)
    key_b = sign_up(url, admin_key, "annotator-b@scraiber.test", secrets.token_urlsafe(12) + "-Aa1")
    client_b = LabelStudioClient(url, key_b, timeout=120)
    careful = SimulatedExpert(
        client_b, project_id, truth, ExpertConfig(seed=2, budget_seconds=60, boundary_tolerance=1), catalogue
    )
    tired = SimulatedExpert(
        client_b,
        project_id,
        truth,
        ExpertConfig(seed=3, budget_seconds=9, time_noise=0.0, overhead_seconds=8),
        catalogue,
    )
    order = []
    for task_id in task_ids[:3]:
        newest = max(client_b.task_predictions(task_id), key=lambda p: int(p["id"]))
        order.append((-float(newest["score"]), task_id, newest))
    for position, (_, task_id, newest) in enumerate(sorted(order, key=lambda item: item[:2])):
        expert_b = careful if position < 2 else tired  # B accepts the last task unchanged
        submission = expert_b.annotate(client_b.get_task(task_id), newest)
        log(f"annotator B: {(submission.task_id, submission.lead_time, submission.regions)}")

    questionnaire = bootstrap_questionnaire(admin, (CONFIG_DIR / "questionnaire.xml").read_text())
    (template,) = admin.list_tasks(questionnaire)
    _answer(admin, int(template["id"]), ANSWERS["A"])
    _answer(client_b, int(template["id"]), ANSWERS["B"])
    snapshot = capture(admin, project_id, catalogue, PSEUDONYM_KEY)
    admin.close()
    client_b.close()
    return snapshot, truth_dir


def main() -> None:
    """Record with a private Label Studio and overwrite the committed fixture."""
    from scraiber.label_studio_server import LabelStudioAccount, LabelStudioServer

    with tempfile.TemporaryDirectory(prefix="scraiber-record-") as folder:
        work = Path(folder)
        with LabelStudioServer(work / "label-studio", LabelStudioAccount.generate("admin@scraiber.test")) as server:
            snapshot, truth_dir = record_session(server.url, server.api_key, work)
        DATA.mkdir(parents=True, exist_ok=True)
        snapshot.save(DATA / "session.json")
        (DATA / "truth").mkdir(exist_ok=True)
        for path in sorted(truth_dir.glob("*_classes.png")):
            shutil.copyfile(path, DATA / "truth" / path.name)
    print(
        f"wrote {DATA / 'session.json'} ({(DATA / 'session.json').stat().st_size} bytes) and {len(SEEDS)} truth masks"
    )


if __name__ == "__main__":
    main()
