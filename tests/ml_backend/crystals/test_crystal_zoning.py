"""Zoning classes on hand-made crystals with known core-to-rim profiles, and the profile machinery."""

from __future__ import annotations

import numpy as np
import pytest

from label_config.catalogue import load_catalogue
from ml_backend.crystals.config import CrystalConfig
from ml_backend.crystals.grey_levels import grey_levels
from ml_backend.crystals.instances import label_crystals
from ml_backend.crystals.zoning import classify_zoning, count_oscillations, rim_brighter_is_normal

CAT = load_catalogue()
GROUNDMASS, PLAG, CPX, OLIVINE = (CAT.index_of(n) for n in ("Groundmass", "Plagioclase", "Clinopyroxene", "Olivine"))
NOISE = 0.02  # per-pixel noise of the test images (normalised units)


def _field(profile, mineral=OLIVINE, radius=30, seed=0, size=100):
    """A disc crystal whose level is ``profile(relative depth)`` (0 at the rim, 1 at the core), plus noise."""
    rr, cc = np.mgrid[:size, :size]
    r = np.hypot(rr - size / 2, cc - size / 2)
    mask = np.where(r <= radius, mineral, GROUNDMASS).astype(np.uint8)
    depth = np.clip((radius - r) / radius, 0, 1)
    image = np.where(mask == mineral, profile(depth), 0.3) + np.random.default_rng(seed).normal(0, NOISE, mask.shape)
    return image.astype(np.float32), mask


def _zoning(image, mask, config=None):
    config = config or CrystalConfig()
    inst = label_crystals(mask, CAT, config)
    levels = grey_levels(image, mask, inst, config)
    labels, snr = classify_zoning(levels, inst.max_depth, inst.class_index, CAT, config)
    assert inst.count == 1
    return labels[1], snr[1], levels


@pytest.mark.parametrize(
    "profile, expected",
    [
        (lambda d: 0.5 - 0.08 * (1 - d), "reverse"),  # olivine rim darker: Mg-richer rim
        (lambda d: 0.5 + 0.08 * (1 - d) ** 2, "normal"),  # olivine rim brighter: Fe-richer rim
        (lambda d: 0.5 + 0.0 * d, "unzoned"),
        (lambda d: 0.5 + 0.05 * np.sin(2 * np.pi * 2.5 * d), "oscillatory"),
    ],
    ids=["reverse", "normal", "unzoned", "oscillatory"],
)
def test_olivine_zoning_classes(profile, expected):
    label, snr, levels = _zoning(*_field(profile))
    assert label == expected
    assert levels.noise_sigma == pytest.approx(NOISE, rel=0.15)  # steep oscillations add a little


def test_weak_zoning_below_the_noise_floor_is_unzoned():
    # 0.4 x pixel noise from core to rim: significant in SE terms over ~1500 pixels, but below the 0.5 sigma floor
    field = _field(lambda d: 0.5 + 0.4 * NOISE * (1 - d), radius=40)
    label, snr, _ = _zoning(*field)
    assert label == "unzoned" and snr > 4
    assert _zoning(*field, CrystalConfig(zoning_noise_floor=0.0))[0] == "normal"


def test_plagioclase_direction_is_the_opposite_of_olivine():
    # plagioclase: An-richer (brighter) core and Na-richer (darker) rim is normal zoning
    assert _zoning(*_field(lambda d: 0.5 - 0.08 * (1 - d), mineral=PLAG))[0] == "normal"
    assert rim_brighter_is_normal(CAT.get("Olivine")) is True
    assert rim_brighter_is_normal(CAT.get("Plagioclase")) is False
    assert rim_brighter_is_normal(CAT.get("Clinopyroxene")) is True  # no solid solution: Fe-Mg convention


def test_small_crystals_are_unresolved():
    label, _, _ = _zoning(*_field(lambda d: 0.5 + 0.1 * (1 - d), radius=6))
    assert label == "unresolved"


def test_profile_runs_from_rim_to_core():
    _, _, levels = _zoning(*_field(lambda d: 0.3 + 0.4 * d, seed=3))
    profile = levels.profile.mean[1]
    finite = profile[np.isfinite(profile)]
    assert len(finite) >= 6 and np.all(np.diff(finite) > 0)  # rising towards the core
    assert levels.core.mean[1] > 0.55 and levels.rim.mean[1] < 0.45


def test_count_oscillations_exact():
    profile = np.array(
        [
            [0.0, 1.0, 0.0, 1.0, 0.0],
            [0.0, 1.0, 2.0, 3.0, 4.0],
            [0.0, np.nan, 1.0, np.nan, 0.0],
            [0.0, 0.01, 0.0, 0.01, 0.0],
        ]
    )
    se = np.full(profile.shape, 0.01)
    floor = np.full(4, 0.05)
    np.testing.assert_array_equal(count_oscillations(profile, se, floor, 3.0), [3, 0, 1, 0])
