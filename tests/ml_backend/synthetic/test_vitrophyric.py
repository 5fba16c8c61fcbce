"""Tests of the ``vitrophyric`` generator family (ml_backend.synthetic.families.vitrophyric)."""

from __future__ import annotations

import json
from functools import cache

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage

from label_config.catalogue import load_catalogue
from ml_backend.synthetic import CRYSTAL_COLUMNS, SyntheticSection
from ml_backend.synthetic.families import generate_field
from ml_backend.synthetic.families.vitrophyric import generate
from ml_backend.synthetic.families.vitrophyric.habits import Habit, notch, with_axis
from ml_backend.synthetic.families.vitrophyric.interior import Interior, interior_eta

CAT = load_catalogue()
EPOXY, GROUNDMASS, PLAG, CPX, OLIVINE, OXIDE = (
    CAT.index_of(n) for n in ("Epoxy", "Groundmass", "Plagioclase", "Clinopyroxene", "Olivine", "Fe-Ti oxide")
)
CRYSTAL_CLASSES = (PLAG, CPX, OLIVINE, OXIDE)
SEEDS = range(8)


@cache
def _field(seed: int, size: int = 384) -> SyntheticSection:
    return generate(size, seed)


def test_same_seed_gives_identical_arrays():
    a, b = generate(160, 5), generate(160, 5)
    for name in ("image", "classes", "instances", "eta"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    pd.testing.assert_frame_equal(a.crystals, b.crystals)
    assert json.dumps(a.params, sort_keys=True) == json.dumps(b.params, sort_keys=True)
    assert a.pixel_size_um == b.pixel_size_um and a.seed == b.seed == 5


def test_different_seeds_differ():
    a, b = _field(1), _field(2)
    assert not np.array_equal(a.classes, b.classes)
    assert a.pixel_size_um != b.pixel_size_um


def test_dtype_and_shape_contract():
    s = generate((96, 160), 3)
    assert isinstance(s, SyntheticSection)
    assert s.image.shape == s.classes.shape == s.instances.shape == s.eta.shape == (96, 160)
    assert (s.classes.dtype, s.instances.dtype, s.eta.dtype) == (np.uint8, np.int32, np.float32)
    assert s.image.dtype == (np.uint8 if s.params["detector"]["bit_depth"] == 8 else np.uint16)
    assert list(s.crystals.columns) == list(CRYSTAL_COLUMNS)
    assert s.class_names == CAT.names and s.config is None
    assert 0.1 <= s.pixel_size_um <= 1.5
    assert s.params["family"] == "vitrophyric"
    json.dumps(s.params)  # every drawn parameter is JSON-able


def test_registered_in_family_registry():
    s = generate_field("vitrophyric", 64, 9)
    np.testing.assert_array_equal(s.classes, generate(64, 9).classes)


def test_all_six_classes_appear_and_every_field_keeps_groundmass():
    seen = set()
    for seed in SEEDS:
        s = _field(seed)
        counts = np.bincount(s.classes.ravel(), minlength=len(CAT))
        assert counts[GROUNDMASS] >= 0.1 * s.classes.size, seed
        assert set(np.flatnonzero(counts)) <= {EPOXY, GROUNDMASS, *CRYSTAL_CLASSES}
        seen |= set(np.flatnonzero(counts).tolist())
    assert seen == {EPOXY, GROUNDMASS, *CRYSTAL_CLASSES}


def test_instances_match_the_crystal_table():
    for seed in SEEDS:
        s = _field(seed)
        table = s.crystals
        n = len(table)
        assert table["id"].tolist() == list(range(1, n + 1))
        area = np.bincount(s.instances.ravel(), minlength=n + 1)
        assert np.all(area[1:] > 0) and len(area) == n + 1
        assert table["area_px"].tolist() == area[1:].tolist()
        crystal_pixel = np.isin(s.classes, CRYSTAL_CLASSES)
        np.testing.assert_array_equal(crystal_pixel, s.instances > 0)  # groundmass, melt inclusions, epoxy: id 0
        ids = s.instances[crystal_pixel]
        np.testing.assert_array_equal(s.classes[crystal_pixel], table["class_index"].to_numpy()[ids - 1])
        hosts = table.loc[table["host_id"] > 0]
        assert (hosts["class_index"] == OXIDE).all()
        assert set(table.set_index("id").loc[hosts["host_id"], "class_index"]) <= {OLIVINE, CPX}


def test_glass_brightness_varies_around_clinopyroxene():
    """Measured on the noise-free eta: median glass over median clinopyroxene, per field."""
    ratios = []
    for seed in range(16):
        s = _field(seed, 256)
        cpx = s.classes == CPX
        if cpx.sum() >= 50:
            ratios.append(float(np.median(s.eta[s.classes == GROUNDMASS]) / np.median(s.eta[cpx])))
    ratios = np.array(ratios)
    assert len(ratios) >= 10
    assert ratios.min() < 0.98 and ratios.max() > 1.02
    assert np.any(np.abs(ratios - 1.0) < 0.003)  # the hard case: glass as bright as clinopyroxene
    drawn = [_field(seed, 256).params["glass_equals_clinopyroxene"] for seed in range(16)]
    assert any(drawn) and not all(drawn)


def test_phase_order_epoxy_darkest_oxide_brightest():
    for seed in SEEDS:
        s = _field(seed)
        medians = {k: np.median(s.eta[s.classes == k]) for k in np.unique(s.classes)}
        assert min(medians, key=medians.get) == EPOXY or EPOXY not in medians
        assert max(medians, key=medians.get) == OXIDE or OXIDE not in medians


def test_eight_bit_jpeg_and_sixteen_bit_fields_occur():
    dtypes, qualities = set(), []
    for seed in range(12):
        s = _field(seed, 256)
        dtypes.add(s.image.dtype)
        quality = s.params["detector"]["jpeg_quality"]
        if quality is not None:
            assert s.image.dtype == np.uint8 and 60 <= quality <= 95
            qualities.append(quality)
    assert dtypes == {np.dtype(np.uint8), np.dtype(np.uint16)}
    assert qualities


def test_pixel_sizes_span_the_range():
    sizes = [_field(seed, 256).pixel_size_um for seed in range(16)]
    assert min(sizes) < 0.25 and max(sizes) > 1.2


def test_melt_inclusions_inside_crystals_are_groundmass():
    """Glass enclosed by a crystal (hollow cores, sieve blobs) is labelled Groundmass, id 0."""
    enclosed = 0
    for seed in SEEDS:
        s = _field(seed)
        labels, _ = ndimage.label(s.classes == GROUNDMASS)
        for k, (rows, cols) in enumerate(ndimage.find_objects(labels), start=1):
            if rows.start == 0 or cols.start == 0 or rows.stop == labels.shape[0] or cols.stop == labels.shape[1]:
                continue
            window = (slice(rows.start - 1, rows.stop + 1), slice(cols.start - 1, cols.stop + 1))
            blob = labels[window] == k
            ring = ndimage.binary_dilation(blob) & ~blob
            if np.isin(s.classes[window][ring], CRYSTAL_CLASSES).all():
                enclosed += 1
                assert not s.instances[window][blob].any()
    assert enclosed >= 3


def test_glomerocryst_grains_touch():
    """Some distinct crystals share a face (4-neighbours with different ids)."""
    touching = 0
    for seed in SEEDS:
        s = _field(seed)
        a, b = s.instances[:, 1:], s.instances[:, :-1]
        touching += int(np.count_nonzero((a > 0) & (b > 0) & (a != b)))
    assert touching > 0
    assert sum(_field(seed).params["crystals"]["glomerocrysts_painted"] for seed in SEEDS) >= 2


def test_twin_domains_and_sectors_differ_by_a_few_percent():
    lath = with_axis("plagioclase", np.array(((-2.0, -20.0), (-2.0, 20.0), (2.0, 20.0), (2.0, -20.0))))
    assert lath.half_length == pytest.approx(20.0) and lath.half_width == pytest.approx(2.0)
    across = np.array(((-1.5, 0.0), (1.5, 0.0)))  # one pixel each side of a twin plane at 0
    twinned = interior_eta(Interior(twin_planes=(0.0,), twin_contrast=0.03), lath, across, None, 0.135, None, 1.0)
    assert twinned.max() / twinned.min() == pytest.approx(1.015 / 0.985, rel=1e-6)
    along = np.array(((0.0, 15.0), (1.5, 0.0)))  # a tip sector and a prism sector
    sectors = interior_eta(Interior(sector_contrast=0.02), lath, along, None, 0.15, None, 1.0)
    assert sectors[0] / sectors[1] == pytest.approx(1.01 / 0.99, rel=1e-6)


def test_swallowtail_notch_cuts_into_the_end():
    lath: Habit = with_axis("plagioclase", np.array(((-2.0, -20.0), (-2.0, 20.0), (2.0, 20.0), (2.0, -20.0))))
    v = notch(lath, 1, depth=5.0, spread=1.5)
    tip_along = np.abs(v @ np.array((np.sin(lath.axis), np.cos(lath.axis))))
    assert tip_along.min() == pytest.approx(15.0) and tip_along.max() == pytest.approx(22.0)


@pytest.mark.parametrize(
    ("size", "seed", "match"),
    [(0, 1, "size"), ((64,), 1, "size"), ("64", 1, "size"), ((16, 64), 1, "size"), (64, -1, "seed"),
     (64, 1.5, "seed"), (64, "3", "seed"), (64, True, "seed")],
)  # fmt: skip
def test_bad_size_or_seed_raises_value_error(size, seed, match):
    with pytest.raises(ValueError, match=match):
        generate(size, seed)
