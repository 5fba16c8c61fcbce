"""``scraiber score`` and ``scraiber select`` against a real Label Studio (slow)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from active_learning.strategies.store import ScoreStore
from label_config.generate import CONFIG_DIR
from ml_backend.synthetic import generate_section
from scraiber.cli import main
from scraiber.settings import Settings

pytestmark = pytest.mark.slow


def test_score_then_select_from_stored_scores(label_studio, tmp_path):
    client = label_studio.client
    paths = []
    for seed in (301, 302, 303):
        paths.append(tmp_path / f"field-{seed}.png")
        Image.fromarray(generate_section(160, seed=seed).image).save(paths[-1])
    project = client.create_project("Score and select", (CONFIG_DIR / "minerals.xml").read_text())
    task_ids = client.upload_files(project["id"], paths)
    client.create_annotation(task_ids[2], [], lead_time=1.0)  # no longer open
    settings = Settings(
        label_studio_url=label_studio.url, label_studio_api_key=label_studio.api_key, data_dir=tmp_path / "data"
    )
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(main, list(args), obj={"settings": settings}, catch_exceptions=False)

    missing = run("select", "--project", str(project["id"]))
    assert missing.exit_code == 1 and "run `scraiber score --project" in missing.output
    scored = run("score", "--project", str(project["id"]), "--strategy", "entropy", "--strategy", "random")
    assert scored.exit_code == 0, scored.output
    assert "scored 2 of 2 tasks with entropy, random" in scored.output
    store = ScoreStore.from_url(settings.resolved_event_log_url)
    entropy = store.scored_tasks(project["id"], "entropy")
    assert [t.task_id for t in entropy] == task_ids[:2] and all(0 < t.score < 1 for t in entropy)
    selected = run("select", "--project", str(project["id"]), "--selector", "diverse", "-k", "5")
    assert selected.exit_code == 0, selected.output
    lines = [json.loads(line) for line in selected.output.splitlines()]
    best = max(entropy, key=lambda t: t.score)
    assert [line["rank"] for line in lines] == [1, 2] and lines[0]["task"] == best.task_id
    assert {line["task"] for line in lines} == set(task_ids[:2])
    assert np.isclose(lines[0]["score"], best.score, atol=1e-6)
