"""``scraiber audit`` (send a share of submissions to review) and ``scraiber calibrate`` (fit the confidence)."""

from __future__ import annotations

import json

import click

from active_learning.audit import DEFAULT_RATE, AuditWorkflow, fit_calibration
from active_learning.calibration import CALIBRATION_KEY
from active_learning.harvest_log import HarvestLog
from ml_backend.label_studio import LabelStudioClient
from scraiber.settings import settings_from


def _workflow(ctx: click.Context, rate: float) -> tuple[AuditWorkflow, LabelStudioClient]:
    from active_learning.event_log import EventLog
    from active_learning.pseudonyms import resolve_key
    from active_learning.store import open_store
    from label_config import load_catalogue

    settings = settings_from(ctx)
    if settings.label_studio_api_key is None:
        raise click.UsageError("set LABEL_STUDIO_API_KEY (a Label Studio user who can create projects)")
    client = LabelStudioClient(settings.label_studio_url, settings.label_studio_api_key.get_secret_value())
    harvests = HarvestLog(EventLog.from_url(settings.resolved_event_log_url).engine)
    store = open_store(settings.resolved_artefact_uri, settings)
    secret = settings.pseudonym_key.get_secret_value() if settings.pseudonym_key is not None else None
    key = resolve_key(secret, settings.data_dir)
    return AuditWorkflow(client, harvests, store, load_catalogue(settings.catalogue), key, rate), client


@click.command("audit")
@click.option("--project", "project_id", type=int, required=True, help="Served Label Studio project.")
@click.option(
    "--rate", type=float, default=DEFAULT_RATE, show_default=True, help="Share of submissions reviewed again."
)
@click.pass_context
def audit_command(ctx: click.Context, project_id: int, rate: float) -> None:
    """Send a uniform share of the project's submissions to its review project (idempotent)."""
    workflow, client = _workflow(ctx, rate)
    with client:
        created = workflow.sync(project_id)
        click.echo(json.dumps({"review_project": workflow.review_project(project_id), "new_review_tasks": created}))


@click.command("calibrate")
@click.option(
    "--project", "project_ids", type=int, multiple=True, required=True, help="Served project(s) with reviews."
)
@click.option("--rate", type=float, default=DEFAULT_RATE, show_default=True)
@click.pass_context
def calibrate_command(ctx: click.Context, project_ids: tuple[int, ...], rate: float) -> None:
    """Fit the implicit-label confidence on the projects' reviews; harvests use it from then on."""
    workflow, client = _workflow(ctx, rate)
    with client:
        pairs = [pair for project in project_ids for pair in workflow.collect(project)]
    model = fit_calibration(pairs, len(workflow.catalogue))
    workflow.store.put_json(CALIBRATION_KEY, model.to_dict())
    click.echo(json.dumps({"stored": CALIBRATION_KEY, "fitted_on": model.fitted_on}))
