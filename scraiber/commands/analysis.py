"""``scraiber report`` (the tracking report), ``export`` (open-data package) and ``publish`` (Zenodo)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from scraiber.settings import settings_from


@click.command("report")
@click.option("--project", "project_id", type=int, default=None, help="Label Studio project id (read live).")
@click.option(
    "--snapshot",
    "snapshot_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Report from a saved snapshot instead of Label Studio.",
)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Where to write the report.")
@click.option("--format", "fmt", type=click.Choice(["html", "json"]), default="html", show_default=True)
@click.option(
    "--learning-curve",
    "curve_path",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="Learning-curve table (JSON/CSV: n_labelled_tiles, mIoU, strategy, label_kind).",
)
@click.option(
    "--calibration",
    "calibration_path",
    type=click.Path(dir_okay=False, exists=True),
    default=None,
    help="Confidence calibration (calibration.json of scraiber bench active-learning): reliability diagram.",
)
@click.option(
    "--truth",
    "truth_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder of *_classes.png ground-truth masks.",
)
@click.option(
    "--truth-mapping", type=click.Path(dir_okay=False), default=None, help="JSON {task id or image name: truth key}."
)
@click.option(
    "--session-gap", type=float, default=30.0, show_default=True, help="Minutes without work that end a session."
)
@click.option(
    "--save-snapshot",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also save the Label Studio records read (JSON).",
)
@click.pass_context
def report_command(
    ctx,
    project_id,
    snapshot_path,
    out,
    fmt,
    curve_path,
    calibration_path,
    truth_dir,
    truth_mapping,
    session_gap,
    save_snapshot,
):
    """Indicators of how experts worked on a project: acceptance, edits, time, skips, confusions,
    agreement, implicit-label quality, questionnaire; LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY."""
    from tracking_analysis.learning_curve import read_learning_curve
    from tracking_analysis.report import build_report, render_html, to_json
    from tracking_analysis.truth import TruthLookup

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
        calibration=json.loads(Path(calibration_path).read_text(encoding="utf-8")) if calibration_path else None,
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
    from ml_backend.label_studio import LabelStudioClient
    from tracking_analysis.snapshot import capture

    settings = settings_from(ctx)
    if settings.label_studio_api_key is None:
        raise ValueError("set LABEL_STUDIO_API_KEY (a Label Studio administrator's API key) to read the project")
    secret = settings.pseudonym_key.get_secret_value() if settings.pseudonym_key else None
    key = resolve_key(secret, settings.data_dir)
    catalogue = load_catalogue(settings.catalogue)
    with LabelStudioClient(
        settings.label_studio_url, settings.label_studio_api_key.get_secret_value(), timeout=120
    ) as client:
        return capture(client, project_id, catalogue, key)


@click.command("export")
@click.option("--project", "project_id", type=int, default=None, help="Label Studio project id (read live).")
@click.option(
    "--snapshot",
    "snapshot_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Export from a saved snapshot instead.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder of the data package (new, empty, or an earlier package's).",
)
@click.option(
    "--images",
    "images_dir",
    type=click.Path(file_okay=False, exists=True),
    default=None,
    help="Folder with the tasks' image files (matched by file name); default: fetch them from Label Studio.",
)
@click.option(
    "--image-url-template",
    default=None,
    help="Reference images by URL instead of copying them, e.g. 'https://data.example.org/bse/{name}' ({task_id}, {name}, {sha256}).",
)
@click.option("--licence", default="CC-BY-4.0", show_default=True, help="SPDX licence identifier of the data.")
@click.option("--title", default=None, help="Title of the dataset.")
@click.option("--version", "dataset_version", default="1.0.0", show_default=True, help="Version of the dataset.")
@click.option(
    "--creator", "creators", multiple=True, help="'Family, Given|ORCID|Affiliation[|annotator pseudonym]' (repeatable)."
)
@click.option("--keyword", "keywords", multiple=True, help="Keyword added to the defaults (repeatable).")
@click.option(
    "--related",
    multiple=True,
    help="'DOI or igsn:ID or URL[|RelationType]' (repeatable; default relation IsSupplementTo).",
)
@click.option(
    "--publisher",
    default="Zenodo",
    show_default=True,
    help="Publisher named in the DataCite metadata (the repository).",
)
@click.option("--coco", is_flag=True, help="Also write COCO JSON (minerals and crystals, RLE masks).")
@click.option("--crystals", is_flag=True, help="Also write the crystal tables of every label (scraiber crystals).")
@click.option(
    "--with-model",
    "with_model",
    is_flag=False,
    flag_value="champion",
    default=None,
    help="Add the model and its card: champion (the default when given without value), models:/NAME@ALIAS or models:/NAME/VERSION.",
)
@click.option("--zip", "make_zip", is_flag=True, help="Also write OUT.zip, the package ready to upload.")
@click.pass_context
def export_command(ctx, project_id, snapshot_path, out, images_dir, image_url_template, licence, title, dataset_version,
                   creators, keywords, related, publisher, coco, crystals, with_model, make_zip):  # fmt: skip
    """Labels of a project as an open-data package: Frictionless, RO-Crate, DataCite, Zenodo and CFF metadata."""
    from label_config import load_catalogue
    from tracking_analysis.dataset_metadata import Creator, RelatedIdentifier
    from tracking_analysis.export import ExportOptions, export_package
    from tracking_analysis.model_card import ModelLookup, export_model
    from tracking_analysis.package_images import folder_fetcher

    if (project_id is None) == (snapshot_path is None):
        raise ValueError("give either --project ID (read Label Studio) or --snapshot FILE")
    settings = settings_from(ctx)
    catalogue = load_catalogue(settings.catalogue)
    options = ExportOptions(
        licence=licence, title=title, version=dataset_version, creators=tuple(Creator.parse(c) for c in creators),
        keywords=tuple(keywords), related=tuple(RelatedIdentifier.parse(r) for r in related), publisher=publisher,
        image_url_template=image_url_template, coco=coco, crystals=crystals, zip=make_zip,
    )  # fmt: skip
    snapshot = _snapshot(ctx, project_id) if project_id is not None else _load(snapshot_path)
    if images_dir is not None:
        fetch = folder_fetcher(images_dir)
    elif settings.label_studio_api_key is not None:
        from ml_backend.image_source import image_source_from

        fetch = image_source_from(settings).fetch_bytes
    else:
        fetch = None
    model = (lambda folder: export_model(with_model, settings, catalogue, folder)) if with_model else None
    path = export_package(
        snapshot, catalogue, out, options, fetch, ModelLookup(settings), model, settings.max_image_pixels
    )
    summary = json.loads(path.read_text())["scraiber"]
    click.echo(
        f"{path}: {summary['labels']} labels of {summary['images']} images" + (f"; {out}.zip" if make_zip else ""),
        err=True,
    )


@click.command("publish")
@click.argument("package", type=click.Path(file_okay=False, exists=True))
@click.option("--zenodo", is_flag=True, required=True, help="Deposit on Zenodo (ZENODO_TOKEN).")
@click.option("--sandbox", is_flag=True, help="Use sandbox.zenodo.org (a test instance; its DOIs are not real).")
@click.option(
    "--publish",
    "do_publish",
    is_flag=True,
    help="Publish the deposition (irreversible); default: leave a draft to review.",
)
@click.pass_context
def publish_command(ctx, package, zenodo, sandbox, do_publish):
    """Deposit an exported package on Zenodo: checks it, creates a draft, sets its metadata, uploads the archive."""
    import tempfile

    from tracking_analysis.datapackage import validate_package
    from tracking_analysis.export import write_zip
    from tracking_analysis.zenodo import SANDBOX_API, ZENODO_API, ZenodoClient, deposit

    settings = settings_from(ctx)
    root = Path(package)
    problems = validate_package(root)
    if problems:
        raise ValueError(f"{root} fails its own checks, not depositing: " + "; ".join(problems[:5]))
    metadata = json.loads((root / ".zenodo.json").read_text(encoding="utf-8"))
    if not metadata.get("creators"):
        raise ValueError("the package names no creators: export again with --creator 'Family, Given|ORCID|Affiliation'")
    if settings.zenodo_token is None:
        raise ValueError("set ZENODO_TOKEN (a Zenodo personal access token with deposit:write) to deposit")
    api = settings.zenodo_url or (SANDBOX_API if sandbox else ZENODO_API)
    descriptor = json.loads((root / "datapackage.json").read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory(prefix="scraiber-publish-") as tmp:
        archive = write_zip(root, Path(tmp) / f"{descriptor['name']}-{descriptor['version']}.zip")
        with ZenodoClient(api, settings.zenodo_token.get_secret_value()) as client:
            deposition = deposit(client, [archive, root / "README.md"], metadata, publish=do_publish)
    state = "published" if deposition.submitted else "draft (review it, then publish there or with --publish)"
    click.echo(f"Zenodo deposition {deposition.id}: {state}; DOI {deposition.doi or '-'}; {deposition.html_url}")
