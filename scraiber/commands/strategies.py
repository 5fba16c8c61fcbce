"""``scraiber score`` (the scoring pass into the score store) and ``scraiber select`` (ranking stored scores)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from scraiber.settings import Settings, settings_from


def _client(settings: Settings):
    from ml_backend.label_studio import LabelStudioClient

    if settings.label_studio_api_key is None:
        raise ValueError("set LABEL_STUDIO_API_KEY (a Label Studio API key that can read the project)")
    return LabelStudioClient(settings.label_studio_url, settings.label_studio_api_key.get_secret_value())


def _open(task: dict) -> bool:
    return not (task.get("total_annotations") or task.get("cancelled_annotations"))


@click.command("score")
@click.option("--project", "project_id", type=int, required=True, help="Label Studio project id.")
@click.option(
    "--strategy",
    "strategies",
    multiple=True,
    default=("entropy",),
    show_default=True,
    help="Query strategy (repeat for several; all share one prediction per task).",
)
@click.option("--segmenter", "segmenter_name", default="unsupervised", show_default=True, help="Segmentation method.")
@click.option(
    "--model", type=click.Path(exists=True, path_type=Path), default=None, help="FCN weights (segmenter fcn)."
)
@click.option("--all-tasks", is_flag=True, help="Also score tasks that already have annotations.")
@click.pass_context
def score_command(ctx, project_id, strategies, segmenter_name, model, all_tasks) -> None:
    """Score a project's tasks with the given query strategies and store the scores."""
    from active_learning.strategies import create_scorer
    from active_learning.strategies.scoring import score_tasks
    from active_learning.strategies.store import ScoreStore
    from label_config import load_catalogue
    from ml_backend.image_source import image_source_from
    from ml_backend.label_map import control_target
    from ml_backend.segmenters import create_segmenter

    settings = settings_from(ctx)
    catalogue = load_catalogue(settings.catalogue)
    scorers = [create_scorer(name) for name in strategies]
    segmenter = create_segmenter(segmenter_name, catalogue, **({"model": model} if model else {}))
    images = image_source_from(settings)
    with _client(settings) as client:
        target = control_target(client.get_project(project_id)["label_config"], catalogue)
        tasks = [t for t in client.list_tasks(project_id) if all_tasks or _open(t)]

    def fetch(task: dict):
        return images.fetch(task["data"][target.value_key]).pixels

    store = ScoreStore.from_url(settings.resolved_event_log_url)
    scored = score_tasks(project_id, tasks, fetch, segmenter, scorers, store, progress=True)
    click.echo(f"scored {len(scored)} of {len(tasks)} tasks with {', '.join(strategies)} for model {segmenter.version}")


@click.command("select")
@click.option("--project", "project_id", type=int, required=True, help="Label Studio project id.")
@click.option("--strategy", default="entropy", show_default=True, help="Which stored scores to rank.")
@click.option("--selector", "selector_name", default="top-k", show_default=True, help="top-k or diverse.")
@click.option("-k", "k", type=int, default=10, show_default=True, help="Tasks to select.")
@click.option("--diversity", type=float, default=None, help="Diverse selector: weight of diversity in [0, 1].")
@click.option("--model-version", default=None, help="Scores of this model (default: the latest scored).")
@click.option("--all-tasks", is_flag=True, help="Rank every scored task, not only those still open in Label Studio.")
@click.pass_context
def select_command(ctx, project_id, strategy, selector_name, k, diversity, model_version, all_tasks) -> None:
    """Print the next tasks to label (one JSON line each), ranked from stored scores only."""
    from active_learning.strategies import create_selector
    from active_learning.strategies.store import ScoreStore

    settings = settings_from(ctx)
    selector = create_selector(selector_name, **({"diversity": diversity} if diversity is not None else {}))
    open_tasks = None
    if not all_tasks:
        with _client(settings) as client:
            open_tasks = [int(t["id"]) for t in client.list_tasks(project_id) if _open(t)]
    stored = ScoreStore.from_url(settings.resolved_event_log_url).scored_tasks(
        project_id, strategy, model_version, open_tasks
    )
    if not stored:
        raise ValueError(
            f"no stored {strategy} scores for project {project_id}: run `scraiber score --project {project_id}` first"
        )
    for rank, task in enumerate(selector.select(stored, k), start=1):
        click.echo(json.dumps({"rank": rank, "task": task.task_id, "score": round(task.score, 6)}))
