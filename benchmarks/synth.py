"""``scraiber bench synth``: time and size the synthetic section generator."""

from __future__ import annotations

import resource
import time

import click
import numpy as np

from ml_backend.synthetic.section import generate_section


@click.command("synth")
@click.option(
    "--size",
    "sizes",
    type=int,
    multiple=True,
    default=(512, 1024, 2048),
    show_default=True,
    help="Side lengths (repeat).",
)
@click.option("--repeat", type=int, default=3, show_default=True, help="Sections per size (seeds 0..repeat-1).")
def synth_bench(sizes: tuple[int, ...], repeat: int) -> None:
    """Seconds per synthetic section (median and max over seeds) and peak resident memory."""
    if repeat < 1:
        raise ValueError(f"--repeat must be at least 1, got {repeat}")
    generate_section(64, 0)  # warm-up: catalogue, eta tables
    for size in sizes:
        seconds, crystals = [], []
        for seed in range(repeat):
            start = time.perf_counter()
            section = generate_section(size, seed)
            seconds.append(time.perf_counter() - start)
            crystals.append(len(section.crystals))
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        click.echo(
            f"synth {size} x {size} px: median {np.median(seconds):.3f} s, max {max(seconds):.3f} s over {repeat} seeds; "
            f"{np.mean(crystals):.0f} crystals; peak RSS so far {peak_mib:.0f} MiB"
        )
