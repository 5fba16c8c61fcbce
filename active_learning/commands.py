"""Commands of the active-learning room: ``scraiber backend`` and ``scraiber up``."""

from __future__ import annotations

import click

from ml_backend.cli import settings_from


@click.command("backend")
@click.option("--host", help="Address to bind (default: SCRAIBER_HOST or 127.0.0.1).")
@click.option("--port", type=int, help="Port (default: SCRAIBER_PORT or 9090).")
@click.pass_context
def backend_command(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Serve the Label Studio ML backend (gunicorn) until stopped."""
    from active_learning.serve import serve

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
    from active_learning.stack import run_stack
    from label_config import load_catalogue

    settings = settings_from(ctx)
    run_stack(settings, load_catalogue(settings.catalogue), port, backend_port, fields, click.echo)
