"""One arm on one seed: pick units, have the simulated expert label them, refit the fast learner, measure.

At each budget of the log-spaced schedule (tile-equivalents of labelled area) the arm's fast learner
(ExtraTrees on the base FCN's cached features, stacked with its probabilities: the product's
recipe, :mod:`ml_backend.segmenters.fast_learner`) is refitted **from the same start** on every
unit labelled so far (no champion gate, no warm start) and measured on the fixed test tiles
(pooled mIoU, per-tile mIoU) and on the validation tiles (per-tile mIoU against the expert's
labels from scratch and against the truth, for the champion-rule analysis). The next batch is
picked with the model of the current point (batches double with the budget).

Arms (``strategy[/explicit][/hand-set][/region]``, :func:`parse_arm`):

* ``random``: a fixed random order of the pool (the same for every arm of a seed);
* ``entropy``: mean normalised entropy (the product's default score);
* ``top-k-entropy``: mean entropy of the 10 % most uncertain pixels;
* ``class-weighted-entropy``: entropy weighted by the pool rarity of the predicted class;
* ``ensemble``: mutual information of 8 sub-forests of the learner (entropy while there is none);
* ``core-set``: top-k entropy traded off (0.5) against the distance of the FCN-encoder embedding
  to everything labelled (greedy k-center);
* ``badge``: k-means++ on gradient embeddings (decoder features);
* ``cost-aware``: CEREALS-like, region level: top-k entropy per predicted expert second of
  64 px regions (cost model refitted on the seconds spent so far).

Labels: ``implicit`` (the expert corrects the current model's prediction; confidence calibrated,
or ``hand-set``: the product's :class:`~active_learning.corrections.ConfidenceModel`) or
``explicit`` (the expert labels from scratch; confidence 1). The expert's behaviour on a unit is
seeded by (seed, unit) only, so arms of a seed are paired.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from active_learning.calibration import CalibrationModel, calibrated_confidence, pixel_features
from active_learning.corrections import NOTHING, compare
from active_learning.strategies import ScoredTask
from active_learning.strategies.badge import BadgeSelector
from active_learning.strategies.class_weighted import rarity_weights
from active_learning.strategies.cost_aware import CostModel, cost_features
from active_learning.strategies.diversity import DiverseSelector
from active_learning.strategies.ensemble import committee_probabilities
from benchmarks.active_learning.pool import Box, Pool
from benchmarks.experts import ExpertModel, confusable_indices, correct, label_from_scratch, perceive
from ml_backend.metrics import class_iou, confusion_matrix, mean_iou, tile_miou
from ml_backend.segmenters.fast_learner import FastLearnerConfig, PixelClassifier, PixelSamples, sample_pixels

BUDGETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
STRATEGIES = (
    "random",
    "entropy",
    "top-k-entropy",
    "class-weighted-entropy",
    "ensemble",
    "core-set",
    "badge",
    "cost-aware",
)
TOP_FRACTION = 0.1
DIVERSITY = 0.5
COMMITTEE = 8
EMBEDDING_DIMS = 32
PIXELS_PER_SUBMISSION = 200  # calibration records kept per implicit submission


@dataclass(frozen=True)
class Arm:
    """A strategy with a kind of label and a labelling unit."""

    strategy: str
    labels: str = "implicit"
    confidence: str = "calibrated"
    unit: str = "tile"

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {self.strategy!r}; valid: {', '.join(STRATEGIES)}")
        if self.labels not in ("implicit", "explicit") or self.confidence not in ("calibrated", "hand-set"):
            raise ValueError(f"bad arm {self}")
        if self.unit not in ("tile", "region"):
            raise ValueError(f"unit must be tile or region, got {self.unit!r}")

    @property
    def name(self) -> str:
        """``strategy[/explicit][/hand-set][/region]``."""
        parts = [self.strategy]
        if self.labels == "explicit":
            parts.append("explicit")
        elif self.confidence == "hand-set":
            parts.append("hand-set")
        if self.unit == "region" and self.strategy != "cost-aware":
            parts.append("region")
        return "/".join(parts)


def parse_arm(name: str, confidence: str = "calibrated") -> Arm:
    """The arm named ``strategy[/explicit][/hand-set][/region]`` (cost-aware is always region level)."""
    strategy, *flags = name.split("/")
    unknown = set(flags) - {"explicit", "hand-set", "region"}
    if unknown:
        raise ValueError(f"unknown arm flag(s) {sorted(unknown)} in {name!r}; valid: explicit, hand-set, region")
    return Arm(
        strategy,
        "explicit" if "explicit" in flags else "implicit",
        "hand-set" if "hand-set" in flags else confidence,
        "region" if "region" in flags or strategy == "cost-aware" else "tile",
    )


@dataclass
class Item:
    """One labelled unit."""

    box: Box
    label: np.ndarray
    confidence: np.ndarray
    seconds: float
    samples: PixelSamples
    cost_features: np.ndarray


@dataclass
class Point:
    """One point of a learning curve."""

    budget: float
    units: int
    seconds: float
    miou: float
    class_iou: dict[str, float]
    test_tiles: list[float]
    val_expert: list[float]
    val_truth: list[float]
    label_accuracy: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


@dataclass
class Context:
    """What the arms of one seed share: data, expert, the expert's beliefs, validation labels, calibrator."""

    pool: Pool
    expert: ExpertModel
    seed: int
    budgets: tuple[int, ...] = BUDGETS
    calibrator: CalibrationModel | None = None
    learner: FastLearnerConfig = field(default_factory=FastLearnerConfig)
    perceived: list[np.ndarray] = field(default_factory=list)
    val_labels: dict[int, np.ndarray] = field(default_factory=dict)
    embeddings: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def build(
        cls, pool: Pool, expert: ExpertModel, seed: int, budgets=BUDGETS, calibrator=None, learner=None
    ) -> Context:
        """Draw the expert's beliefs per sample and the validation tiles' labels from scratch."""
        ctx = cls(pool, expert, seed, tuple(budgets), calibrator, learner or pool.learner)
        confusable = confusable_indices(pool.names)
        ctx.perceived = [perceive(s.truth, s.contrast, expert, np.random.default_rng([seed, j, 1]), confusable)
                         for j, s in enumerate(pool.samples)]  # fmt: skip
        for box in pool.val:
            belief = ctx.perceived[box.sample][box.slices]
            ctx.val_labels[box.id] = label_from_scratch(belief, expert, np.random.default_rng([seed, box.id, 3])).final
        for unit, boxes in (("tile", pool.pool), ("region", pool.regions)):
            raw = np.stack([pool.embedding(b) for b in boxes]).astype(np.float64)
            centred = raw - raw.mean(axis=0)
            _, _, vt = np.linalg.svd(centred, full_matrices=False)  # PCA: k-center in 1280 dims measures noise
            ctx.embeddings[unit] = centred @ vt[: min(EMBEDDING_DIMS, len(vt))].T
        return ctx

    def units(self, unit: str) -> list[Box]:
        """The pool's labelling units of a kind."""
        return self.pool.pool if unit == "tile" else self.pool.regions

    def per_tile(self, unit: str) -> int:
        """Units per tile-equivalent of area."""
        return 1 if unit == "tile" else (self.pool.config.tile // self.pool.config.region) ** 2


def predict(pool: Pool, classifier: PixelClassifier | None, features: np.ndarray) -> np.ndarray:
    """(C, ...) probabilities of the learner (the base FCN's while there is none) on (F, ...) features."""
    if classifier is None:
        return pool.base_probabilities(features).astype(np.float32)
    shape = features.shape[1:]
    flat = features.reshape(features.shape[0], 1, -1)
    return classifier.predict_proba(flat).reshape(classifier.n_classes, *shape)


def fit(ctx: Context, items: list[Item]) -> PixelClassifier | None:
    """The product's fit: pooled samples, subsampled to the bound, ExtraTrees + stacking."""
    parts = [item.samples for item in items if len(item.samples.labels)]
    if not parts:
        return None
    samples = PixelSamples.concat(parts).subsample(np.random.default_rng([ctx.learner.seed, ctx.seed]),
                                                   ctx.learner.max_training_pixels)  # fmt: skip
    return PixelClassifier.fit(samples, ctx.pool.n_classes, ctx.learner)


def evaluate(ctx: Context, classifier: PixelClassifier | None) -> dict[str, Any]:
    """Pooled test mIoU and per-class IoU, per-tile test mIoU, per-tile validation mIoU (expert labels and truth)."""
    pool, stride, n = ctx.pool, ctx.pool.config.eval_stride, ctx.pool.n_classes
    side = pool.config.tile // stride
    out: dict[str, Any] = {}
    for name, boxes in (("test", pool.test), ("val", pool.val)):
        x, truth = pool.grid(boxes, stride)
        predicted = np.argmax(predict(pool, classifier, x), axis=0).astype(np.uint8)
        tiles_truth, tiles_pred = truth.reshape(len(boxes), side, side), predicted.reshape(len(boxes), side, side)
        if name == "test":
            iou = class_iou(confusion_matrix(truth, predicted, n), pool.names)
            out["miou"], out["class_iou"] = mean_iou(iou), iou
            out["test_tiles"] = [tile_miou(t, p, n) for t, p in zip(tiles_truth, tiles_pred)]
        else:
            expert = [ctx.val_labels[b.id][::stride, ::stride] for b in boxes]
            out["val_expert"] = [tile_miou(e, p, n) for e, p in zip(expert, tiles_pred)]
            out["val_truth"] = [tile_miou(t, p, n) for t, p in zip(tiles_truth, tiles_pred)]
    return out


def _unit_maps(
    ctx: Context, unit: str, classifier: PixelClassifier | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """((U, C, m) probabilities, (U, D, m) decoder features, (F, N) features) of every unit on the score grid."""
    boxes = ctx.units(unit)
    x, _ = ctx.pool.grid(boxes, ctx.pool.config.score_stride)
    probs = predict(ctx.pool, classifier, x)
    m = x.shape[1] // len(boxes)
    deep = ctx.pool.decoder_features(x)
    return (
        probs.reshape(probs.shape[0], len(boxes), m).transpose(1, 0, 2),
        deep.reshape(deep.shape[0], len(boxes), m).transpose(1, 0, 2),
        x,
    )


def _entropy(probs: np.ndarray) -> np.ndarray:
    p = np.clip(probs, 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=-2) / np.log(probs.shape[-2])


def _top_fraction(values: np.ndarray, fraction: float = TOP_FRACTION) -> np.ndarray:
    k = max(1, int(math.ceil(fraction * values.shape[1])))
    return np.partition(values, values.shape[1] - k, axis=1)[:, values.shape[1] - k :].mean(axis=1)


def scores(
    ctx: Context, arm: Arm, classifier: PixelClassifier | None, cost: CostModel
) -> tuple[np.ndarray, np.ndarray]:
    """(U,) scores of every unit of the arm, and (U, ...) the embeddings its selector uses (empty if none)."""
    probs, deep, x = _unit_maps(ctx, arm.unit, classifier)
    entropy = _entropy(probs)  # (U, m)
    none = np.zeros((len(probs), 0))
    if arm.strategy == "entropy":
        return entropy.mean(axis=1), none
    if arm.strategy in ("top-k-entropy", "core-set"):
        return _top_fraction(entropy), ctx.embeddings[arm.unit] if arm.strategy == "core-set" else none
    if arm.strategy == "class-weighted-entropy":
        predicted = probs.argmax(axis=1)
        weights = rarity_weights(np.bincount(predicted.ravel(), minlength=probs.shape[1]) / predicted.size)[predicted]
        return (weights * entropy).sum(axis=1) / weights.sum(axis=1), none
    if arm.strategy == "ensemble":
        if classifier is None:
            return entropy.mean(axis=1), none
        committee = committee_probabilities(classifier, x, COMMITTEE)  # (T, C, N)
        mean_entropy = _entropy(committee.mean(axis=0)[None])[0] - _entropy(committee).mean(axis=0)
        return np.maximum(mean_entropy, 0.0).reshape(len(probs), -1).mean(axis=1), none
    if arm.strategy == "badge":
        residual = probs.copy()
        u, m = probs.shape[0], probs.shape[2]
        residual[np.arange(u)[:, None], probs.argmax(axis=1), np.arange(m)[None, :]] -= 1.0
        h = np.concatenate([deep, np.ones((u, 1, m), deep.dtype)], axis=1)
        return entropy.mean(axis=1), np.einsum("ucm,udm->ucd", residual, h).reshape(u, -1) / m
    if arm.strategy == "cost-aware":
        side = ctx.pool.config.region // ctx.pool.config.score_stride
        maps = probs.argmax(axis=1).reshape(-1, side, side)
        seconds = cost.predict(np.stack([cost_features(c, ctx.pool.config.score_stride) for c in maps]))
        return _top_fraction(entropy) / seconds, none
    raise ValueError(f"arm {arm.name} has no score")


def select(
    ctx: Context, arm: Arm, classifier, labelled: set[int], n: int, cost: CostModel, order: list[int]
) -> list[Box]:
    """The next ``n`` units of the arm (never one already labelled)."""
    boxes = ctx.units(arm.unit)
    if arm.strategy == "random":
        return [boxes[i] for i in order if boxes[i].id not in labelled][:n]
    values, embeddings = scores(ctx, arm, classifier, cost)
    open_ = [i for i, b in enumerate(boxes) if b.id not in labelled]
    if arm.strategy in ("core-set", "badge"):
        tasks = [ScoredTask(i, float(values[i]), embeddings[i]) for i in open_]
        if arm.strategy == "core-set":
            done = [i for i, b in enumerate(boxes) if b.id in labelled]
            selector = DiverseSelector(DIVERSITY, labelled=embeddings[done] if done else None)
        else:
            selector = BadgeSelector(seed=ctx.seed * 1000 + len(labelled))
        return [boxes[t.task_id] for t in selector.select(tasks, n)]
    ranked = sorted(open_, key=lambda i: (-values[i], boxes[i].id))
    return [boxes[i] for i in ranked[:n]]


def label(ctx: Context, arm: Arm, box: Box, classifier, records: list[dict[str, np.ndarray]] | None) -> Item:
    """The expert labels one unit (correcting the current prediction, or from scratch)."""
    pool, n = ctx.pool, ctx.pool.n_classes
    features = pool.features(box)
    probs = predict(pool, classifier, features)
    shown, top = np.argmax(probs, axis=0).astype(np.uint8), probs.max(axis=0)
    belief = ctx.perceived[box.sample][box.slices]
    if arm.labels == "explicit":
        result = label_from_scratch(belief, ctx.expert, np.random.default_rng([ctx.seed, box.id, 4]))
        confidence = compare(np.full(belief.shape, NOTHING, np.uint8), result.final, n, result.seconds).confidence
    else:
        result = correct(shown, top, belief, ctx.expert, np.random.default_rng([ctx.seed, box.id, 2]))
        hand_set = compare(shown, result.final, n, result.seconds).confidence
        calibrated = None
        if ctx.calibrator is not None:
            uses_probability = "top_probability" in ctx.calibrator.features
            calibrated = calibrated_confidence(ctx.calibrator, shown, result.final, result.seconds,
                                               top if uses_probability else None)  # fmt: skip
        confidence = calibrated if arm.confidence == "calibrated" and calibrated is not None else hand_set
        if records is not None:
            records.append(_record(ctx, box, shown, top, result.final, result.seconds, hand_set, calibrated))
    samples = sample_pixels(features, result.final, confidence, np.random.default_rng([ctx.learner.seed, ctx.seed, box.id]),
                            ctx.learner.per_class)  # fmt: skip
    return Item(box, result.final, confidence, result.seconds, samples, cost_features(shown))


def _record(ctx, box, shown, top, final, seconds, hand_set, calibrated) -> dict[str, np.ndarray]:
    """A sample of an implicit submission's labelled pixels with calibration features and the truth."""
    feats, index = pixel_features(shown, final, seconds, ctx.pool.n_classes, top)
    keep = np.sort(np.random.default_rng([ctx.seed, box.id, 5]).permutation(index.size)[:PIXELS_PER_SUBMISSION])
    truth = ctx.pool.truth(box).ravel()[index[keep]]
    out = {name: values[keep].astype(np.float32) for name, values in feats.items()}
    out["correct"] = (final.ravel()[index[keep]] == truth).astype(np.uint8)
    out["hand_set"] = hand_set.ravel()[index[keep]].astype(np.float32)
    if calibrated is not None:
        out["calibrated"] = calibrated.ravel()[index[keep]].astype(np.float32)
    out["unit"] = np.full(keep.size, box.id, np.int64)
    return out


def run_arm(ctx: Context, arm: Arm, records: list[dict[str, np.ndarray]] | None = None) -> list[Point]:
    """The arm's learning curve at every budget of ``ctx.budgets`` (budget 0 is the base FCN, shared)."""
    per = ctx.per_tile(arm.unit)
    boxes = ctx.units(arm.unit)
    order = list(np.random.default_rng([ctx.seed, 7, per]).permutation(len(boxes)))
    items: list[Item] = []
    labelled: set[int] = set()
    classifier = None
    cost = CostModel()
    points = []
    correct_pixels = labelled_pixels = 0
    for budget in ctx.budgets:
        want = min(int(round(budget * per)), len(boxes))
        batch = select(ctx, arm, classifier, labelled, want - len(items), cost, order)
        for box in batch:
            item = label(ctx, arm, box, classifier, records)
            items.append(item)
            labelled.add(box.id)
            known = item.label != NOTHING
            correct_pixels += int((item.label[known] == ctx.pool.truth(box)[known]).sum())
            labelled_pixels += int(known.sum())
        if arm.strategy == "cost-aware":
            cost = CostModel.fit([i.cost_features for i in items], [i.seconds for i in items])
        classifier = fit(ctx, items)
        measured = evaluate(ctx, classifier)
        points.append(Point(len(items) / per, len(items), float(sum(i.seconds for i in items)), measured["miou"],
                            measured["class_iou"], measured["test_tiles"], measured["val_expert"], measured["val_truth"],
                            correct_pixels / labelled_pixels if labelled_pixels else None))  # fmt: skip
    return points


def reference(ctx: Context, learner: FastLearnerConfig | None = None) -> dict[str, Any]:
    """The learner fitted on every pool tile with its true labels (the ceiling), measured like the arms."""
    learner = learner or ctx.learner
    parts = []
    for box in ctx.pool.pool:
        truth = ctx.pool.truth(box)
        parts.append(sample_pixels(ctx.pool.features(box), truth, np.ones(truth.shape, np.float32),
                                   np.random.default_rng([learner.seed, ctx.seed, box.id]), learner.per_class))  # fmt: skip
    samples = PixelSamples.concat(parts).subsample(
        np.random.default_rng([learner.seed, ctx.seed]), learner.max_training_pixels
    )
    return evaluate(ctx, PixelClassifier.fit(samples, ctx.pool.n_classes, learner))
