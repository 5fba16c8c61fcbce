"""Are implicit labels worth explicit ones? Retrain on each at the same labelling budget.

The budget is counted twice over: the same tiles (``n_labelled_tiles``, taken in the order
they were labelled) and the same time per tile. Implicit tiles are an annotator's harvested
corrections, weighted by their confidence; each explicit tile is what the simulated expert
(:func:`benchmarks.simulated_expert.correct` in ``explicit`` mode) paints from scratch
on the same image, towards the ground truth, in the seconds the correction took (weight 1 on
painted pixels). :func:`learning_curve` trains a model per (kind, budget) with
:func:`active_learning.training.run_training` on those labels only (``harvest_ratio=1``) and
returns a table in the format of :mod:`tracking_analysis.learning_curve`, so the report can
plot it beside the curves of ``scraiber bench active-learning``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from active_learning.harvest_log import LABEL
from active_learning.training import HarvestedSample, TrainConfig, TrainingResult, run_training
from benchmarks.simulated_expert import ExpertConfig, correct
from label_config.catalogue import IGNORE_INDEX
from tracking_analysis.records import Harvested


@dataclass(frozen=True)
class LabelledTile:
    """One labelled image: ``kind`` is ``implicit`` or ``explicit``; ``seconds`` the labelling time."""

    task_id: int
    image: np.ndarray
    label: np.ndarray
    weight: np.ndarray
    seconds: float
    kind: str


def implicit_tiles(
    harvested: Sequence[Harvested], images: Mapping[int, np.ndarray], annotator: str
) -> list[LabelledTile]:
    """The annotator's implicit labels (kind "label" with a lead time), in submission order, one per task.

    Raises:
        ValueError: if an image is missing or does not fit its label.
    """
    tiles, seen = [], set()
    ordered = sorted(
        (h for h in harvested if h.record.kind == LABEL and h.record.annotator == annotator),
        key=lambda h: (h.record.updated_at, h.record.annotation_id),
    )
    for item in ordered:
        task = item.record.task_id
        if task in seen or item.record.lead_time is None:
            continue
        assert item.label is not None and item.confidence is not None  # a "label" record carries both
        image = images.get(task)
        if image is None or image.shape != item.label.shape:
            raise ValueError(f"task {task}: no image of shape {item.label.shape} given")
        seen.add(task)
        tiles.append(
            LabelledTile(
                task, image, item.label, item.confidence.astype(np.float32), float(item.record.lead_time), "implicit"
            )
        )
    return tiles


def explicit_tiles(
    implicit: Sequence[LabelledTile],
    truths: Mapping[int, np.ndarray],
    expert: ExpertConfig = ExpertConfig(mode="explicit", time_noise=0.0),
) -> list[LabelledTile]:
    """Explicit labels of the same tiles, painted from scratch in the same seconds each (see module doc)."""
    rng = np.random.default_rng(expert.seed)
    tiles = []
    for tile in implicit:
        done = correct(
            np.full(tile.label.shape, IGNORE_INDEX, np.uint8),
            truths[tile.task_id],
            replace(expert, mode="explicit", budget_seconds=tile.seconds),
            rng,
        )
        weight = (done.classes != IGNORE_INDEX).astype(np.float32)
        tiles.append(LabelledTile(tile.task_id, tile.image, done.classes, weight, done.seconds, "explicit"))
    return tiles


def learning_curve(
    tiles: Mapping[str, Sequence[LabelledTile]],
    budgets: Sequence[int],
    config: TrainConfig,
    strategy: str = "labelling order",
    train: Callable[..., TrainingResult] = run_training,
) -> pd.DataFrame:
    """mIoU of a model retrained on the first n tiles of each kind, for each budget n.

    Args:
        tiles: Kind (``implicit``/``explicit``) -> tiles in labelling order.
        budgets: Numbers of tiles (each at most the tiles available).
        config: Training config (``harvest_ratio`` is set to 1: only these labels).
        strategy: Value of the ``strategy`` column.
        train: The training entry point (``run_training``; injectable for tests).

    Raises:
        ValueError: for a budget larger than the tiles of a kind.
    """
    rows = []
    for kind, available in tiles.items():
        for n in budgets:
            if not 1 <= n <= len(available):
                raise ValueError(f"budget {n} tiles: {kind} has {len(available)}")
            samples = [HarvestedSample(t.image, t.label, t.weight) for t in available[:n]]
            with tempfile.TemporaryDirectory(prefix="scraiber-label-value-") as folder:
                run = replace(config, harvest_ratio=1.0, checkpoint_dir=str(Path(folder) / "checkpoints"))
                result = train(run, None, out=Path(folder) / "model", register=False, harvested=samples, progress=False)
            rows.append(
                {
                    "n_labelled_tiles": n,
                    "mIoU": float(result.val_miou),
                    "strategy": strategy,
                    "label_kind": kind,
                    "seconds": float(sum(t.seconds for t in available[:n])),
                }
            )
    return pd.DataFrame(rows, columns=["n_labelled_tiles", "mIoU", "strategy", "label_kind", "seconds"])
