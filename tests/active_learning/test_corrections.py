"""Correction arithmetic on hand-made class maps: exact counts, confusion and confidence."""

import numpy as np
import pytest

from active_learning.corrections import NOTHING, ConfidenceModel, compare

N = NOTHING
PREDICTED = np.array(
    [
        [0, 0, 1, 1, N],
        [0, 0, 1, 1, N],
        [2, 2, 2, N, N],
        [2, 2, 2, N, N],
    ],
    dtype=np.uint8,
)
FINAL = np.array(
    [
        [0, 0, 1, 2, N],  # (0,3): 1 -> 2 relabelled
        [0, N, 1, 1, 3],  # (1,1): 0 erased (removed); (1,4): 3 added
        [2, 2, 2, N, N],
        [1, 2, 2, N, 3],  # (3,0): 2 -> 1 relabelled; (3,4): 3 added
    ],
    dtype=np.uint8,
)


def test_confusion_and_per_class_counts_are_exact():
    correction = compare(PREDICTED, FINAL, n_classes=4, lead_time=30.0)
    assert correction.confusion.tolist() == [
        [3, 0, 0, 0, 1],
        [0, 3, 1, 0, 0],
        [0, 1, 5, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 2, 4],
    ]
    assert correction.class_counts(0) == {
        "kept": 3, "added": 0, "removed": 1, "relabelled_out": 0, "relabelled_in": 0, "predicted": 4, "final": 3,
    }  # fmt: skip
    assert correction.class_counts(1) == {
        "kept": 3, "added": 0, "removed": 0, "relabelled_out": 1, "relabelled_in": 1, "predicted": 4, "final": 4,
    }  # fmt: skip
    assert correction.class_counts(2) == {
        "kept": 5, "added": 0, "removed": 0, "relabelled_out": 1, "relabelled_in": 1, "predicted": 6, "final": 6,
    }  # fmt: skip
    assert correction.class_counts(3) == {
        "kept": 0, "added": 2, "removed": 0, "relabelled_out": 0, "relabelled_in": 0, "predicted": 0, "final": 2,
    }  # fmt: skip
    assert correction.edited_pixels == 5
    assert correction.touched_pixels == 16
    stats = correction.stats(["A", "B", "C", "D"])
    assert stats["edit_fraction"] == 5 / 16
    assert stats["labelled_pixels"] == 15 and stats["predicted_pixels"] == 14 and stats["pixels"] == 20
    assert stats["accepted_unchanged"] is False and stats["attention"] == 1.0
    assert stats["per_class"]["D"]["added"] == 2


def test_implicit_label_is_the_final_map_and_erased_pixels_stay_unlabelled():
    correction = compare(PREDICTED, FINAL, n_classes=4)
    np.testing.assert_array_equal(correction.label, FINAL)
    assert correction.label[1, 1] == NOTHING  # predicted 0, erased, not repainted: no label, not background
    assert correction.confidence[1, 1] == 0.0
    assert (correction.confidence[FINAL == NOTHING] == 0).all()
    assert (correction.confidence[FINAL != NOTHING] > 0).all()


def test_confidence_is_one_on_edits_and_decays_with_distance():
    model = ConfidenceModel(length_scale_px=4.0, untouched=0.5)
    predicted = np.full((1, 9), 1, np.uint8)
    final = predicted.copy()
    final[0, 0] = 2  # one relabelled pixel at the left end
    correction = compare(predicted, final, n_classes=3, lead_time=0.5, model=model)
    distance = np.arange(9, dtype=np.float64)
    proximity = np.exp(-distance / 4.0)
    expected = (proximity + (1 - proximity) * 0.5 * 1.0).astype(np.float32)  # edits: attention 1
    np.testing.assert_array_equal(correction.confidence[0], expected)
    assert correction.confidence[0, 0] == 1.0
    assert np.all(np.diff(correction.confidence[0]) < 0)


def test_removed_pixels_count_as_edits_for_their_neighbours():
    predicted = np.full((1, 5), 1, np.uint8)
    final = predicted.copy()
    final[0, 2] = NOTHING
    correction = compare(predicted, final, n_classes=2, model=ConfidenceModel(length_scale_px=1.0, untouched=0.0))
    expected = np.array([np.exp(-2.0), np.exp(-1.0), 0.0, np.exp(-1.0), np.exp(-2.0)]).astype(np.float32)
    np.testing.assert_array_equal(correction.confidence[0], expected)


@pytest.mark.parametrize(
    ("lead_time", "attention"),
    [(0.0, 0.3), (1.0, 0.3 + 0.7 * 0.1), (5.0, 0.3 + 0.7 * 0.5), (10.0, 1.0), (600.0, 1.0), (None, 0.3 + 0.7 * 0.5)],
)
def test_unedited_acceptance_is_trusted_by_time_spent(lead_time, attention):
    correction = compare(PREDICTED, PREDICTED, n_classes=4, lead_time=lead_time)
    assert correction.edited_pixels == 0
    assert correction.attention == pytest.approx(attention, abs=1e-12)
    labelled = PREDICTED != NOTHING
    assert (correction.confidence[labelled] == np.float32(0.6 * correction.attention)).all()
    assert (correction.confidence[~labelled] == 0).all()
    assert correction.stats(["A", "B", "C", "D"])["accepted_unchanged"] is True


def test_a_hasty_acceptance_is_less_trusted_than_a_careful_one():
    hasty = compare(PREDICTED, PREDICTED, n_classes=4, lead_time=0.8)
    careful = compare(PREDICTED, PREDICTED, n_classes=4, lead_time=45.0)
    assert hasty.confidence.max() < careful.confidence.max() == np.float32(0.6)


def test_no_prediction_means_every_painted_pixel_was_added():
    nothing = np.full(FINAL.shape, NOTHING, np.uint8)
    correction = compare(nothing, FINAL, n_classes=4)
    assert correction.confusion[:4].sum() == 0
    assert correction.confusion[4, :4].tolist() == [3, 4, 6, 2]
    assert (correction.confidence[FINAL != NOTHING] == 1.0).all()


@pytest.mark.parametrize(
    ("predicted", "final", "message"),
    [
        (PREDICTED.astype(np.int32), FINAL, "predicted must be a 2-D uint8"),
        (PREDICTED, FINAL[:, :4], "differ in shape"),
        (PREDICTED, np.where(FINAL == 3, 7, FINAL).astype(np.uint8), "final holds class 7"),
        (PREDICTED[None], FINAL, "predicted must be a 2-D uint8"),
    ],
)
def test_bad_inputs_are_refused_with_the_reason(predicted, final, message):
    with pytest.raises(ValueError, match=message):
        compare(predicted, final, n_classes=4)
