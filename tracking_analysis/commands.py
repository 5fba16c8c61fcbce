"""``scraiber report`` (the tracking report, HTML or JSON) and ``scraiber export`` (open-data package)."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("report")
@click.option("--project", "project_id", type=int, default=None, help="Label Studio project id (read live).")
@click.option("--snapshot", "snapshot_path", type=click.Path(dir_okay=False), default=None, help="Report from a saved snapshot instead of Label Studio.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Where to write the report.")
@click.option("--format", "fmt", type=click.Choice(["html", "json"]), default="html", show_default=True)
@click.option("--learning-curve", "curve_path", type=click.Path(dir_okay=False, exists=True), default=None, help="Learning-curve table (JSON/CSV: n_labelled_tiles, mIoU, strategy, label_kind).")
@click.option("--truth", "truth_dir", type=click.Path(file_okay=False), default=None, help="Folder of *_classes.png ground-truth masks.")
@click.option("--truth-mapping", type=click.Path(dir_okay=False), default=None, help="JSON {task id or image name: truth key}.")
@click.option("--session-gap", type=float, default=30.0, show_default=True, help="Minutes without work that end a session.")
@click.option("--save-snapshot", type=click.Path(dir_okay=False), default=None, help="Also save the Label Studio records read (JSON).")
@click.pass_context
def report_command(ctx, project_id, snapshot_path, out, fmt, curve_path, truth_dir, truth_mapping, session_gap, save_snapshot):
    """Indicators of how experts worked on a project: acceptance, edits, time, skips, confusions,
    agreement, implicit-label quality, questionnaire; LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY."""
    from active_learning.simulated_expert import TruthLookup
    from tracking_analysis.learning_curve import read_learning_curve
    from tracking_analysis.report import build_report, render_html, to_json

    if (project_id is None) == (snapshot_path is None):
        raise ValueError("give either --project ID (read Label Studio) or --snapshot FILE")
    if session_gap <= 0:
        raise ValueError(f"--session-gap must be a positive number of minutes, got {session_gap}")
    snapshot = _snapshot(ctx, project_id) if project_id is not None else _load(snapshot_path)
    if save_snapshot:
        snapshot.save(save_snapshot)
    report = build_report(
        snapshot,
        truth=TruthLookup(truth_dir, truth_mapping) if truth_dir else None,
        learning_curve=read_learning_curve(curve_path) if curve_path else None,
        session_gap=session_gap * 60.0,
    )
    text = to_json(report) if fmt == "json" else render_html(report)
    Path(out).write_text(text, encoding="utf-8")
    overall = report["overall"]
    click.echo(
        f"{out}: {overall['annotations']} annotations, acceptance {_pct(overall['acceptance_rate'])}, "
        f"skip rate {_pct(overall['skip_rate'])}",
        err=True,
    )


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.0f}%"


def _load(path: str):
    from tracking_analysis.snapshot import Snapshot

    return Snapshot.load(path)


def _snapshot(ctx: click.Context, project_id: int):
    from active_learning.pseudonyms import resolve_key
    from label_config import load_catalogue
    from ml_backend.cli import settings_from
    from ml_backend.label_studio import LabelStudioClient
    from tracking_analysis.snapshot import capture

    settings = settings_from(ctx)
    if settings.label_studio_api_key is None:
        raise ValueError("set LABEL_STUDIO_API_KEY (a Label Studio administrator's API key) to read the project")
    secret = settings.pseudonym_key.get_secret_value() if settings.pseudonym_key else None
    key = resolve_key(secret, settings.data_dir)
    catalogue = load_catalogue(settings.catalogue)
    with LabelStudioClient(settings.label_studio_url, settings.label_studio_api_key.get_secret_value(), timeout=120) as client:
        return capture(client, project_id, catalogue, key)


@click.command("export")
@click.option("--project", "project_id", type=int, default=None, help="Label Studio project id (read live).")
@click.option("--snapshot", "snapshot_path", type=click.Path(dir_okay=False), default=None, help="Export from a saved snapshot instead.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder of the data package (new or empty).")
@click.option("--licence", default="CC-BY-4.0", show_default=True, help="SPDX licence identifier of the data.")
@click.option("--title", default=None, help="Title of the data package.")
@click.pass_context
def export_command(ctx, project_id, snapshot_path, out, licence, title):
    """Implicit labels of a project as an open-data package (datapackage.json, README, CSV, PNG)."""
    from label_config import load_catalogue
    from ml_backend.cli import settings_from
    from tracking_analysis.export import export_package

    if (project_id is None) == (snapshot_path is None):
        raise ValueError("give either --project ID (read Label Studio) or --snapshot FILE")
    snapshot = _snapshot(ctx, project_id) if project_id is not None else _load(snapshot_path)
    path = export_package(snapshot, load_catalogue(settings_from(ctx).catalogue), out, licence, title)
    labels = json.loads(path.read_text())["scraiber"]["labels"]
    click.echo(f"{path}: {labels} implicit labels", err=True)
