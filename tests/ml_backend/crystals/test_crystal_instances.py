"""Crystal instances from phase masks: splitting, cracks, borders, fragments (small hand-made arrays)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.draw import disk, polygon

from label_config.catalogue import load_catalogue
from ml_backend.crystals.config import CrystalConfig, crystal_class_indices
from ml_backend.crystals.evaluate import match_instances
from ml_backend.crystals.instances import label_crystals, square_closing, validate_mask

CAT = load_catalogue()
EPOXY, GROUNDMASS, PLAG, CPX, OLIVINE, OXIDE = (
    CAT.index_of(n) for n in ("Epoxy", "Groundmass", "Plagioclase", "Clinopyroxene", "Olivine", "Fe-Ti oxide")
)
CRYSTALS = crystal_class_indices(CAT, CrystalConfig())


def _canvas(shape=(80, 120)) -> np.ndarray:
    return np.full(shape, GROUNDMASS, np.uint8)


def _disc(mask: np.ndarray, centre: tuple[int, int], radius: float, value: int) -> None:
    mask[disk(centre, radius, shape=mask.shape)] = value


def test_crystal_classes_default_leave_out_groundmass_and_epoxy():
    assert CRYSTALS == [PLAG, CPX, OLIVINE, OXIDE]
    assert crystal_class_indices(CAT, CrystalConfig(crystal_classes=("olivine", "Fe-Ti oxide"))) == [OLIVINE, OXIDE]


def test_unknown_crystal_class_lists_the_catalogue():
    with pytest.raises(ValueError, match="unknown crystal class 'Quartz'.*Olivine"):
        crystal_class_indices(CAT, CrystalConfig(crystal_classes=("Quartz",)))


def test_two_touching_discs_are_split_into_two():
    mask = _canvas()
    _disc(mask, (40, 40), 20, OLIVINE)
    _disc(mask, (40, 76), 20, OLIVINE)  # centres 36 px apart: they overlap by 4 px
    assert ndi.label(mask == OLIVINE)[1] == 1
    inst = label_crystals(mask, CAT)
    assert inst.count == 2
    assert np.count_nonzero(inst.labels) == np.count_nonzero(mask == OLIVINE)
    left, right = inst.labels[40, 30], inst.labels[40, 86]
    assert left != right and left > 0 and right > 0
    # the cut is the neck: column 58 is equidistant, every other column goes to its own disc
    assert set(np.unique(inst.labels[:, :58])) == {0, left} and set(np.unique(inst.labels[:, 59:])) == {0, right}


def test_disc_cut_by_a_one_pixel_crack_stays_one_crystal():
    mask = _canvas()
    _disc(mask, (40, 60), 25, OLIVINE)
    mask[:, 58] = EPOXY  # a straight epoxy-filled crack right through it
    assert ndi.label(mask == OLIVINE)[1] == 2
    inst = label_crystals(mask, CAT)
    assert inst.count == 1
    assert inst.labels[40, 58] == 1  # the crack belongs to the crystal it cuts
    assert np.count_nonzero(inst.labels) == len(disk((40, 60), 25)[0])
    # without crack closing the same mask falls apart: the test can fail
    assert label_crystals(mask, CAT, CrystalConfig(max_crack_width_px=0)).count == 2


def test_cracks_wider_than_the_limit_split():
    mask = _canvas()
    _disc(mask, (40, 60), 25, OLIVINE)
    mask[:, 55:61] = EPOXY  # 6 px: a gap, not a crack
    assert label_crystals(mask, CAT, CrystalConfig(max_crack_width_px=3)).count == 2


def test_border_flag():
    mask = _canvas()
    _disc(mask, (40, 5), 15, OLIVINE)  # cut by the left edge
    _disc(mask, (40, 70), 15, OLIVINE)
    inst = label_crystals(mask, CAT)
    assert inst.count == 2
    flags = {int(inst.labels[40, c]): bool(inst.touches_border[inst.labels[40, c]]) for c in (5, 70)}
    assert sorted(flags.values()) == [False, True]
    assert flags[int(inst.labels[40, 5])] is True
    assert inst.touches_border[0] == np.False_


def test_fragments_below_min_area_are_dropped():
    mask = _canvas()
    mask[10:13, 10:13] = OXIDE  # 9 px
    mask[30:34, 30:34] = OXIDE  # 16 px
    inst = label_crystals(mask, CAT, CrystalConfig(min_area_px=12))
    assert inst.count == 1 and np.count_nonzero(inst.labels) == 16
    assert label_crystals(mask, CAT, CrystalConfig(min_area_px=9)).count == 2


def test_two_minerals_in_contact_are_two_crystals_of_their_classes():
    mask = _canvas()
    mask[20:60, 20:60] = OLIVINE
    mask[20:60, 60:100] = CPX
    inst = label_crystals(mask, CAT)
    assert inst.count == 2
    assert sorted(inst.class_index[1:].tolist()) == sorted([OLIVINE, CPX])
    assert inst.class_index[inst.labels[40, 30]] == OLIVINE and inst.class_index[inst.labels[40, 90]] == CPX


def test_inclusion_is_its_own_crystal_and_not_the_hosts_rim():
    mask = _canvas()
    _disc(mask, (40, 60), 30, OLIVINE)
    mask[38:43, 58:63] = OXIDE  # 25 px inclusion at the centre
    inst = label_crystals(mask, CAT)
    assert inst.count == 2
    host = inst.labels[40, 40]
    assert (
        inst.class_index[host] == OLIVINE and np.count_nonzero(inst.labels == host) == len(disk((40, 60), 30)[0]) - 25
    )
    # depth around the inclusion is that of the crystal's core, not of a rim
    assert inst.depth[40, 57] == 27 and inst.max_depth[host] == 27  # 30 px radius, 3 px off the centre


def test_thin_tilted_lath_is_not_cut_into_pieces():
    mask = _canvas((120, 120))
    rr, cc = polygon(
        np.array([10, 14, 108, 104]), np.array([14, 10, 104, 108]), mask.shape
    )  # 5 px wide, 130 long, 45 degrees
    mask[rr, cc] = PLAG
    inst = label_crystals(mask, CAT)
    assert inst.count == 1


def test_depth_is_distance_to_the_outline_and_max_depth_the_inscribed_radius():
    mask = _canvas()
    mask[20:41, 30:51] = CPX  # 21 x 21 square
    inst = label_crystals(mask, CAT)
    assert inst.depth[20, 40] == 1.0 and inst.depth[30, 40] == 11.0
    assert inst.max_depth[1] == 11.0
    assert inst.depth[0, 0] == 0.0


def test_square_closing_matches_scipy():
    rng = np.random.default_rng(3)
    a = rng.random((60, 70)) < 0.4
    ref = ndi.minimum_filter(
        ndi.maximum_filter(a.view(np.uint8), size=5, mode="constant", cval=0), size=5, mode="constant", cval=1
    )
    np.testing.assert_array_equal(square_closing(a, 5), ref.view(bool))


@pytest.mark.parametrize(
    "mask, message",
    [
        (np.zeros((4, 4), np.uint16), "uint8"),
        (np.zeros((4,), np.uint8), "2-D"),
        (np.full((4, 4), 9, np.uint8), r"indices \[9\]"),
    ],
)
def test_bad_masks_are_refused(mask, message):
    with pytest.raises(ValueError, match=message):
        validate_mask(mask, len(CAT))


def test_match_instances_counts():
    truth = np.zeros((20, 20), np.int32)
    truth[2:8, 2:8], truth[10:18, 10:18] = 1, 2
    pred = np.zeros_like(truth)
    pred[2:8, 2:7] = 5  # IoU 30/36 with 1
    pred[10:18, 10:13], pred[10:18, 13:18] = 6, 7  # 2 split in two halves: IoU 24/64 and 40/64
    pred[0, 19] = 9  # a false positive
    m = match_instances(pred, truth)
    assert (m.true_positives, m.false_positives, m.false_negatives) == (2, 2, 0)
    assert sorted(map(tuple, m.pairs.tolist())) == [(5, 1), (7, 2)]
    assert m.f1 == pytest.approx(4 / 6)
    assert match_instances(pred, truth, min_area=2).false_positives == 1
