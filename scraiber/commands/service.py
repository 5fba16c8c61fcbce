"""``scraiber backend``, ``scraiber up`` and ``scraiber retrain``: the backend, the local demo stack, one cycle now."""

from __future__ import annotations

import time
from pathlib import Path

import click

from scraiber.settings import settings_from


@click.command("backend")
@click.option("--host", help="Address to bind (default: SCRAIBER_HOST or 127.0.0.1).")
@click.option("--port", type=int, help="Port (default: SCRAIBER_PORT or 9090).")
@click.pass_context
def backend_command(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Serve the Label Studio ML backend (gunicorn) until stopped."""
    from scraiber.serve import serve

    settings = settings_from(ctx)
    updates = {key: value for key, value in (("host", host), ("port", port)) if value is not None}
    serve(settings.model_copy(update=updates))


@click.command("up")
@click.option("--port", default=8080, show_default=True, help="Label Studio port.")
@click.option("--backend-port", default=9090, show_default=True, help="Backend port.")
@click.option("--fields", default=4, show_default=True, help="Synthetic demo fields to create.")
@click.pass_context
def up_command(ctx: click.Context, port: int, backend_port: int, fields: int) -> None:
    """Start Label Studio and the backend locally with pre-annotated demo thin sections."""
    from label_config import load_catalogue
    from scraiber.stack import run_stack

    settings = settings_from(ctx)
    run_stack(settings, load_catalogue(settings.catalogue), port, backend_port, fields, click.echo)


@click.command("retrain")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Training config TOML for the fine-tuning (default: SCRAIBER_RETRAIN_CONFIG or built-in).")  # fmt: skip
@click.pass_context
def retrain_command(ctx: click.Context, config_path: Path | None) -> None:
    """Run one retraining cycle now: fine-tune on implicit labels, promote if not worse, re-predict open tasks."""
    from scraiber.wiring import build_cycle, build_worker

    settings = settings_from(ctx)
    if config_path is not None:
        settings = settings.model_copy(update={"retrain_config": config_path})
    result = build_cycle(settings, build_worker(settings), progress_printer(click.echo)).run(
        "manual (scraiber retrain)"
    )
    click.echo(
        f"training run {result.run_id}: {result.status}; trained on {result.trained_on} implicit labels, "
        f"validated on {result.held_out} held-out expert labels"
    )
    if result.model_version is not None:
        click.echo(f"candidate v{result.model_version}: val mIoU {result.val_miou:.4f} "
                   f"(champion {result.champion_miou:.4f}); {result.reason}")  # fmt: skip
    if result.predictions:
        click.echo(f"posted {result.predictions} predictions of the new model to open tasks")
    if result.status in ("failed", "busy"):
        raise click.ClickException(result.reason)


def progress_printer(echo, every: float = 30.0, clock=time.monotonic):
    """A retraining cycle's observer that prints each phase, each validation, and the step every ``every`` s."""
    state = {"phase": None, "printed_at": -float("inf"), "val": None}

    def show(record: dict) -> None:
        if record.get("phase") != state["phase"]:
            state["phase"] = record.get("phase")
            echo(f"[retrain] {state['phase']}")
        if "loss" not in record:
            return
        validated = record.get("val_score") != state["val"]
        if not (validated or record["step"] == record["steps"] or clock() - state["printed_at"] >= every):
            return
        state["printed_at"], state["val"] = clock(), record.get("val_score")
        line = f"[retrain] step {record['step']}/{record['steps']}, loss {record['loss']:.3f}"
        if record.get("val_score") is not None:
            line += f", validation score {record['val_score']:.4f}"
        if record.get("eta_s") is not None:
            line += f", about {record['eta_s'] / 60:.1f} min of steps left"
        echo(line)

    return show
