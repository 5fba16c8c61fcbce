"""Unsupervised segmenter vs a plain grey-level Gaussian mixture on every generator family.

    .venv/bin/python -m benchmarks.unsupervised_families [--fields 8] [--size 512] [--before REV] [--tuning]

For each family of :mod:`ml_backend.synthetic.families` that imports, ``--fields`` fields of
``--size`` px are drawn from the test seeds (``TEST_SEED_START`` upwards, never tuned on) and
segmented by :func:`benchmarks.baselines.grey_gmm_segment`, by the unsupervised segmenter of
this tree and, with ``--before REV``, by ``ml_backend/segmenters/unsupervised.py`` as it was
at git revision ``REV``. Printed per family and method: Hungarian mIoU (labels renamed by
the one-to-one matching that maximises IoU) and named mIoU (catalogue names as predicted),
each the mean over fields of the per-field mIoU from :mod:`ml_backend.metrics`, and the
seconds per field (fit + predict); then the named per-class IoU of this tree's segmenter.
``--tuning`` draws the fields from seeds 0 upwards instead: tune there, report the test seeds.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.baselines import grey_gmm_segment
from label_config.catalogue import Catalogue, load_catalogue
from ml_backend.metrics import class_iou, confusion_matrix, matched_confusion, mean_iou
from ml_backend.segmenters import create_segmenter
from ml_backend.synthetic.families import TEST_SEED_START, family_names, generate_field

SegmentFn = Callable[[np.ndarray], np.ndarray]
_MODULE = "ml_backend/segmenters/unsupervised.py"


@dataclass(frozen=True)
class Score:
    """Scores of one method on one family, means over fields."""

    hungarian: float
    named: float
    seconds: float
    per_class: dict[str, float]


def importable_families() -> list[str]:
    """Registered families whose generator imports (one being written fails to)."""
    names = []
    for name in family_names():
        try:
            generate_field(name, 32, TEST_SEED_START)
        except ImportError as exc:
            print(f"family {name!r} skipped: {exc}", file=sys.stderr)
        else:
            names.append(name)
    return names


def field_scores(truth: np.ndarray, labels: np.ndarray, catalogue: Catalogue) -> tuple[float, float, dict[str, float]]:
    """(Hungarian mIoU, named mIoU, named IoU per class) of one field."""
    confusion = confusion_matrix(truth, labels, len(catalogue))
    named = class_iou(confusion, catalogue.names)
    return mean_iou(class_iou(matched_confusion(confusion), catalogue.names)), mean_iou(named), named


def score(
    methods: dict[str, SegmentFn], family: str, seeds: Sequence[int], size: int, catalogue: Catalogue
) -> dict[str, Score]:
    """Mean scores of each method over the fields ``seeds`` of ``family`` (each field drawn once)."""
    runs: dict[str, list[tuple[float, float, float, list[float]]]] = {name: [] for name in methods}
    for seed in seeds:
        section = generate_field(family, size, seed, catalogue)
        for name, segment in methods.items():
            start = time.perf_counter()
            labels = segment(section.image)
            seconds = time.perf_counter() - start
            hungarian, named, iou = field_scores(section.classes, labels, catalogue)
            runs[name].append((hungarian, named, seconds, list(iou.values())))
    scores = {}
    for name, rows in runs.items():
        with np.errstate(all="ignore"):
            per_class = np.nanmean(np.array([row[3] for row in rows], dtype=float), axis=0)
        means = np.mean([row[:3] for row in rows], axis=0)
        scores[name] = Score(float(means[0]), float(means[1]), float(means[2]), dict(zip(catalogue.names, per_class)))
    return scores


def segmenter_at(revision: str, catalogue: Catalogue) -> SegmentFn:
    """``segment`` of the unsupervised segmenter as it was at git ``revision``."""
    source = subprocess.run(["git", "show", f"{revision}:{_MODULE}"], capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp(prefix="scraiber-before-")) / "unsupervised_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("unsupervised_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module.UnsupervisedSegmenter(catalogue).segment


def _cell(value: float) -> str:
    return "  -  " if math.isnan(value) else f"{value:.3f}"


def main(argv: Sequence[str] | None = None) -> None:
    """Print the comparison table (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fields", type=int, default=8, help="test fields per family")
    parser.add_argument("--size", type=int, default=512, help="field side in px")
    parser.add_argument("--before", metavar="REV", help="also run the unsupervised segmenter of this git revision")
    parser.add_argument("--tuning", action="store_true", help="tuning seeds (from 0) instead of the test seeds")
    args = parser.parse_args(argv)
    catalogue = load_catalogue()
    methods: dict[str, SegmentFn] = {"grey GMM": lambda image: grey_gmm_segment(image, len(catalogue))}
    if args.before:
        methods[f"unsupervised {args.before}"] = segmenter_at(args.before, catalogue)
    methods["unsupervised"] = create_segmenter("unsupervised", catalogue).segment
    first = 0 if args.tuning else TEST_SEED_START
    seeds = range(first, first + args.fields)
    kind = "tuning" if args.tuning else "test"
    print(f"{args.fields} {kind} fields of {args.size} px per family (seeds from {first}); means over fields")
    print(f"{'family':<14} {'method':<24} {'Hungarian mIoU':>14} {'named mIoU':>10} {'s/field':>8}")
    after: dict[str, Score] = {}
    totals: dict[str, list[Score]] = {name: [] for name in methods}
    for family in importable_families():
        for name, result in score(methods, family, seeds, args.size, catalogue).items():
            totals[name].append(result)
            print(
                f"{family:<14} {name:<24} {result.hungarian:>14.3f} {result.named:>10.3f} {result.seconds:>8.2f}",
                flush=True,
            )
        after[family] = totals["unsupervised"][-1]
    for name, results in totals.items():
        hungarian, named = np.mean([r.hungarian for r in results]), np.mean([r.named for r in results])
        print(f"{'mean':<14} {name:<24} {hungarian:>14.3f} {named:>10.3f}")
    print("\nunsupervised, named IoU per class (mean over fields; - = class in no field):")
    print(f"{'family':<14} " + " ".join(f"{name[:13]:>13}" for name in catalogue.names))
    for family, result in after.items():
        print(f"{family:<14} " + " ".join(f"{_cell(result.per_class[name]):>13}" for name in catalogue.names))


if __name__ == "__main__":
    main()
