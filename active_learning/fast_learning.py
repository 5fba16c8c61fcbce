"""Per-project fast learners: updated after every harvested submission, served for the next task at once.

The harvest worker calls :meth:`FastLearnerUpdater.update` for a project whose implicit
labels changed. It samples pixels of each current label (features of the served FCN on
the task's image; cached per FCN version and annotation version), fits the project's
:class:`~ml_backend.segmenters.fast_learner.PixelClassifier` once (to check it and time it)
and stores in the artefact store

* ``fast-learner/project-P/training-<digest>.npz``: the pooled training pixels;
* ``fast-learner/project-P/state.json``: the :class:`LearnerState` naming them (written last).

The web workers (:class:`ProjectLearners`, ``Predictor.for_project``) read the state at most
every ``refresh_seconds``; when it names a new version they refit the classifier from the
stored pixels (deterministic: the same samples and config give the same forest, so no
model object is ever pickled) and predict the project's tasks with it. Its
``model_version`` is ``<FCN version>+fast-p<project>-<digest>``, so Label Studio asks again
and every prediction says which learner made it. A state made on another FCN version
than the one served is ignored until the worker has redone it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from active_learning.fingerprints import fingerprint
from active_learning.harvest_log import LABEL, HarvestLog, HarvestRecord
from active_learning.store import ArtefactNotFoundError, ArtefactStore
from ml_backend.image_source import ImageSource
from ml_backend.segmenters.base import Segmenter
from ml_backend.segmenters.fast_learner import (
    FEATURE_SET,
    FastLearnerConfig,
    FastLearnerSegmenter,
    PixelClassifier,
    PixelSamples,
    learner_features,
    sample_pixels,
)

log = logging.getLogger(__name__)
PREFIX = "fast-learner"


@dataclass(frozen=True)
class LearnerState:
    """What a project's fast learner was fitted on.

    Attributes:
        project: Label Studio project.
        version: ``model_version`` of predictions made with it.
        base_version: Version of the FCN whose features it reads.
        digest: Fingerprint of the labels (annotation versions) and the FCN version.
        training_key: Artefact key of the pooled training pixels.
        labels: Annotation versions it learnt from (``"<annotation id>@<updated_at>"``).
        pixels: Training pixels.
        classes: Catalogue indices it was taught.
        fitted_at: Epoch seconds of the update.
        seconds: Time the update took (features, sampling, fit).
        features: The feature set of its pixels (:data:`FEATURE_SET`); a state of another set is
            not served ("" for states stored before sets were named).
    """

    project: int
    version: str
    base_version: str
    digest: str
    training_key: str
    labels: tuple[str, ...]
    pixels: int
    classes: tuple[int, ...]
    fitted_at: float
    seconds: float
    features: str = FEATURE_SET

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LearnerState:
        """Read a state written as JSON."""
        return cls(**{"features": "", **data, "labels": tuple(data["labels"]), "classes": tuple(data["classes"])})


def state_key(project: int) -> str:
    """Artefact key of a project's learner state."""
    return f"{PREFIX}/project-{int(project)}/state.json"


def read_state(store: ArtefactStore, project: int) -> LearnerState | None:
    """The project's learner state, or None if it has none."""
    try:
        return LearnerState.from_dict(store.get_json(state_key(project)))
    except ArtefactNotFoundError:
        return None


def load_training(store: ArtefactStore, state: LearnerState) -> PixelSamples:
    """The pooled training pixels a state names."""
    return PixelSamples.from_arrays(store.get_arrays(state.training_key))


class FastLearnerUpdater:
    """Refits a project's fast learner from its current implicit labels (in the harvest worker).

    Args:
        harvests: The harvest log (which labels are current).
        store: Artefact store of the labels and of the learner states.
        images: Where the tasks' images come from.
        base: Returns the segmenter served now (its features are learnt on).
        n_classes: Catalogue size.
        config: Sampling and classifier settings.
    """

    def __init__(
        self,
        harvests: HarvestLog,
        store: ArtefactStore,
        images: ImageSource,
        base: Callable[[], Segmenter],
        n_classes: int,
        config: FastLearnerConfig | None = None,
    ) -> None:
        self.harvests = harvests
        self.store = store
        self.images = images
        self.base = base
        self.n_classes = n_classes
        self.config = config or FastLearnerConfig()

    def update(self, project: int) -> LearnerState | None:
        """Bring the project's learner up to date with its labels; returns the state (None: no labels).

        Nothing is refitted when the labels and the served FCN are those of the stored state.
        """
        started = time.perf_counter()
        base = self.base()
        records = self.harvests.records(project=project, kind=LABEL)
        labels = tuple(f"{r.annotation_id}@{r.updated_at}" for r in records)
        if not records:
            self.store.delete(state_key(project))
            return None
        digest = fingerprint(list(labels) + [f"base:{base.version}", f"config:{self.config}", FEATURE_SET])[:12]
        current = read_state(self.store, project)
        if current is not None and current.digest == digest and current.features == FEATURE_SET:
            return current
        samples = PixelSamples.concat([self._samples(base, record) for record in records])
        samples = samples.subsample(
            np.random.default_rng([self.config.seed, int(project)]), self.config.max_training_pixels
        )
        classifier = PixelClassifier.fit(samples, self.n_classes, self.config)
        training_key = f"{PREFIX}/project-{int(project)}/training-{digest}.npz"
        self.store.put_arrays(training_key, asdict(samples))
        state = LearnerState(
            project=int(project), version=f"{base.version}+fast-p{int(project)}-{digest[:8]}",
            base_version=base.version, digest=digest, training_key=training_key, labels=labels,
            pixels=len(samples.labels), classes=tuple(int(c) for c in classifier.taught), fitted_at=time.time(),
            seconds=round(time.perf_counter() - started, 3),
        )  # fmt: skip
        self.store.put_json(state_key(project), asdict(state))
        if current is not None and current.training_key != training_key:
            self.store.delete(current.training_key)
        log.info("project %s: fast learner %s from %d labels (%d px) in %.1f s", project, state.version,
                 len(labels), state.pixels, state.seconds)  # fmt: skip
        return state

    def _samples(self, base: Segmenter, record: HarvestRecord) -> PixelSamples:
        """Training pixels of one label, cached per FCN version and annotation version."""
        key = f"{PREFIX}/samples/{FEATURE_SET}/{base.version}/a{record.annotation_id}-{fingerprint([record.updated_at])[:12]}.npz"
        try:
            return PixelSamples.from_arrays(self.store.get_arrays(key))
        except ArtefactNotFoundError:
            pass
        if record.label_key is None:
            raise ValueError(f"annotation {record.annotation_id}: its harvest record names no label")
        arrays = self.store.get_arrays(record.label_key)
        provenance = self.store.get_json(record.label_key.removesuffix(".npz") + ".json")
        image = self.images.fetch(provenance["image"]).pixels
        label, confidence = arrays["label"], arrays["confidence"].astype(np.float32)
        if image.shape != label.shape:
            raise ValueError(f"annotation {record.annotation_id}: image {image.shape} and label {label.shape} differ")
        _, features = learner_features(image, base, self.config)
        rng = np.random.default_rng([self.config.seed, record.annotation_id])
        samples = sample_pixels(features, label, confidence, rng, self.config.per_class)
        self.store.put_arrays(key, asdict(samples))
        return samples


class ProjectLearners:
    """``Predictor.for_project``: the served segmenter with the project's fast learner on top, if it has one.

    Args:
        store: Artefact store holding the learner states.
        config: Must equal the updater's (features and classifier).
        refresh_seconds: Least time between two reads of a project's state.
        clock: Monotonic time source (tests).
    """

    def __init__(
        self,
        store: ArtefactStore,
        config: FastLearnerConfig | None = None,
        refresh_seconds: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.config = config or FastLearnerConfig()
        self.refresh_seconds = refresh_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._states: dict[int, tuple[float, LearnerState | None]] = {}
        self._fitted: dict[int, tuple[str, PixelClassifier]] = {}

    def __call__(self, base: Segmenter, project: int) -> Segmenter:
        """``base`` with the project's learner when one exists for this very base version and feature set."""
        state = self._state(project)
        if state is None or state.base_version != base.version or state.features != FEATURE_SET:
            return base
        with self._lock:
            fitted = self._fitted.get(project)
            if fitted is None or fitted[0] != state.version:
                classifier = PixelClassifier.fit(load_training(self.store, state), len(base.catalogue), self.config)
                self._fitted[project] = fitted = (state.version, classifier)
        return FastLearnerSegmenter(base, fitted[1], state.version, self.config)

    def _state(self, project: int) -> LearnerState | None:
        with self._lock:
            read_at, state = self._states.get(project, (-float("inf"), None))
            if self._clock() - read_at < self.refresh_seconds:
                return state
        try:
            state = read_state(self.store, project)
        except Exception as exc:  # noqa: BLE001 - a store outage must not stop predictions: serve the FCN
            log.warning("project %s: cannot read the fast learner (%s); serving the FCN", project, exc)
            state = None
        with self._lock:
            self._states[project] = (self._clock(), state)
        return state


class FastLearning:
    """In the harvest worker: keeps each served project's learner current, its open tasks re-predicted
    and its ``model_version`` in Label Studio equal to the version served to it.

    Args:
        updater: Refits a project's learner; None: no fast learner (``SCRAIBER_FAST_LEARNER=false``),
            only the project's ``model_version`` is kept equal to the served FCN's.
        client: Label Studio (open tasks, posting predictions, the project's model version).
        predictor: Predicts with the served FCN and ``ProjectLearners`` on top.
        projects: The projects the backend serves.
    """

    def __init__(
        self, updater: FastLearnerUpdater | None, client: Any, predictor: Any, projects: Callable[[], list[int]]
    ) -> None:
        self.updater = updater
        self.client = client
        self.predictor = predictor
        self.projects = projects
        self.wake = threading.Event()

    def refresh(self) -> dict[int, str]:
        """Update every served project's learner; where the version served to a project is not the
        project's ``model_version`` in Label Studio (a new learner, a promotion, a new connection),
        re-predict its open tasks and set it. Returns the projects changed and their new versions."""
        from active_learning.repredict import repredict_open_tasks

        changed = {}
        for project in self.projects():
            if self.updater is not None:
                self.updater.update(project)
            version = self.predictor.model_version(project)
            if self.client.get_project(project).get("model_version") != version:
                repredict_open_tasks(self.client, self.predictor, project)
                changed[project] = version
        return changed

    def warm_up(self) -> None:
        """Load the served FCN and run its feature pass once, so the first correction does not pay for it."""
        if self.updater is not None:
            learner_features(np.zeros((64, 64), np.uint16), self.updater.base(), self.updater.config)

    def run(self, stop: threading.Event, interval: float = 60.0) -> None:
        """Refresh whenever :attr:`wake` is set (after harvests) or every ``interval`` s, until ``stop``."""
        try:
            self.warm_up()
        except Exception:  # noqa: BLE001 - a failed warm-up only costs time later
            log.exception("fast learner warm-up failed")
        while not stop.is_set():
            self.wake.wait(interval)
            self.wake.clear()
            if stop.is_set():
                return
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - keep learning alive; the next harvest or interval retries
                log.exception("fast learner refresh failed")
