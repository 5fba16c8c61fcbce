"""``scraiber train``: train the FCN locally (or on Modal) and register it in MLflow.

On a bare GPU machine, ``python -m scraiber.commands.training --no-register`` runs the same
command with only the training stack installed (no Label Studio, MLflow or pydantic): the
settings are read only to register or to train on Modal.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import click

from active_learning.training.config import TrainConfig

if TYPE_CHECKING:
    from scraiber.settings import Settings


def _settings(ctx: click.Context, needed: bool) -> Settings | None:
    """The invocation's settings; None on a bare machine without pydantic-settings where none are needed."""
    try:
        from scraiber.settings import settings_from
    except ImportError as exc:
        if needed:
            raise click.ClickException(
                f"registering or --on modal needs the full installation ({exc}); or use --no-register"
            ) from None
        return None
    return settings_from(ctx)


@click.command("train")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Training config (.toml or .json; fields of TrainConfig, [synth] table for the synthetic ranges).",
)
@click.option("--steps", type=int, help="Optimiser steps (overrides the config).")
@click.option("--arch", help="FCN architecture (see `scraiber bench fcn --help` for the list).")
@click.option("--seed", type=int, help="Seed of batches and initialisation.")
@click.option("--device", help="auto (CUDA when present), cpu or cuda.")
@click.option("--threads", type=int, help="CPU threads, 0 = all cores.")
@click.option("--workers", type=int, help="Data-loading processes (0 = none).")
@click.option("--checkpoint-dir", type=click.Path(file_okay=False, path_type=Path), help="Checkpoint folder.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Write the best model here as minerals-<arch>.safetensors + .json.",
)
@click.option(
    "--register/--no-register",
    default=True,
    show_default=True,
    help="Log to MLflow, register as SCRAIBER_MODEL_NAME and promote if not worse.",
)
@click.option(
    "--hold-out",
    "hold_out",
    multiple=True,
    help="Generator family left out of training and validation (repeatable): leave-one-family-out.",
)
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint.")
@click.option("--on", "where", type=click.Choice(["local", "modal"]), default="local", show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def train_command(ctx: click.Context, config_file: Path | None, steps: int | None, arch: str | None, seed: int | None,
                  device: str | None, threads: int | None, workers: int | None, checkpoint_dir: Path | None,
                  out: Path | None, register: bool, hold_out: tuple[str, ...], resume: bool, where: str,
                  quiet: bool) -> None:  # fmt: skip
    """Train the mineral FCN on synthetic thin sections, validate it, and register it."""
    from active_learning.training.loop import run_training

    config = TrainConfig.from_file(config_file) if config_file else TrainConfig()
    changes = {"steps": steps, "arch": arch, "seed": seed, "device": device, "threads": threads, "workers": workers,
               "checkpoint_dir": str(checkpoint_dir) if checkpoint_dir else None}  # fmt: skip
    changes = {key: value for key, value in changes.items() if value is not None}
    if resume:
        changes["resume"] = True
    config = config.replace(**changes)
    if hold_out:
        config = config.without_families(hold_out)
    settings = _settings(ctx, needed=register or where == "modal")
    if where == "modal":
        from scraiber.modal_app import run_training_on_modal  # declares the Modal app: only when asked for

        assert settings is not None  # needed, so read
        result = run_training_on_modal(config, settings)
    else:
        result = run_training(config, settings, out=out, register=register, progress=not quiet)
    click.echo(f"model: {result.model_path}")
    early = ", stopped early" if result.stopped_early else ""
    click.echo(f"steps: {result.steps_done} (best at {result.best_step}{early}), {result.seconds:.0f} s")
    iou = ", ".join(f"{name} {value:.3f}" for name, value in result.val_iou.items() if not math.isnan(value))
    click.echo(f"validation mIoU {result.val_miou:.4f} ({iou}); set {result.val_fingerprint[:12]}")
    if result.model_version is not None:
        click.echo(f"MLflow run {result.run_id}, model version {result.model_version}: {result.promotion_reason}")


if __name__ == "__main__":
    train_command(prog_name="python -m scraiber.commands.training")
