"""``scraiber simulate``: a simulated expert corrects a project's open tasks through Label Studio."""

from __future__ import annotations

import json
from dataclasses import asdict

import click

from benchmarks.simulated_expert import MODES, ExpertConfig, SimulatedExpert
from label_config import load_catalogue
from ml_backend.label_studio import LabelStudioClient
from scraiber.settings import settings_from
from tracking_analysis.truth import TruthLookup


@click.command("simulate")
@click.option("--project", "project_id", type=int, required=True, help="Label Studio project id.")
@click.option(
    "--truth", "truth_dir", type=click.Path(file_okay=False), required=True, help="Folder of *_classes.png masks."
)
@click.option(
    "--mapping", type=click.Path(dir_okay=False), default=None, help="JSON {task id or image name: truth key}."
)
@click.option("--mode", type=click.Choice(MODES), default="correct", show_default=True)
@click.option("--tasks", "max_tasks", type=int, default=None, help="Stop after this many tasks (default: all open).")
@click.option("--budget", type=float, default=ExpertConfig.budget_seconds, show_default=True, help="Seconds per task.")
@click.option(
    "--tolerance", type=int, default=ExpertConfig.boundary_tolerance, show_default=True, help="Boundary px ignored."
)
@click.option("--skip-probability", type=float, default=0.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.pass_context
def simulate_command(ctx, project_id, truth_dir, mapping, mode, max_tasks, budget, tolerance, skip_probability, seed):
    """Play a simulated expert against Label Studio (LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY)."""
    settings = settings_from(ctx)
    if settings.label_studio_api_key is None:
        raise ValueError("set LABEL_STUDIO_API_KEY (the simulated expert's Label Studio API key)")
    config = ExpertConfig(
        mode=mode, budget_seconds=budget, boundary_tolerance=tolerance, skip_probability=skip_probability, seed=seed
    )
    catalogue = load_catalogue(settings.catalogue)
    with LabelStudioClient(settings.label_studio_url, settings.label_studio_api_key.get_secret_value()) as client:
        expert = SimulatedExpert(client, project_id, TruthLookup(truth_dir, mapping), config, catalogue)
        for submission in expert.run(max_tasks):
            click.echo(json.dumps(asdict(submission)))
