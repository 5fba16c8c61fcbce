"""Agreement between annotators on tasks more than one of them labelled (brush IoU per class).

Label Studio Community computes no agreement for brush masks, so this does: for every task
with final class maps from two or more annotators, for every unordered pair of annotators
(in sorted order) and every class, the IoU of their masks of that class. A pixel only one of
them painted counts against the class of the one who painted it (unpainted = no class).
Pooled per class over tasks and pairs: sum of intersections / sum of unions. A class neither
annotator painted on a task is left out (no evidence), not counted as perfect agreement.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations

import numpy as np
import pandas as pd

from ml_backend.metrics import confusion_matrix


def pair_agreement(a: np.ndarray, b: np.ndarray, names: Sequence[str]) -> list[dict]:
    """Per class ``{"class", "intersection", "union", "iou"}`` of two class maps (classes with a union only).

    Raises:
        ValueError: if the maps differ in shape.
    """
    if a.shape != b.shape:
        raise ValueError(f"class maps of shape {a.shape} and {b.shape} cannot be compared")
    n = len(names)
    unpainted = n  # a class of its own, so a pixel one of them left unpainted counts against the other's class
    confusion = confusion_matrix(np.where(a < n, a, unpainted), np.where(b < n, b, unpainted), n + 1)
    intersection = np.diag(confusion)
    union = confusion.sum(axis=0) + confusion.sum(axis=1) - intersection
    return [{"class": name, "intersection": int(intersection[k]), "union": int(union[k]),
             "iou": int(intersection[k]) / int(union[k])} for k, name in enumerate(names) if union[k]]  # fmt: skip


def agreement(maps: Mapping[int, Mapping[str, np.ndarray]], names: Sequence[str]) -> pd.DataFrame:
    """Per (task, annotator pair, class) agreement of the final class maps.

    Args:
        maps: Task id -> annotator pseudonym -> final uint8 class map (255 = unpainted).
        names: Class names in index order.

    Returns:
        Columns ``task_id``, ``annotator_a``, ``annotator_b``, ``class``, ``intersection``,
        ``union``, ``iou``; tasks seen by one annotator contribute nothing.
    """
    rows = []
    for task_id in sorted(maps):
        by_annotator = maps[task_id]
        for first, second in combinations(sorted(by_annotator), 2):
            for row in pair_agreement(by_annotator[first], by_annotator[second], names):
                rows.append({"task_id": task_id, "annotator_a": first, "annotator_b": second, **row})
    return pd.DataFrame(
        rows, columns=["task_id", "annotator_a", "annotator_b", "class", "intersection", "union", "iou"]
    )


def agreement_by_class(pairs: pd.DataFrame) -> pd.DataFrame:
    """Pooled IoU per class (sum of intersections / sum of unions) of :func:`agreement`'s table.

    Columns ``class``, ``intersection``, ``union``, ``iou``, ``pairs`` (task-pair cells pooled),
    in the order the classes first appear.
    """
    sums = pairs.groupby("class", sort=False).agg(
        intersection=("intersection", "sum"), union=("union", "sum"), pairs=("iou", "size")
    )
    sums["iou"] = sums["intersection"] / sums["union"]
    return sums.reset_index()[["class", "intersection", "union", "iou", "pairs"]]


def mean_agreement(pairs: pd.DataFrame) -> float:
    """Mean over classes of the pooled per-class IoU (NaN without any pair)."""
    return float(agreement_by_class(pairs)["iou"].mean()) if len(pairs) else float("nan")


def latest_maps(items: Sequence[tuple[int, str, int, np.ndarray]]) -> dict[int, dict[str, np.ndarray]]:
    """Task -> annotator -> class map from ``(task_id, annotator, annotation_id, map)`` items;
    an annotator with several annotations on a task counts with the latest (highest id)."""
    chosen: dict[int, dict[str, tuple[int, np.ndarray]]] = {}
    for task_id, annotator, annotation_id, classes in items:
        current = chosen.setdefault(task_id, {}).get(annotator)
        if current is None or annotation_id > current[0]:
            chosen[task_id][annotator] = (annotation_id, classes)
    return {task: {who: m for who, (_, m) in by.items()} for task, by in chosen.items()}
