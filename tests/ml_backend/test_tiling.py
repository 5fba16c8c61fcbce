"""Tiled prediction: windows, blending weights, halo context, seam-free results."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ml_backend.tiling import Window, blend_weights, extract_with_halo, predict_tiled, tile_windows


def _smooth_classes(tile: np.ndarray) -> np.ndarray:
    """A neighbourhood-dependent 3-class 'model': softmax of distances of a blurred tile to 3 levels."""
    smooth = ndimage.gaussian_filter(tile.astype(np.float32), 2.0, truncate=3.0)  # radius 6 px
    logits = -np.stack([(smooth - level) ** 2 for level in (0.2, 0.5, 0.8)]) * 20
    e = np.exp(logits - logits.max(axis=0))
    return (e / e.sum(axis=0)).astype(np.float32)


@pytest.fixture
def image() -> np.ndarray:
    return np.random.default_rng(0).random((150, 230), dtype=np.float32)


def test_windows_cover_the_image_with_the_overlap():
    windows = tile_windows((150, 230), 64, 16)
    covered = np.zeros((150, 230), int)
    for w in windows:
        covered[w.slices] += 1
        assert w.shape[0] <= 64 and w.shape[1] <= 64
    assert covered.min() >= 1
    assert [w.x0 for w in windows[:5]] == [0, 48, 96, 144, 166]  # last window aligned with the edge
    assert windows == sorted(windows, key=lambda w: (w.y0, w.x0))


def test_small_image_is_one_window():
    assert tile_windows((40, 50), 64, 16) == [Window(0, 40, 0, 50)]


@pytest.mark.parametrize("tile, overlap", [(0, 0), (64, 64), (64, -1)])
def test_bad_tiling_parameters_are_refused(tile, overlap):
    with pytest.raises(ValueError, match="tile"):
        tile_windows((100, 100), tile, overlap)


def test_neighbour_weights_sum_to_one_and_border_weights_are_one():
    shape = (64, 112)
    left, right = Window(0, 64, 0, 64), Window(0, 64, 48, 112)
    wl, wr = blend_weights(left, shape, 16), blend_weights(right, shape, 16)
    np.testing.assert_allclose(wl[:, 48:] + wr[:, :16], 1.0, atol=1e-6)
    assert (wl[:, :48] == 1).all() and (wr[:, 16:] == 1).all()  # image borders are not ramped
    assert wl[0, 63] > 0


def test_halo_mirrors_like_scipy_reflect(image):
    window = Window(0, 40, 200, 230)
    block = extract_with_halo(image, window, 5)
    assert block.shape == (50, 40)
    padded = np.pad(image, 5, mode="symmetric")
    np.testing.assert_array_equal(block, padded[window.y0 : window.y1 + 10, window.x0 : window.x1 + 10])


def test_tiles_with_halo_equal_the_whole_image(image):
    whole = _smooth_classes(image)
    tiled = predict_tiled(_smooth_classes, image, 3, tile=64, overlap=8, halo=6)
    assert tiled.shape == (3, 150, 230) and tiled.dtype == np.float32
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
    assert (tiled.argmax(0) == whole.argmax(0)).mean() > 0.999


def test_without_halo_tile_borders_differ(image):
    """The comparison above can fail: tiles without context differ near their edges."""
    whole = _smooth_classes(image)
    tiled = predict_tiled(_smooth_classes, image, 3, tile=64, overlap=0, halo=0)
    assert np.abs(tiled - whole).max() > 1e-2


def test_batched_function_and_reduce(image):
    def batched(batch: np.ndarray) -> np.ndarray:
        assert batch.ndim == 3
        return np.stack([_smooth_classes(t) for t in batch])

    single = predict_tiled(_smooth_classes, image, 3, tile=64, overlap=8, halo=6)
    labels = predict_tiled(
        batched, image, 3, tile=64, overlap=8, halo=6, batch_size=3, reduce=lambda b: b.argmax(0).astype(np.uint8)
    )
    assert labels.dtype == np.uint8 and labels.shape == image.shape
    np.testing.assert_array_equal(labels, single.argmax(0))


def test_wrong_output_shape_is_reported(image):
    with pytest.raises(ValueError, match="returned shape"):
        predict_tiled(lambda t: np.zeros((2, 5, 5), np.float32), image, 3, tile=64, overlap=8)


def test_non_2d_image_is_refused():
    with pytest.raises(ValueError, match="2-D"):
        predict_tiled(_smooth_classes, np.zeros((3, 10, 10)), 3)
