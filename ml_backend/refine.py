"""Interactive refinement: the expert clicks a few points (or paints strokes), the whole mask follows.

When the expert uses the smart keypoint tool ("hint" KeyPointLabels) or paints with the
brush while interactive pre-annotations are on, Label Studio sends the regions drawn so far
as ``context.result`` with a ``/predict`` for one task. We answer with a refined mineral
mask for the image:

1. Per image (cached, bounded LRU with expiry): the model's class probabilities and cheap
   multiscale pixel features (smoothed grey levels, local contrast, gradient) on a working
   grid of at most ``max_work_pixels`` pixels (every 2nd pixel of a 1024 px image).
2. Per request: a small ExtraTrees pixel classifier, trained on the hinted pixels (a disc
   around each keypoint, a sample of each stroke) and on pixels far from any hint labelled
   with the model's own classes, with the model's probabilities among its inputs. It learns
   what the expert corrected (for example "bright pixels the model calls clinopyroxene are
   olivine") and applies it to the whole image.
3. The classifier's probabilities are blended with the model's: fully trusted near the
   hints, with weight ``far_trust`` far from them; the hinted pixels themselves get the
   expert's class. Pixel detail comes from the model's full-resolution probabilities; only
   the change is computed on the working grid.

Keypoint ``x``/``y`` are percentages of the image width/height. A keypoint with
``is_positive: false`` (Alt-click) says "not this class here".
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cachetools
import numpy as np
from scipy import ndimage
from sklearn.ensemble import ExtraTreesClassifier

from label_config import Catalogue
from ml_backend.brush import rle_to_mask
from ml_backend.image_source import ImageSource, ImageSourceError
from ml_backend.label_map import ControlTarget, LabelConfigError, control_target
from ml_backend.pixel_features import grey_features
from ml_backend.predictor import TASK_ERRORS, brush_results
from ml_backend.segmenters.base import Segmenter
from ml_backend.uncertainty import task_score

log = logging.getLogger(__name__)

INTERACTIVE_SUFFIX = "+interactive"


@dataclass(frozen=True)
class RefineConfig:
    """How hints change the mask (all have working defaults, measured with ``scraiber bench interactive``).

    Attributes:
        hint_radius: Radius (full-resolution px) of the disc around a keypoint that takes its class.
        max_work_pixels: The classifier runs on a grid of at most this many pixels.
        pseudo_samples: Pixels far from hints labelled with the model's classes for training.
        exclusion_radius: No model-labelled training pixels closer than this (px) to a hint.
        stroke_samples: At most this many training pixels per brush stroke.
        hint_weight: Total training weight of all hinted pixels relative to the model-labelled ones.
        suspect_weight: Weight factor of model-labelled pixels of a class the expert corrected
            (the model's class at a positive hint of another class).
        n_estimators, max_depth, min_samples_leaf: The ExtraTrees classifier.
        local_sigma: Distance scale (px) of full trust in the classifier around hints.
        far_trust: Weight of the classifier far from every hint (the model gets the rest).
        cache_size: Images whose features are kept (LRU).
        cache_seconds: Cached features expire after this long unused.
        seed: Seed of the pixel sample and the classifier.
        n_jobs: Threads of the classifier.
    """

    hint_radius: float = 4.0
    max_work_pixels: int = 262_144
    pseudo_samples: int = 3000
    exclusion_radius: float = 16.0
    stroke_samples: int = 500
    hint_weight: float = 1.0
    suspect_weight: float = 0.25
    n_estimators: int = 16
    max_depth: int = 12
    min_samples_leaf: int = 2
    local_sigma: float = 32.0
    far_trust: float = 0.6
    cache_size: int = 4
    cache_seconds: float = 600.0
    seed: int = 0
    n_jobs: int = 1

    def __post_init__(self) -> None:
        if self.hint_radius < 0 or self.exclusion_radius < 0 or self.local_sigma <= 0:
            raise ValueError("hint_radius and exclusion_radius must be >= 0 and local_sigma > 0")
        if not 0.0 <= self.far_trust <= 1.0 or not 0.0 <= self.suspect_weight <= 1.0:
            raise ValueError(
                f"far_trust and suspect_weight must be in [0, 1], got {self.far_trust}, {self.suspect_weight}"
            )
        if min(self.max_work_pixels, self.pseudo_samples, self.stroke_samples, self.n_estimators, self.cache_size) < 1:
            raise ValueError(
                "max_work_pixels, pseudo_samples, stroke_samples, n_estimators and cache_size must be >= 1"
            )


@dataclass(frozen=True)
class Hint:
    """One piece of expert input.

    Attributes:
        class_index: Catalogue class.
        mask: Full-resolution boolean mask of the hinted pixels.
        kind: ``"keypoint"`` or ``"stroke"``.
        positive: False for "not this class here".
    """

    class_index: int
    mask: np.ndarray = field(repr=False)
    kind: str
    positive: bool = True


@dataclass(frozen=True)
class ImageState:
    """What refinement needs of one image, computed once and cached.

    Attributes:
        probs: (C, H, W) float32 model probabilities at full resolution.
        stride: Working grid step (1: every pixel).
        features: (F, h, w) float32 pixel features on the working grid (model probabilities included).
        model_version: Version of the segmenter that made ``probs``.
    """

    probs: np.ndarray
    stride: int
    features: np.ndarray
    model_version: str

    @property
    def shape(self) -> tuple[int, int]:
        """Full-resolution (H, W)."""
        return self.probs.shape[1], self.probs.shape[2]


@dataclass(frozen=True)
class Interaction:
    """Tracking record of one refinement (for ``active_learning.interaction_log``).

    Attributes:
        task_id, project_id: Label Studio ids (None if absent).
        user: The user as Label Studio named them, if known (pseudonymise before storing).
        keypoints, negative_keypoints, strokes: Numbers of each hint kind.
        classes: Label names hinted, sorted, without repeats.
        latency_ms: Time from request to answer ready.
        cached: The image's features came from the cache.
        changed_fraction: Fraction of pixels whose class differs from the model's.
        height, width: Image size.
        model_version: Interactive model version returned.
    """

    task_id: int | None
    project_id: int | None
    user: str | None
    keypoints: int
    negative_keypoints: int
    strokes: int
    classes: tuple[str, ...]
    latency_ms: float
    cached: bool
    changed_fraction: float
    height: int
    width: int
    model_version: str


def working_stride(shape: tuple[int, int], max_pixels: int) -> int:
    """Smallest step s so that the grid ``[::s, ::s]`` of an image of ``shape`` has at most ``max_pixels``."""
    stride = 1
    while math.ceil(shape[0] / stride) * math.ceil(shape[1] / stride) > max_pixels:
        stride += 1
    return stride


def pixel_features(image: np.ndarray, probs: np.ndarray, stride: int) -> np.ndarray:
    """(F, h, w) float32 features on the grid ``[::stride, ::stride]``: 6 grey-level features
    (:func:`ml_backend.pixel_features.grey_features`), then the model's probabilities."""
    return np.concatenate([grey_features(image, stride), probs[:, ::stride, ::stride]]).astype(np.float32)


def image_state(image: np.ndarray, segmenter: Segmenter, max_work_pixels: int) -> ImageState:
    """Model probabilities and features of one image."""
    probs = segmenter.predict_proba(image)
    stride = working_stride(image.shape, max_work_pixels)
    return ImageState(probs, stride, pixel_features(image, probs, stride), segmenter.version)


def _disc(shape: tuple[int, int], row: float, col: float, radius: float) -> np.ndarray:
    r = max(radius, 0.5)
    y0, y1 = max(int(math.floor(row - r)), 0), min(int(math.ceil(row + r)) + 1, shape[0])
    x0, x1 = max(int(math.floor(col - r)), 0), min(int(math.ceil(col + r)) + 1, shape[1])
    mask = np.zeros(shape, dtype=bool)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    mask[y0:y1, x0:x1] = (yy - row) ** 2 + (xx - col) ** 2 <= r * r
    return mask


def parse_hints(
    context: dict[str, Any], shape: tuple[int, int], catalogue: Catalogue, radius: float
) -> tuple[list[Hint], list[str]]:
    """Hints from Label Studio's ``context.result``, and the label names they carry.

    Keypoints become discs of ``radius`` px around the pixel at ``x``/``y`` percent of the
    image size; brush strokes (RLE) their painted pixels. Regions of other types, with a
    label that matches no catalogue class, or outside the image are skipped (logged).
    """
    results = context.get("result") if isinstance(context, dict) else None
    hints: list[Hint] = []
    labels: list[str] = []
    for region in results if isinstance(results, list) else []:
        if not isinstance(region, dict) or not isinstance(region.get("value"), dict):
            continue
        kind, value = region.get("type"), region["value"]
        names = value.get(kind) if isinstance(kind, str) else None
        index = catalogue.index_of(names[0]) if isinstance(names, list) and names else None
        if index is None:
            log.info("hint skipped: region of type %r with labels %r matches no catalogue class", kind, names)
            continue
        if kind == "keypointlabels":
            try:
                row = float(value["y"]) / 100.0 * shape[0]
                col = float(value["x"]) / 100.0 * shape[1]
            except (KeyError, TypeError, ValueError):
                log.info("keypoint hint skipped: no numeric x/y")
                continue
            if not (0 <= row < shape[0] and 0 <= col < shape[1]):
                log.info("keypoint hint at %.1f%%, %.1f%% is outside the image", value.get("x"), value.get("y"))
                continue
            mask = _disc(shape, row, col, radius)
            positive = region.get("is_positive", True) is not False
            hints.append(Hint(index, mask, "keypoint", positive))
        elif kind == "brushlabels" and value.get("format", "rle") == "rle" and value.get("rle"):
            height = int(region.get("original_height") or shape[0])
            width = int(region.get("original_width") or shape[1])
            if (height, width) != shape:
                log.info("stroke hint skipped: drawn on %dx%d, image is %dx%d", height, width, *shape)
                continue
            try:
                mask = rle_to_mask(value["rle"], height, width)
            except ValueError as exc:
                log.info("stroke hint skipped: %s", exc)
                continue
            if mask.any():
                hints.append(Hint(index, mask, "stroke"))
        else:
            continue
        assert names is not None  # a catalogue index was found above, so ``names`` is a non-empty list
        labels.append(names[0])
    return hints, labels


def refine_probabilities(state: ImageState, hints: list[Hint], config: RefineConfig) -> np.ndarray:
    """(C, H, W) float32 probabilities of the image after the expert's hints.

    Without hints the model's probabilities are returned unchanged.
    """
    probs = state.probs
    if not hints:
        return probs
    n_classes = probs.shape[0]
    s = state.stride
    features = state.features
    height, width = features.shape[1:]
    model_work = features[-n_classes:]
    n_features = features.shape[0]
    flat = features.reshape(n_features, -1)
    rng = np.random.default_rng(config.seed)

    hinted = np.zeros((height, width), dtype=bool)
    rows, labels, weights = [], [], []
    per_hint = config.hint_weight * config.pseudo_samples / len(hints)
    suspect: set[int] = set()
    for hint in hints:
        grid = hint.mask[::s, ::s]
        if not grid.any():  # a disc smaller than the grid step: keep its centre
            grid = np.zeros_like(hinted)
            r, c = np.argwhere(hint.mask).mean(axis=0) / s
            grid[min(int(round(r)), height - 1), min(int(round(c)), width - 1)] = True
        hinted |= grid
        index = np.flatnonzero(grid)
        if len(index) > config.stroke_samples:
            index = rng.choice(index, config.stroke_samples, replace=False)
        if hint.positive:
            target = np.full(len(index), hint.class_index)
            model_class = np.argmax(model_work.reshape(n_classes, -1)[:, index], axis=0)
            suspect.update(int(c) for c in np.unique(model_class) if c != hint.class_index)
        else:
            others = model_work.reshape(n_classes, -1)[:, index].copy()
            others[hint.class_index] = -1.0
            target = np.argmax(others, axis=0)
        rows.append(index)
        labels.append(target)
        weights.append(np.full(len(index), per_hint / len(index)))

    distance = ndimage.distance_transform_edt(~hinted) * s
    far = np.flatnonzero(distance.ravel() > config.exclusion_radius)
    if len(far):
        pseudo = rng.choice(far, min(config.pseudo_samples, len(far)), replace=False)
        model_class = np.argmax(model_work.reshape(n_classes, -1)[:, pseudo], axis=0)
        weight = model_work.reshape(n_classes, -1)[model_class, pseudo].astype(np.float64)
        weight[np.isin(model_class, list(suspect))] *= config.suspect_weight
        rows.append(pseudo)
        labels.append(model_class)
        weights.append(weight)
    index, target, weight = np.concatenate(rows), np.concatenate(labels), np.concatenate(weights)

    classifier = ExtraTreesClassifier(
        n_estimators=config.n_estimators,
        max_depth=config.max_depth,
        min_samples_leaf=config.min_samples_leaf,
        n_jobs=config.n_jobs,
        random_state=config.seed,
    )
    classifier.fit(flat[:, index].T, target, sample_weight=weight)
    predicted = np.zeros((n_classes, height * width), dtype=np.float32)
    predicted[classifier.classes_] = classifier.predict_proba(flat.T).T
    predicted = predicted.reshape(n_classes, height, width)

    trust = config.far_trust + (1.0 - config.far_trust) * np.exp(-0.5 * (distance / config.local_sigma) ** 2)
    change = (trust * (predicted - model_work)).astype(np.float32)
    if s > 1:
        change = np.repeat(np.repeat(change, s, axis=1), s, axis=2)[:, : probs.shape[1], : probs.shape[2]]
    refined = np.maximum(probs + change, 0.0)
    refined /= np.maximum(refined.sum(axis=0, keepdims=True), 1e-12)
    for hint in hints:
        if hint.positive:
            refined[:, hint.mask] = 0.0
            refined[hint.class_index, hint.mask] = 1.0
    return refined


class _StateCache:
    """Bounded LRU of image states whose entries expire ``seconds`` after their last use (thread-safe)."""

    def __init__(self, size: int, seconds: float) -> None:
        self._items: cachetools.TTLCache = cachetools.TTLCache(maxsize=size, ttl=seconds, timer=time.monotonic)
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str]) -> ImageState | None:
        with self._lock:
            state = self._items.get(key)
            if state is not None:
                self._items[key] = state  # a use renews the expiry and the LRU position
            return state

    def put(self, key: tuple[str, str], state: ImageState) -> None:
        with self._lock:
            self._items[key] = state


class InteractiveRefiner:
    """The backend's :class:`~ml_backend.adapter.Refiner`: one refined prediction per request.

    Args:
        catalogue: The mineral catalogue.
        segmenter: Returns the segmenter served now.
        images: Where task images are fetched from.
        config: Refinement parameters.
        record: Receives one :class:`Interaction` per answered request (tracking data).
    """

    def __init__(
        self,
        catalogue: Catalogue,
        segmenter: Callable[[], Segmenter],
        images: ImageSource,
        config: RefineConfig | None = None,
        record: Callable[[Interaction], None] | None = None,
    ) -> None:
        self.catalogue = catalogue
        self.segmenter = segmenter
        self.images = images
        self.config = config or RefineConfig()
        self.record = record
        self._cache = _StateCache(self.config.cache_size, self.config.cache_seconds)

    def refine(self, task: dict[str, Any], context: dict[str, Any], label_config: str) -> list[dict[str, Any]]:
        """``[prediction]`` for the task refined with the expert's context, or ``[{"error": ...}]``.

        The prediction's ``model_version`` is the served model's with ``+interactive``.
        """
        started = time.perf_counter()
        segmenter = self.segmenter()
        version = segmenter.version + INTERACTIVE_SUFFIX
        try:
            target = control_target(label_config, self.catalogue)
            state, cached = self._state(task, target, segmenter)
        except (*TASK_ERRORS, LabelConfigError) as exc:
            log.warning("task %s: no interactive refinement: %s", task.get("id"), exc)
            return [{"error": f"task {task.get('id')}: {exc}", "model_version": version}]
        hints, labels = parse_hints(context, state.shape, self.catalogue, self.config.hint_radius)
        probs = refine_probabilities(state, hints, self.config)
        s = state.stride  # the score of an interactive answer is informative only: the working grid suffices
        score = task_score(probs[:, ::s, ::s])
        prediction = {"result": brush_results(probs, target), "score": score, "model_version": version}
        if self.record is not None:
            changed = float(np.mean(np.argmax(probs, axis=0) != np.argmax(state.probs, axis=0))) if hints else 0.0
            self.record(
                Interaction(
                    task_id=_int_or_none(task.get("id")),
                    project_id=_int_or_none(task.get("project")),
                    user=_user(task, context),
                    keypoints=sum(h.kind == "keypoint" and h.positive for h in hints),
                    negative_keypoints=sum(h.kind == "keypoint" and not h.positive for h in hints),
                    strokes=sum(h.kind == "stroke" for h in hints),
                    classes=tuple(sorted(set(labels))),
                    latency_ms=(time.perf_counter() - started) * 1000.0,
                    cached=cached,
                    changed_fraction=changed,
                    height=state.shape[0],
                    width=state.shape[1],
                    model_version=version,
                )
            )
        return [prediction]

    def _state(self, task: dict[str, Any], target: ControlTarget, segmenter: Segmenter) -> tuple[ImageState, bool]:
        data = task.get("data")
        if not isinstance(data, dict) or not isinstance(data.get(target.value_key), str):
            raise ImageSourceError(f"task has no data.{target.value_key} holding the image URL")
        key = (data[target.value_key], segmenter.version)
        state = self._cache.get(key)
        if state is not None:
            return state, True
        with self.images.open(data[target.value_key]) as image:  # its memory is reserved until the state exists
            state = image_state(image.pixels, segmenter, self.config.max_work_pixels)
        self._cache.put(key, state)
        return state, False


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _user(task: dict[str, Any], context: dict[str, Any]) -> str | None:
    """The requesting user's Label Studio id, if known: ``context.user`` when sent, else the
    id at the end of the task's drafts' ``created_username`` ("Name email, ID"; Label Studio
    sends only the requesting user's drafts with an interactive request)."""
    user = context.get("user") if isinstance(context, dict) else None
    if isinstance(user, dict):
        user = user.get("id")
    if user is None:
        drafts = task.get("drafts")
        if isinstance(drafts, list) and drafts and isinstance(drafts[0], dict):
            tail = str(drafts[0].get("created_username") or "").rsplit(",", 1)[-1].strip()
            user = tail if tail.isdigit() else None
    return None if user is None else str(user)
