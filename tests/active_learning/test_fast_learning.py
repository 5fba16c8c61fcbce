"""Per-project fast learners: updated from harvested labels, stored without pickle, served by project."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from active_learning.fast_learning import FastLearnerUpdater, ProjectLearners, read_state, state_key
from active_learning.harvest import Harvester
from active_learning.harvest_log import HarvestLog
from active_learning.store import LocalArtefactStore
from label_config import load_catalogue
from ml_backend.label_map import control_target
from ml_backend.segmenters.fast_learner import FEATURE_SET, FastLearnerConfig
from tests.active_learning.fake_label_studio import MINERALS_XML, FakeLabelStudio, brush_result
from tests.ml_backend.test_fast_learner import Blind, spots

CAT = load_catalogue()
LABELS = control_target(MINERALS_XML, CAT).labels
SMALL = FastLearnerConfig(per_class=300, n_estimators=12, max_depth=8, n_jobs=1)


@dataclass
class Fetched:
    pixels: np.ndarray


class Images:
    """The task images by URL (what ImageSource fetches from Label Studio in the backend)."""

    def __init__(self) -> None:
        self.by_url: dict[str, np.ndarray] = {}
        self.fetches = 0

    def fetch(self, url: str, pixel_size_um: float | None = None) -> Fetched:
        self.fetches += 1
        return Fetched(self.by_url[url])


@pytest.fixture
def world(tmp_path):
    ls, images = FakeLabelStudio(), Images()
    harvests = HarvestLog.from_url(f"sqlite:///{tmp_path / 'events.sqlite'}")
    store = LocalArtefactStore(tmp_path / "artefacts")
    harvester = Harvester(ls, store, harvests, CAT, b"k" * 32)
    project = ls.add_project()
    annotations = []
    for seed in (1, 2):
        task = ls.add_task(project)
        image, label = spots(seed)
        images.by_url[ls.tasks[task]["data"]["image"]] = image
        annotations.append(ls.annotate(task, brush_result(label, LABELS), lead_time=20.0))
        harvester.harvest(annotations[-1])
    base = Blind()
    updater = FastLearnerUpdater(harvests, store, images, lambda: base, len(CAT), SMALL)
    return {"ls": ls, "images": images, "store": store, "harvester": harvester, "project": project,
            "annotations": annotations, "base": base, "updater": updater}  # fmt: skip


def test_update_fits_the_projects_learner_once_and_the_web_side_serves_it(world):
    project, store, base = world["project"], world["store"], world["base"]
    state = world["updater"].update(project)
    assert state.version.startswith(f"blind-1+fast-p{project}-") and state.base_version == "blind-1"
    assert len(state.labels) == 2 and set(state.classes) == {1, 5} and state.pixels == 4 * 300
    assert read_state(store, project) == state and store.exists(state.training_key)
    fetched = world["images"].fetches
    assert world["updater"].update(project) == state and world["images"].fetches == fetched  # nothing new: no refit

    learners = ProjectLearners(store, SMALL, refresh_seconds=0)
    served = learners(base, project)
    assert served.version == state.version
    other, truth = spots(7)
    assert np.mean(served.segment(other)[truth == 5] == 5) > 0.9
    assert learners(base, project + 1) is base  # a project without labels keeps the FCN


def test_a_new_fcn_version_ignores_the_old_learner_until_the_worker_refits_it(world):
    project, store = world["project"], world["store"]
    first = world["updater"].update(project)
    newer = Blind()
    newer.version = "blind-2"
    learners = ProjectLearners(store, SMALL, refresh_seconds=0)
    assert learners(newer, project) is newer
    world["updater"].base = lambda: newer
    second = world["updater"].update(project)
    assert second.base_version == "blind-2" and second.version != first.version
    assert not store.exists(first.training_key)
    assert learners(newer, project).version == second.version


def test_a_learner_stored_with_other_features_is_not_served_until_the_worker_refits_it(world):
    """After an upgrade that changed the pixel features, stored pixels of the old features would feed
    the forest numbers it never learnt from: the state is ignored and the next update redoes it."""
    project, store, base = world["project"], world["store"], world["base"]
    first = world["updater"].update(project)
    stored = store.get_json(state_key(project))
    del stored["features"]  # as written before feature sets were named
    store.put_json(state_key(project), stored)
    learners = ProjectLearners(store, SMALL, refresh_seconds=0)
    assert read_state(store, project).features == "" and learners(base, project) is base
    fetched = world["images"].fetches
    second = world["updater"].update(project)
    assert second.features == FEATURE_SET and learners(base, project).version == second.version
    assert second.version == first.version and world["images"].fetches == fetched  # cached pixels of this set


def test_retracting_every_label_removes_the_learner(world):
    project, store = world["project"], world["store"]
    world["updater"].update(project)
    for annotation in world["annotations"]:
        world["harvester"].retract(annotation)
    assert world["updater"].update(project) is None
    assert not store.exists(state_key(project))
    assert ProjectLearners(store, SMALL, refresh_seconds=0)(world["base"], project) is world["base"]
