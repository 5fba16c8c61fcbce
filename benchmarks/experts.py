"""Simulated experts that are not the learner's mirror: how people really correct a mineral mask.

The first simulated expert (``benchmarks/simulated_expert.py``, which ``scraiber simulate`` plays)
leaves its errors exactly where the hand-set confidence model expects none: within 2 px of true
boundaries and in regions under 16 px. These experts err the way petrologists do, with
parameters the learner and the calibration never see:

* **boundary jitter**: the boundaries they paint are displaced by a smooth random field of
  ``jitter_px`` RMS (correlation length ``jitter_scale_px``), as a brush follows an edge;
* **small grains missed**: an error region is noticed with probability logistic in
  ``ln(area)``, 50 % at ``detect_area_px``;
* **contrast-dependent naming errors**: a grain of olivine, clinopyroxene or groundmass is named
  as one of the other two with a probability between ``confusion_low`` (high contrast) and
  ``confusion_high`` (no contrast), decaying with the pair's grey-level contrast in the sample
  (difference of medians over their pooled robust spread);
* **accepting confident errors**: an error region where the model was confident (mean top
  probability >= ``confident``) is left as predicted with probability ``accept_confident``
  (automation bias);
* **a time budget that runs out**: regions are corrected largest first (with some noise in the
  order); each costs ``seconds_per_region`` plus ``seconds_per_kpx`` per 1000 px painted, on top
  of ``overhead_seconds`` and ``review_seconds_per_kpx`` to look at the task; the expert stops
  when the next region does not fit in ``budget_seconds``.

Labelling from scratch (explicit labels) uses the same perception (jitter, naming errors); a
grain too small to notice is painted as its surroundings, and the expert finishes the task
(no budget; its time is recorded).

    perceived = perceive(truth, contrast, EXPERTS["B"], rng)
    result = correct(prediction, top_probability, perceived, EXPERTS["B"], rng)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from label_config.catalogue import IGNORE_INDEX

#: Catalogue names of the phases experts confuse with each other in BSE (near-equal grey levels).
CONFUSABLE = ("Groundmass", "Clinopyroxene", "Olivine")


@dataclass(frozen=True)
class ExpertModel:
    """One simulated expert (all durations in seconds; areas in px).

    Attributes:
        name: Short name (A, B, C).
        jitter_px: RMS displacement of painted boundaries.
        jitter_scale_px: Correlation length of the displacement field.
        detect_area_px: Error-region area noticed half the time.
        detect_slope: Slope of the logistic in ``ln(area)``.
        confusion_low, confusion_high: Naming-error probability of a confusable grain at high and no contrast.
        contrast_scale: Contrast over which the naming error decays from high to low by a factor e.
        accept_confident: Chance of leaving an error region the model was confident about.
        confident: Mean top probability above which the model counts as confident.
        budget_seconds: Time given to one correction task.
        overhead_seconds, review_seconds_per_kpx, seconds_per_region, seconds_per_kpx: Time model.
        time_noise: SD of the log of a multiplicative factor on each duration.
    """

    name: str
    jitter_px: float
    detect_area_px: float
    confusion_low: float
    confusion_high: float
    accept_confident: float
    budget_seconds: float
    jitter_scale_px: float = 6.0
    detect_slope: float = 2.0
    contrast_scale: float = 1.5
    confident: float = 0.9
    overhead_seconds: float = 8.0
    review_seconds_per_kpx: float = 0.4
    seconds_per_region: float = 3.0
    seconds_per_kpx: float = 1.0
    time_noise: float = 0.2

    def __post_init__(self) -> None:
        if min(self.jitter_px, self.detect_area_px, self.budget_seconds, self.contrast_scale) < 0:
            raise ValueError("jitter, detection area, budget and contrast scale must be >= 0")
        for name in ("confusion_low", "confusion_high", "accept_confident", "confident"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")


#: The experts of the benchmark: calibrate on A, report on B and C (parameters never shown to the learner).
EXPERTS = {
    "A": ExpertModel("A", jitter_px=1.5, detect_area_px=30.0, confusion_low=0.05, confusion_high=0.10,
                     accept_confident=0.3, budget_seconds=90.0),
    "B": ExpertModel("B", jitter_px=2.5, detect_area_px=60.0, confusion_low=0.08, confusion_high=0.15,
                     accept_confident=0.5, budget_seconds=60.0, seconds_per_region=4.0),
    "C": ExpertModel("C", jitter_px=1.0, detect_area_px=20.0, confusion_low=0.05, confusion_high=0.12,
                     accept_confident=0.15, budget_seconds=150.0, review_seconds_per_kpx=0.6),
}  # fmt: skip


@dataclass(frozen=True)
class ExpertResult:
    """What an expert submitted for one task.

    Attributes:
        final: uint8 class map submitted (``IGNORE_INDEX`` where nothing is painted).
        seconds: Modelled time spent.
        regions: Regions corrected (or painted, from scratch).
        left: Error regions left: not noticed, accepted as confident, or out of time.
        out_of_time: Regions left because the budget ran out.
    """

    final: np.ndarray
    seconds: float
    regions: int
    left: int
    out_of_time: int


def contrast_matrix(image: np.ndarray, truth: np.ndarray, n_classes: int) -> np.ndarray:
    """(K, K) grey-level contrast between classes in one sample: |median_a - median_b| / pooled robust SD.

    Classes absent from the sample get infinite contrast (they are never confused).
    """
    grey = image.astype(np.float64)
    medians, spreads = np.full(n_classes, np.nan), np.full(n_classes, np.nan)
    for k in range(n_classes):
        values = grey[truth == k]
        if values.size >= 16:
            q25, q50, q75 = np.percentile(values, (25, 50, 75))
            medians[k], spreads[k] = q50, max((q75 - q25) / 1.349, 1e-6)
    out = np.full((n_classes, n_classes), np.inf)
    for a in range(n_classes):
        for b in range(n_classes):
            if a != b and np.isfinite(medians[a]) and np.isfinite(medians[b]):
                out[a, b] = abs(medians[a] - medians[b]) / np.sqrt((spreads[a] ** 2 + spreads[b] ** 2) / 2)
    return out


def confusable_indices(names: list[str]) -> list[int]:
    """Catalogue indices of :data:`CONFUSABLE` present in ``names``."""
    return [names.index(name) for name in CONFUSABLE if name in names]


def _jitter(truth: np.ndarray, expert: ExpertModel, rng: np.random.Generator) -> np.ndarray:
    if expert.jitter_px <= 0:
        return truth.copy()
    h, w = truth.shape
    fields = []
    for _ in range(2):
        noise = ndimage.gaussian_filter(rng.standard_normal((h, w)), expert.jitter_scale_px, mode="wrap")
        fields.append(noise / max(float(noise.std()), 1e-9) * expert.jitter_px / np.sqrt(2))
    rows, cols = np.mgrid[0:h, 0:w].astype(np.float64)
    rows = np.clip(np.rint(rows + fields[0]), 0, h - 1).astype(np.int64)
    cols = np.clip(np.rint(cols + fields[1]), 0, w - 1).astype(np.int64)
    return truth[rows, cols]


def perceive(
    truth: np.ndarray, contrast: np.ndarray, expert: ExpertModel, rng: np.random.Generator, confusable: list[int]
) -> np.ndarray:
    """The class map the expert believes in: jittered boundaries, then grains of confusable phases renamed.

    Args:
        truth: (H, W) uint8 true classes.
        contrast: (K, K) contrast of the sample (:func:`contrast_matrix`).
        expert: The expert.
        rng: Seeded generator (per expert, task and seed).
        confusable: Catalogue indices of the confusable phases.
    """
    seen = _jitter(truth, expert, rng)
    out = seen.copy()
    for a in confusable:
        others = [b for b in confusable if b != a]
        grains, n = ndimage.label(seen == a)
        if n == 0:
            continue
        probability = [expert.confusion_low + (expert.confusion_high - expert.confusion_low)
                       * np.exp(-min(contrast[a, b], 50.0) / expert.contrast_scale) for b in others]  # fmt: skip
        for grain in range(1, n + 1):
            draw = rng.random()
            for b, p in zip(others, probability):
                if draw < p / len(others):
                    out[grains == grain] = b
                    break
                draw -= p / len(others)
    return out


def _noticed(area: np.ndarray, expert: ExpertModel) -> np.ndarray:
    """Probability of noticing an error region of each ``area``."""
    z = expert.detect_slope * (np.log(np.maximum(area, 1)) - np.log(max(expert.detect_area_px, 1e-9)))
    return 1.0 / (1.0 + np.exp(-z))


def _factor(expert: ExpertModel, rng: np.random.Generator) -> float:
    return float(np.exp(rng.normal(0.0, expert.time_noise))) if expert.time_noise > 0 else 1.0


def correct(
    start: np.ndarray,
    top_probability: np.ndarray,
    perceived: np.ndarray,
    expert: ExpertModel,
    rng: np.random.Generator,
) -> ExpertResult:
    """Correct the prediction ``start`` towards what the expert perceives, within the time budget.

    Args:
        start: (H, W) uint8 predicted classes the expert starts from.
        top_probability: (H, W) the model's top class probability (what "confident" means).
        perceived: (H, W) the expert's belief (:func:`perceive`).
        expert: The expert.
        rng: Seeded generator.

    Raises:
        ValueError: if the maps differ in shape.
    """
    if not start.shape == top_probability.shape == perceived.shape:
        raise ValueError(
            f"prediction {start.shape}, probability {top_probability.shape} and belief {perceived.shape} differ"
        )
    final = start.copy()
    seconds = (expert.overhead_seconds + expert.review_seconds_per_kpx * start.size / 1000) * _factor(expert, rng)
    regions = []  # (priority, class, mask)
    found = 0
    wrong = start != perceived
    for k in np.unique(perceived[wrong]):
        labelled, n = ndimage.label(wrong & (perceived == k))
        found += n
        if n == 0:
            continue
        areas = np.bincount(labelled.ravel())[1:]
        confidence = np.asarray(ndimage.mean(top_probability, labelled, np.arange(1, n + 1)))
        seen = rng.random(n) < _noticed(areas, expert)
        accepted = (confidence >= expert.confident) & (rng.random(n) < expert.accept_confident)
        for i in np.flatnonzero(seen & ~accepted):
            regions.append((float(areas[i]) * float(np.exp(rng.normal(0.0, 0.5))), int(k), labelled == i + 1))
    regions.sort(key=lambda item: -item[0])  # largest first, roughly
    done = 0
    for position, (_, k, mask) in enumerate(regions):
        cost = (expert.seconds_per_region + expert.seconds_per_kpx * float(mask.sum()) / 1000) * _factor(expert, rng)
        if seconds + cost > expert.budget_seconds:
            out_of_time = len(regions) - position
            return ExpertResult(final, round(seconds, 3), done, found - done, out_of_time)
        final[mask] = k
        seconds += cost
        done += 1
    return ExpertResult(final, round(seconds, 3), done, found - done, 0)


def label_from_scratch(perceived: np.ndarray, expert: ExpertModel, rng: np.random.Generator) -> ExpertResult:
    """Paint the expert's belief on an empty map; grains too small to notice take the class around them.

    The expert finishes (no budget); the time is overhead, review and every region painted.
    """
    final = perceived.copy()
    painted = 0
    pixels = 0.0
    for k in np.unique(perceived):
        labelled, n = ndimage.label(perceived == k)
        areas = np.bincount(labelled.ravel())[1:]
        missed = rng.random(n) >= _noticed(areas, expert)
        for i in np.flatnonzero(missed):
            mask = labelled == i + 1
            ring = ndimage.binary_dilation(mask, iterations=2) & ~mask
            around = perceived[ring]
            if around.size:
                final[mask] = np.bincount(around).argmax()
        painted += int((~missed).sum())
        pixels += float(areas[~missed].sum())
    seconds = (expert.overhead_seconds + expert.review_seconds_per_kpx * perceived.size / 1000
               + expert.seconds_per_region * painted + expert.seconds_per_kpx * pixels / 1000) * _factor(expert, rng)  # fmt: skip
    return ExpertResult(final.astype(np.uint8), round(seconds, 3), painted, 0, 0)


def empty_like(shape: tuple[int, int]) -> np.ndarray:
    """An unlabelled class map."""
    return np.full(shape, IGNORE_INDEX, np.uint8)
