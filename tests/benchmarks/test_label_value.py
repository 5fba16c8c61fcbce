"""Implicit vs explicit labels at the same budget: tiles from the recorded session, training plumbing."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from active_learning.training import TrainConfig
from benchmarks.label_value import explicit_tiles, implicit_tiles, learning_curve
from benchmarks.simulated_expert import ExpertConfig
from tests.tracking_analysis.record_session import DATA
from tracking_analysis.learning_curve import validate
from tracking_analysis.records import harvest_snapshot
from tracking_analysis.snapshot import Snapshot
from tracking_analysis.truth import TruthLookup

A = "u-55102114d772a6ae"


@pytest.fixture(scope="module")
def tiles():
    snapshot = Snapshot.load(DATA / "session.json")
    truth = TruthLookup(DATA / "truth")
    truths = {t.id: truth.classes({"id": t.id, "data": {"truth": t.truth}}) for t in snapshot.tasks}
    images = {t.id: np.zeros((256, 256), np.uint16) for t in snapshot.tasks}
    implicit = implicit_tiles(harvest_snapshot(snapshot), images, A)
    return implicit, explicit_tiles(implicit, truths), truths


def test_tiles_at_the_same_time_budget(tiles):
    implicit, explicit, truths = tiles
    assert [t.task_id for t in implicit] == [1, 2, 3] and [t.seconds for t in implicit] == [88.64, 89.587, 87.558]
    assert [t.task_id for t in explicit] == [1, 2, 3]
    for i, e in zip(implicit, explicit):
        assert e.seconds <= i.seconds and e.kind == "explicit" and i.kind == "implicit"
        painted = e.label != 255
        assert (e.label[painted] == truths[e.task_id][painted]).all()  # explicit: right where painted...
        assert 0.5 < painted.mean() < 1.0  # ...but not everywhere in the time a correction took
        assert (e.weight == painted).all() and (i.weight > 0).all()
    no_time = explicit_tiles(implicit[:1], truths, ExpertConfig(mode="explicit", time_noise=0.0, overhead_seconds=100))
    assert (no_time[0].label == 255).all()


def test_learning_curve_trains_each_kind_and_budget(tiles):
    implicit, explicit, _ = tiles
    calls = []

    def train(config, settings, out, register, harvested, progress):
        calls.append((config.harvest_ratio, register, len(harvested)))
        return SimpleNamespace(val_miou=sum(float(s.weight.mean()) for s in harvested) / 10)

    config = TrainConfig(arch="unet-mobilenet_v2", steps=1)
    table = validate(learning_curve({"implicit": implicit, "explicit": explicit}, [1, 3], config, train=train))
    assert calls == [(1.0, False, 1), (1.0, False, 3), (1.0, False, 1), (1.0, False, 3)]
    assert table[["label_kind", "n_labelled_tiles"]].values.tolist() == [
        ["explicit", 1],
        ["explicit", 3],
        ["implicit", 1],
        ["implicit", 3],
    ]
    assert table["seconds"].tolist()[2:] == [88.64, pytest.approx(88.64 + 89.587 + 87.558)]
    with pytest.raises(ValueError, match="budget 4 tiles: implicit has 3"):
        learning_curve({"implicit": implicit}, [4], config, train=train)


@pytest.mark.slow
def test_learning_curve_with_real_training(tiles):
    implicit, explicit, _ = tiles
    config = TrainConfig(
        arch="unet-mobilenet_v2", steps=2, batch_size=2, patch=64, section_size=128, val_sections=1, val_size=64,
        val_every=2, threads=1, amp=False, device="cpu", tile=128, overlap=32,
    )  # fmt: skip
    table = validate(learning_curve({"implicit": implicit[:1], "explicit": explicit[:1]}, [1], config))
    assert len(table) == 2 and table["mIoU"].between(0, 1).all()
