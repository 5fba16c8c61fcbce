"""BSE-to-composition calibration: the fit, its intervals, probe files, maps, and the refusals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from label_config.catalogue import load_catalogue
from ml_backend.crystals.calibration import (
    ProbePoints,
    calibrate,
    calibration_target,
    composition_map,
    crystal_compositions,
    fit_calibration,
    read_probe_points,
    sample_levels,
)
from ml_backend.crystals.config import CrystalConfig

CAT = load_catalogue()
GROUNDMASS, OLIVINE = CAT.index_of("Groundmass"), CAT.index_of("Olivine")


def _points(n=8, seed=0, sd=0.5):
    rng = np.random.default_rng(seed)
    levels = np.linspace(0.4, 0.6, n)
    values = 150.0 - 140.0 * levels + rng.normal(0, sd, n)  # Fo falls as olivine gets brighter
    return levels, values


def test_fit_matches_scipy_and_the_textbook_prediction_interval():
    levels, values = _points()
    cal = fit_calibration(levels, values, "Fo", "Olivine")
    ref = stats.linregress(levels, values)
    assert cal.slope == pytest.approx(ref.slope) and cal.intercept == pytest.approx(ref.intercept)
    assert cal.r_squared == pytest.approx(ref.rvalue**2)
    assert (cal.n, cal.value_min, cal.value_max) == (8, values.min(), values.max())
    x0 = 0.45
    resid = values - (ref.intercept + ref.slope * levels)
    s = np.sqrt(np.sum(resid**2) / 6)
    half = (
        stats.t.ppf(0.975, 6)
        * s
        * np.sqrt(1 + 1 / 8 + (x0 - levels.mean()) ** 2 / np.sum((levels - levels.mean()) ** 2))
    )
    value, width = cal.predict(np.array([x0]))
    assert value[0] == pytest.approx(ref.intercept + ref.slope * x0) and width[0] == pytest.approx(half)


def test_prediction_intervals_cover_new_points_at_their_level():
    covered = []
    for seed in range(200):
        levels, values = _points(n=6, seed=seed)
        cal = fit_calibration(levels, values, "Fo", "Olivine")
        new = 150.0 - 140.0 * 0.5 + np.random.default_rng(1000 + seed).normal(0, 0.5)
        value, half = cal.predict(np.array([0.5]))
        covered.append(abs(value[0] - new) <= half[0])
    assert 0.9 <= np.mean(covered) <= 0.99  # nominal 95 %


def test_too_few_points_are_refused():
    with pytest.raises(
        ValueError, match=r"2 usable probe point\(s\) on Olivine, at least 3 are needed.*add microprobe points"
    ):
        fit_calibration(np.array([0.4, 0.5]), np.array([85.0, 80.0]), "Fo", "Olivine")
    with pytest.raises(ValueError, match="at least 5 are needed"):
        fit_calibration(*_points(n=4), "Fo", "Olivine", CrystalConfig(min_probe_points=5))
    with pytest.raises(ValueError, match="at least 3"):  # NaN levels (points off the mineral) do not count
        fit_calibration(np.array([0.4, np.nan, 0.5, np.nan]), np.array([85.0, 83.0, 80.0, 78.0]), "Fo", "Olivine")
    with pytest.raises(ValueError, match="same BSE level"):
        fit_calibration(np.full(4, 0.5), np.array([80.0, 81.0, 82.0, 83.0]), "Fo", "Olivine")


def test_extrapolation_is_refused_or_masked():
    levels, values = _points()  # Fo about 66-94 over levels 0.4-0.6
    cal = fit_calibration(levels, values, "Fo", "Olivine", CrystalConfig(extrapolation_margin=3.0))
    inside, _ = cal.predict(np.array([0.41, 0.59]))
    assert np.isfinite(inside).all()
    far = 0.7  # Fo about 52: 14 below the calibrated range
    with pytest.raises(
        ValueError, match=r"1 of 2 BSE levels map to Fo .* beyond the calibrated .* \+- 3; add probe points"
    ):
        cal.predict(np.array([0.5, far]))
    value, half = cal.predict(np.array([0.5, far]), outside="nan")
    assert np.isfinite(value[0]) and np.isnan(value[1]) and np.isnan(half[1])


def test_read_probe_points(tmp_path):
    path = tmp_path / "probe.csv"
    path.write_text("id,x,y,Fo\na,10,20,85.5\nb,11.5,21,80\n")
    points = read_probe_points(path)
    assert points.variable == "Fo" and points.x.tolist() == [10.0, 11.5] and points.value.tolist() == [85.5, 80.0]
    bad = {
        "x,Fo\n1,80\n": "need columns x and y",
        "x,y,Fo,An\n1,2,80,60\n": "exactly one composition column",
        "x,y,Fo\n1,2,eighty\n": "must be numbers",
        "x,y,Fo\n1,2,\n": r"rows \[2\]",
    }
    for text, message in bad.items():
        path.write_text(text)
        with pytest.raises(ValueError, match=message):
            read_probe_points(path)
    path.write_text("x,y,Fo,An\n1,2,80,60\n")
    assert read_probe_points(path, "An").value.tolist() == [60.0]
    with pytest.raises(ValueError, match="not found"):
        read_probe_points(tmp_path / "missing.csv")


def test_calibration_target_from_the_catalogue():
    assert calibration_target(CAT, "Fo") == OLIVINE and calibration_target(CAT, "fo") == OLIVINE
    assert calibration_target(CAT, "An") == CAT.index_of("Plagioclase")
    assert calibration_target(CAT, "Mg#", mineral="Clinopyroxene") == CAT.index_of("Clinopyroxene")
    with pytest.raises(ValueError, match="known variables: An, Fo"):
        calibration_target(CAT, "Mg#")


def test_sample_levels_in_a_disc_on_valid_pixels():
    image = np.tile(np.arange(20, dtype=np.float32), (20, 1))  # level = column
    valid = np.ones_like(image, bool)
    valid[:, 12:] = False
    levels, n = sample_levels(image, np.array([5.0, 11.0, 16.0]), np.array([5.0, 5.0, 5.0]), 2.0, valid)
    assert levels[0] == pytest.approx(5.0) and n[0] == 13  # a radius-2 disc holds 13 pixels
    assert n[1] == 9 and levels[1] == pytest.approx((9 * 1 + 10 * 3 + 11 * 5) / 9)  # only columns left of 12 count
    assert np.isnan(levels[2]) and n[2] == 0
    with pytest.raises(ValueError, match=r"probe points \[0\] lie outside the 20 x 20 px image"):
        sample_levels(image, np.array([25.0]), np.array([5.0]), 2.0)


def _ramp_field():
    """Olivine whose level falls from 0.6 (left) to 0.4 (right) over groundmass at 0.3."""
    mask = np.full((40, 60), GROUNDMASS, np.uint8)
    mask[5:35, 5:55] = OLIVINE
    image = np.where(mask == OLIVINE, np.linspace(0.6, 0.4, 60)[None, :], 0.3).astype(np.float32)
    return image, mask


def test_calibrate_map_and_crystal_compositions():
    image, mask = _ramp_field()
    fo_of_level = lambda level: 150.0 - 140.0 * level  # noqa: E731
    xs = np.array([10.0, 20.0, 30.0, 40.0, 50.0])
    levels = np.linspace(0.6, 0.4, 60)[xs.astype(int)]
    probe = pd.DataFrame({"x": xs, "y": 20.0, "Fo": fo_of_level(levels) + np.array([0.3, -0.2, 0.1, -0.3, 0.1])})
    points = ProbePoints(probe.x.to_numpy(), probe.y.to_numpy(), probe.Fo.to_numpy(), "Fo")
    cal, table = calibrate(image, mask, points, OLIVINE, CAT)
    assert table["used"].all() and table["pixels"].tolist() == [29] * 5
    assert cal.slope == pytest.approx(-140.0, rel=0.03)
    fo = composition_map(image, mask, OLIVINE, cal)
    assert fo.dtype == np.float32 and np.isnan(fo[mask != OLIVINE]).all()
    assert np.nanmax(np.abs(fo[20, 10:50] - fo_of_level(image[20, 10:50]))) < 1.0
    crystals = pd.DataFrame(
        {"class_index": [OLIVINE, GROUNDMASS], "core_level": [0.5, 0.3], "rim_level": [0.45, np.nan]}
    )
    out = crystal_compositions(crystals, OLIVINE, cal)
    assert out.loc[0, "core_Fo"] == pytest.approx(80.0, abs=0.5) and out.loc[0, "rim_Fo"] == pytest.approx(
        87.0, abs=0.5
    )
    assert out.loc[0, "core_Fo_pi"] > 0 and np.isnan(out.loc[1, "core_Fo"])


def test_a_sample_outside_the_calibration_is_refused():
    image, mask = _ramp_field()
    narrow = fit_calibration(
        np.array([0.59, 0.595, 0.6]),
        np.array([66.0, 65.5, 65.0]),
        "Fo",
        "Olivine",
        CrystalConfig(extrapolation_margin=1.0),
    )
    with pytest.raises(
        ValueError, match=r"of .* Olivine pixels \(\d+%\) lie beyond the calibrated Fo .* add probe points"
    ):
        composition_map(image, mask, OLIVINE, narrow)
