"""The ``scraiber`` command line.

Commands live in :mod:`scraiber.commands` (benchmarks in ``benchmarks``) and are found
through entry point groups in ``pyproject.toml`` (``scraiber.commands`` for top-level
commands and ``scraiber.bench`` for benchmarks). They are imported only when invoked, so
``scraiber --help`` stays fast.
"""

from __future__ import annotations

import signal
import sys
from importlib.metadata import entry_points

import click

from ml_backend.label_studio import LabelStudioError
from scraiber.logs import configure_logging
from scraiber.processes import ProcessError

#: Errors a user can act on: printed as one line, exit code 1.
USER_ERRORS = (ValueError, KeyError, OSError, ProcessError, LabelStudioError)


class EntryPointGroup(click.Group):
    """A click group whose subcommands are entry points, loaded lazily.

    Errors a user can fix (:data:`USER_ERRORS`) end in one line on stderr and exit
    code 1; ``--debug`` shows the traceback instead.
    """

    def __init__(self, *args, entry_point_group: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.entry_point_group = entry_point_group

    def _entry_points(self) -> dict:
        return {ep.name: ep for ep in entry_points(group=self.entry_point_group)}

    def list_commands(self, ctx: click.Context) -> list[str]:  # noqa: D102 - click API
        return sorted(set(super().list_commands(ctx)) | set(self._entry_points()))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:  # noqa: D102
        command = super().get_command(ctx, name)
        if command is None and name in (found := self._entry_points()):
            command = found[name].load()
        return command

    def invoke(self, ctx: click.Context):  # noqa: D102 - click API
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except USER_ERRORS as exc:
            if ctx.find_root().params.get("debug"):
                raise
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            click.echo(f"scraiber: error: {message}", err=True)
            sys.exit(1)


def exit_on_sigterm() -> None:
    """SIGTERM (``kill``, a CI timeout) unwinds the command like Ctrl-C does, so the servers it started
    (Label Studio, MLflow, the backend: :class:`~scraiber.processes.ManagedProcess`) are stopped on the
    way out instead of being left running. Commands that handle signals themselves (``up``, the
    backend) install their own handlers over this one."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


@click.group(cls=EntryPointGroup, entry_point_group="scraiber.commands")
@click.option("--verbose", "-v", is_flag=True, help="Log progress details.")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.pass_context
def main(ctx: click.Context, verbose: bool, debug: bool) -> None:
    """scrAiber: pre-annotations and active learning for BSE images of thin sections."""
    configure_logging(verbose)
    ctx.ensure_object(dict)
    exit_on_sigterm()


@main.group(cls=EntryPointGroup, entry_point_group="scraiber.bench")
def bench() -> None:
    """Benchmarks that print speed and memory figures."""
