"""The champion rule as a test: sign flips and bootstrap, the decision, the registry wiring, champion tiles."""

from __future__ import annotations

import math
import uuid

import numpy as np
import pytest

from active_learning.champion import (
    ChampionRule,
    bootstrap_lower_bound,
    decide,
    sign_flip_lower_bound,
    sign_flip_p_value,
)
from active_learning.harvest_log import LABEL, HarvestRecord
from active_learning.registry import TAG_VAL_PER_TILE, ModelRegistry
from active_learning.retrain import champion_tasks, held_out_tasks
from scraiber.settings import Settings
from tests.active_learning.test_tracking import log_version


def test_sign_flip_p_value_exact_for_few_tiles():
    # all 4 differences above the margin: only the all-plus sign pattern is as extreme -> 1/16
    assert sign_flip_p_value(np.array([0.1, 0.2, 0.3, 0.4]), margin=0.0) == pytest.approx(1 / 16)
    # one negative: patterns whose flipped mean >= observed mean
    d = np.array([0.3, 0.2, 0.1, -0.05])
    flips = np.array([[s0, s1, s2, s3] for s0 in (1, -1) for s1 in (1, -1) for s2 in (1, -1) for s3 in (1, -1)])
    expected = np.mean(flips @ d >= d.sum() - 1e-12)
    assert sign_flip_p_value(d, margin=0.0) == pytest.approx(expected)


def test_four_tiles_can_never_reject_at_five_percent():
    assert sign_flip_lower_bound(np.array([0.5, 0.5, 0.5, 0.5])) == -math.inf
    assert sign_flip_lower_bound(np.full(5, 0.5)) > 0.0  # 1/32 < 0.05


def test_lower_bounds_sit_below_the_mean_and_shrink_with_more_tiles():
    rng = np.random.default_rng(1)
    d20, d60 = rng.normal(0.03, 0.07, 20), rng.normal(0.03, 0.07, 60)
    for bound in (sign_flip_lower_bound, bootstrap_lower_bound):
        assert bound(d20) < d20.mean()
        assert d60.mean() - bound(d60) < d20.mean() - bound(d20)


def test_decide_promotes_a_consistent_gain_and_refuses_a_loss():
    tiles = [f"t{i}" for i in range(16)]
    champion = dict.fromkeys(tiles, 0.6)
    better = {t: 0.6 + 0.02 + 0.01 * (i % 3) for i, t in enumerate(tiles)}
    worse = {t: 0.6 - 0.05 + 0.01 * (i % 3) for i, t in enumerate(tiles)}
    assert decide(champion, better).promote
    refused = decide(champion, worse)
    assert refused.tested and not refused.promote and refused.mean_difference < -0.03
    guarded = decide(champion, better, champion_synthetic=0.8, candidate_synthetic=0.6)
    assert not guarded.promote and "forgets" in guarded.reason


def test_decide_pairs_common_tiles_only_and_needs_enough_of_them():
    champion = {f"t{i}": 0.5 for i in range(20)}
    candidate = {f"t{i}": 0.9 for i in range(10)} | {"other": 0.0}
    decision = decide(champion, candidate)
    assert not decision.tested and decision.tiles == 10 and "needs 15" in decision.reason
    assert decide(champion, candidate, ChampionRule(min_tiles=10)).promote


def test_false_promotion_rate_is_near_alpha_at_the_margin():
    rng = np.random.default_rng(7)
    rule = ChampionRule(min_tiles=15)
    promoted = 0
    for _ in range(300):  # the candidate is exactly at the margin: H0 holds
        champion = {str(i): 0.6 for i in range(20)}
        candidate = {str(i): 0.6 - 0.01 + v for i, v in enumerate(rng.normal(0, 0.07, 20))}
        promoted += decide(champion, candidate, rule).promote
    assert promoted / 300 < 0.09


def test_registry_uses_the_test_when_both_have_per_tile_results(tmp_path):
    settings = Settings(
        _env_file=None, model_name=f"test-{uuid.uuid4().hex[:10]}", data_dir=tmp_path, mlflow_tracking_uri=None
    )
    registry = ModelRegistry.from_settings(settings)
    tiles = {f"t{i}": 0.5 + 0.01 * (i % 4) for i in range(16)}
    v1, _, _ = log_version(settings, 1)
    assert registry.promote_if_not_worse(v1, 0.5, "set", per_tile=tiles).promoted
    assert TAG_VAL_PER_TILE in registry.version(v1).tags
    # higher pooled score, but 0.02 worse on every champion tile: the test refuses it
    v2, _, _ = log_version(settings, 2)
    worse = {k: v - 0.02 for k, v in tiles.items()}
    decision = registry.promote_if_not_worse(v2, 0.9, "set", per_tile=worse)
    assert not decision.promoted and "lower bound" in decision.reason
    # without per-tile results the point estimates decide, and the reason says why
    v3, _, _ = log_version(settings, 3)
    fallback = registry.promote_if_not_worse(v3, 0.6, "set")
    assert fallback.promoted and "point estimates" in fallback.reason


def test_every_second_held_out_task_only_judges_champions():
    history = [
        HarvestRecord(annotation_id=i, updated_at="x", project_id=1, task_id=100 + i, kind=LABEL) for i in range(30)
    ]
    held = held_out_tasks(history)
    judges = champion_tasks(history)
    assert held == {100, 105, 110, 115, 120, 125}
    assert judges == {105, 115, 125}
