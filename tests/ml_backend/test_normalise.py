"""Normalisation is invariant to detector gain/offset (equalisation: to any response curve) and removes slow shading."""

import numpy as np
import pytest

from ml_backend.normalise import IntensityRange, equalise, normalise, percentile_range, remove_background


@pytest.fixture
def field() -> np.ndarray:
    rng = np.random.default_rng(1)
    image = np.where(rng.random((120, 160)) > 0.7, 0.8, 0.3)
    return image + rng.normal(0, 0.02, image.shape)


@pytest.mark.parametrize(("gain", "offset"), [(1000.0, 50.0), (30000.0, 2000.0), (0.5, -3.0)])
def test_gain_and_offset_invariance(field, gain, offset):
    np.testing.assert_allclose(normalise(field * gain + offset), normalise(field), atol=1e-5)


def test_output_range_and_dtype(field):
    out = normalise(field)
    assert out.dtype == np.float32
    assert out.min() == 0.0 and out.max() == 1.0


def test_range_computed_once_applies_to_tiles(field):
    whole = percentile_range(field)
    tiles = np.hstack([whole.apply(field[:, :80]), whole.apply(field[:, 80:])])
    np.testing.assert_array_equal(tiles, whole.apply(field))


def test_flat_image_does_not_divide_by_zero():
    out = IntensityRange(5.0, 5.0).apply(np.full((4, 4), 5.0))
    assert np.isfinite(out).all()


def test_background_removal_flattens_shading(field):
    yy, xx = np.mgrid[: field.shape[0], : field.shape[1]]
    shaded = field + 0.4 * xx / field.shape[1] + 0.2 * (yy / field.shape[0]) ** 2
    phases = field > 0.55
    flat = remove_background(shaded, degree=2, blocks=16)
    # the same phase reads the same on the left and right after correction
    left, right = flat[:, :40][phases[:, :40]].mean(), flat[:, -40:][phases[:, -40:]].mean()
    assert abs(left - right) < 0.05
    assert abs(shaded[:, :40][phases[:, :40]].mean() - shaded[:, -40:][phases[:, -40:]].mean()) > 0.25


@pytest.mark.parametrize(("low", "high"), [(50, 50), (-1, 99), (10, 101)])
def test_bad_percentiles(field, low, high):
    with pytest.raises(ValueError, match="percentiles"):
        percentile_range(field, low, high)


def test_bad_background_degree(field):
    with pytest.raises(ValueError, match="degree"):
        remove_background(field, degree=0)


def test_not_2d():
    with pytest.raises(ValueError, match="2-D"):
        percentile_range(np.zeros((2, 3, 4)))


@pytest.mark.parametrize("curve", [lambda x: 40000 * x**2.2, lambda x: np.log1p(50 * x), lambda x: 3.0 * x + 7])
def test_equalisation_is_invariant_to_any_increasing_response_curve(field, curve):
    """A gamma or a log response changes percentile-normalised grey levels but not ranks."""
    positive = field - field.min()
    np.testing.assert_allclose(equalise(curve(positive)), equalise(positive), atol=1e-6)
    gamma = normalise(40000 * positive**2.2)
    assert np.abs(gamma - normalise(positive)).max() > 0.1  # what the percentile range cannot undo


def test_equalisation_gives_mean_ranks_in_the_open_unit_interval():
    out = equalise(np.array([[5, 1], [5, 9]], np.uint16))
    np.testing.assert_allclose(out, [[0.5, 0.125], [0.5, 0.875]])
    assert out.dtype == np.float32
    for bad in (np.zeros((2, 3, 4)), np.zeros((0, 3))):
        with pytest.raises(ValueError, match="2-D image"):
            equalise(bad)
