"""Query strategies: scorers on tiny probability arrays with exact values, selectors, the score store."""

from __future__ import annotations

import math

import numpy as np
import pytest

from active_learning.strategies import ScoredTask, create_scorer, create_selector, scorer_names, selector_names
from active_learning.strategies.features import feature_names, task_features
from active_learning.strategies.mc_dropout import mutual_information_map
from active_learning.strategies.scoring import score_tasks
from active_learning.strategies.store import ScoreRow, ScoreStore
from label_config import load_catalogue
from ml_backend.segmenters.base import Segmenter

CATALOGUE = load_catalogue()


class Fixed(Segmenter):
    """Returns the same probabilities for any image."""

    def __init__(self, probs: np.ndarray, version: str = "fixed-1") -> None:
        self.catalogue, self.version, self.probs, self.calls = CATALOGUE, version, probs, 0

    def predict_proba(self, image, progress=False):
        self.calls += 1
        return self.probs.copy()


class Sampling(Fixed):
    """Stochastic passes: one-hot on class (t mod 2) at every pixel when ``dropout`` > 0."""

    def predict_proba_samples(self, image, n, dropout=0.2, seed=0):
        c, h, w = self.probs.shape
        if dropout == 0:
            return np.repeat(self.probs[None], n, axis=0)
        out = np.zeros((n, c, h, w), np.float32)
        for t in range(n):
            out[t, t % 2] = 1.0
        return out


def uniform(c=6, h=2, w=3):
    return np.full((c, h, w), 1.0 / c, np.float32)


def one_hot(c=6, h=2, w=3, k=2):
    p = np.zeros((c, h, w), np.float32)
    p[k] = 1.0
    return p


IMAGE = np.arange(6, dtype=np.uint16).reshape(2, 3)


def test_registries_list_valid_names_in_errors():
    assert scorer_names() == [
        "class-weighted-entropy", "cost-aware", "ensemble", "entropy", "margin", "mc-dropout", "random", "top-k-entropy",
    ]  # fmt: skip
    assert selector_names() == ["badge", "diverse", "top-k"]
    with pytest.raises(
        ValueError, match="valid query strategies: class-weighted-entropy, cost-aware, ensemble, entropy"
    ):
        create_scorer("bald")
    with pytest.raises(ValueError, match="valid selectors: badge, diverse, top-k"):
        create_selector("best")
    with pytest.raises(ValueError, match="does not accept"):
        create_scorer("entropy", seed=3)


def test_entropy_is_one_for_uniform_and_zero_for_one_hot():
    scorer = create_scorer("entropy")
    assert scorer.score(IMAGE, Fixed(uniform()), uniform()) == pytest.approx(1.0, abs=1e-6)
    assert scorer.score(IMAGE, Fixed(one_hot()), one_hot()) == pytest.approx(0.0, abs=1e-6)
    half = np.zeros((2, 1, 2), np.float32)
    half[:, 0, 0] = 0.5
    half[0, 0, 1] = 1.0
    assert scorer.score(IMAGE[:1, :2], Fixed(half), half) == pytest.approx(0.5, abs=1e-6)


def test_scorers_reuse_given_probabilities_and_predict_only_without():
    segmenter = Fixed(uniform())
    create_scorer("entropy").score(IMAGE, segmenter, uniform())
    assert segmenter.calls == 0
    assert create_scorer("entropy").score(IMAGE, segmenter) == pytest.approx(1.0, abs=1e-6)
    assert segmenter.calls == 1
    with pytest.raises(ValueError, match="do not fit"):
        create_scorer("margin").score(IMAGE, segmenter, uniform(h=3))


def test_margin_exact_values():
    scorer = create_scorer("margin")
    assert scorer.score(IMAGE, Fixed(one_hot()), one_hot()) == pytest.approx(0.0)
    assert scorer.score(IMAGE, Fixed(uniform()), uniform()) == pytest.approx(1.0)
    p = np.zeros((3, 1, 2), np.float32)
    p[:, 0, 0] = (0.7, 0.2, 0.1)  # margin 0.5
    p[:, 0, 1] = (0.4, 0.4, 0.2)  # margin 0
    assert scorer.score(IMAGE[:1, :2], Fixed(p), p) == pytest.approx((0.5 + 1.0) / 2)


def test_mutual_information_exact_values():
    agree = np.repeat(uniform(c=2)[None], 4, axis=0)
    assert np.allclose(mutual_information_map(agree), 0.0, atol=1e-6)  # uncertain but agreeing: no epistemic part
    disagree = np.zeros((2, 2, 1, 1), np.float32)
    disagree[0, 0] = disagree[1, 1] = 1.0  # two confident samples that disagree
    assert mutual_information_map(disagree)[0, 0] == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="T, C, H, W"):
        mutual_information_map(uniform())


def test_mc_dropout_disagreement_with_dropout_and_none_without():
    segmenter = Sampling(one_hot())
    assert create_scorer("mc-dropout", samples=4, dropout=0.5).score(IMAGE, segmenter) == pytest.approx(
        math.log(2) / math.log(6), abs=1e-6
    )
    assert create_scorer("mc-dropout", samples=4, dropout=0.0).score(IMAGE, segmenter) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError, match="at least 2 samples"):
        create_scorer("mc-dropout", samples=1)


def test_mc_dropout_falls_back_to_entropy_without_stochastic_passes(caplog):
    scorer = create_scorer("mc-dropout")
    assert scorer.score(IMAGE, Fixed(uniform()), uniform()) == pytest.approx(1.0, abs=1e-6)
    scorer.score(IMAGE, Fixed(uniform()), uniform())
    assert sum("scoring by entropy instead" in r.message for r in caplog.records) == 1


def test_mc_dropout_on_a_real_fcn(tmp_path):
    from ml_backend.fcn import FCNConfig, FCNSegmenter, save_fcn

    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    config = FCNConfig.for_architecture("fpn-mobilenet_v2", CATALOGUE.names, tile=64, overlap=16)
    save_fcn(tmp_path / "model", config.build().state_dict(), config)
    segmenter = FCNSegmenter(CATALOGUE, tmp_path / "model", device="cpu", runtime="eager", threads=1)
    image = np.random.default_rng(0).integers(0, 4000, (96, 80)).astype(np.uint16)
    samples = segmenter.predict_proba_samples(image, 3, dropout=0.3, seed=1)
    assert samples.shape == (3, len(CATALOGUE), 96, 80)
    np.testing.assert_allclose(samples.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(samples, segmenter.predict_proba_samples(image, 3, dropout=0.3, seed=1))
    with_dropout = create_scorer("mc-dropout", samples=3, dropout=0.3).score(image, segmenter)
    without = create_scorer("mc-dropout", samples=3, dropout=0.0).score(image, segmenter)
    assert with_dropout > 1e-4
    assert without == pytest.approx(0.0, abs=1e-6)
    plain = segmenter.predict_proba_samples(image, 1, dropout=0.0)[0]
    np.testing.assert_allclose(plain, segmenter.predict_proba(image), atol=1e-4)


def test_random_scorer_is_seeded_per_image_not_per_call_order():
    images = [np.full((4, 4), v, np.uint16) for v in range(5)]
    first = [create_scorer("random", seed=1).score(im, Fixed(uniform(h=4, w=4))) for im in images]
    again = [create_scorer("random", seed=1).score(im, Fixed(uniform(h=4, w=4))) for im in reversed(images)]
    other = [create_scorer("random", seed=2).score(im, Fixed(uniform(h=4, w=4))) for im in images]
    assert first == list(reversed(again))
    assert first != other
    assert all(0.0 <= v < 1.0 for v in first) and len(set(first)) == 5


def test_top_k_orders_by_score_then_task_id():
    tasks = [ScoredTask(5, 0.2), ScoredTask(3, 0.9), ScoredTask(4, 0.5), ScoredTask(1, 0.5)]
    assert [t.task_id for t in create_selector("top-k").select(tasks, 3)] == [3, 1, 4]
    assert create_selector("top-k").select(tasks, 0) == []
    with pytest.raises(ValueError, match="non-negative"):
        create_selector("top-k").select(tasks, -1)


def spread_example() -> list[ScoredTask]:
    """Three near-identical high scorers at the origin, two lower ones far apart."""
    points = [
        (0.0, 0.0, 0.90),
        (0.1, 0.0, 0.89),
        (0.0, 0.1, 0.88),
        (10.0, 0.0, 0.60),
        (0.0, 10.0, 0.50),
        (5.0, 5.0, 0.1),
    ]
    return [ScoredTask(100 + i, s, np.array([x, y], np.float32)) for i, (x, y, s) in enumerate(points)]


def test_diverse_selection_picks_spread_out_tasks():
    tasks = spread_example()
    assert [t.task_id for t in create_selector("top-k").select(tasks, 3)] == [100, 101, 102]
    assert [t.task_id for t in create_selector("diverse", diversity=0.5).select(tasks, 3)] == [100, 103, 104]
    assert [t.task_id for t in create_selector("diverse", diversity=0.0).select(tasks, 3)] == [100, 101, 102]
    assert [t.task_id for t in create_selector("diverse", diversity=1.0).select(tasks, 4)] == [100, 103, 104, 105]
    assert len(create_selector("diverse").select(tasks, 10)) == 6


def test_diverse_selection_rejects_mixed_feature_lengths():
    tasks = [ScoredTask(1, 0.5, np.zeros(2)), ScoredTask(2, 0.4, np.zeros(3))]
    with pytest.raises(ValueError, match="one length"):
        create_selector("diverse").select(tasks, 2)
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        create_selector("diverse", diversity=1.5)


def test_task_features():
    probs = np.zeros((6, 2, 2), np.float32)
    probs[1, :, :1] = 1.0
    probs[4, :, 1:] = 1.0
    features = task_features(np.array([[0, 100], [0, 100]], np.uint16), probs)
    assert len(features) == len(feature_names(CATALOGUE.names)) == 6 + 8 + 1
    np.testing.assert_allclose(features[:6], [0, 0.5, 0, 0, 0.5, 0])
    np.testing.assert_allclose(features[6:14], [0.5, 0, 0, 0, 0, 0, 0, 0.5])
    assert features[14] == pytest.approx(0.0, abs=1e-6)


def test_score_store_round_trip_and_latest_version(tmp_path):
    store = ScoreStore.from_url(f"sqlite:///{tmp_path / 'events.sqlite'}")
    store.put(
        [
            ScoreRow(1, 10, "m1", "entropy", 0.3, np.array([1.0, 2.0])),
            ScoreRow(1, 11, "m1", "entropy", 0.7, np.array([3.0, 4.0])),
        ]
    )
    store.put([ScoreRow(1, 10, "m1", "entropy", 0.4, np.array([1.5, 2.0]))])  # replaces
    store.put([ScoreRow(1, 10, "m1", "margin", 0.9, np.zeros(2)), ScoreRow(2, 10, "m1", "entropy", 0.1, np.zeros(2))])
    rows = store.scored_tasks(1, "entropy")
    assert [(t.task_id, t.score) for t in rows] == [(10, 0.4), (11, 0.7)]
    np.testing.assert_allclose(rows[0].features, [1.5, 2.0])
    assert [t.task_id for t in store.scored_tasks(1, "entropy", tasks=[11])] == [11]
    store.put([ScoreRow(1, 10, "m2", "entropy", 0.2, np.zeros(2))])
    assert store.latest_version(1, "entropy") == "m2"
    assert [t.score for t in store.scored_tasks(1, "entropy")] == [0.2]
    assert [t.score for t in store.scored_tasks(1, "entropy", model_version="m1")] == [0.4, 0.7]
    assert store.scored_tasks(3, "entropy") == []


def test_scoring_pass_predicts_once_per_task_and_stores_every_strategy(tmp_path):
    store = ScoreStore.from_url(f"sqlite:///{tmp_path / 'events.sqlite'}")
    segmenter = Fixed(uniform(h=4, w=4))
    images = {1: np.zeros((4, 4), np.uint16), 2: np.ones((4, 4), np.uint16)}
    scorers = [create_scorer("entropy"), create_scorer("margin"), create_scorer("random")]
    result = score_tasks(7, [{"id": 1}, {"id": 2}], lambda task: images[task["id"]], segmenter, scorers, store)
    assert segmenter.calls == 2
    assert result[1]["entropy"] == pytest.approx(1.0, abs=1e-6) and result[1]["margin"] == pytest.approx(1.0)
    stored = store.scored_tasks(7, "random")
    assert [t.task_id for t in stored] == [1, 2]
    assert [t.score for t in stored] == [result[1]["random"], result[2]["random"]]
    assert len(stored[0].features) == 6 + 8 + 1
