"""Brush RLE: byte-identical to label_studio_sdk's encoder, decodes what Label Studio writes."""

import numpy as np
import pytest
from label_studio_sdk.converter.brush import decode_rle, encode_rle, mask2rle

from ml_backend.brush import mask_to_rle, rle_to_mask


def _masks():
    rng = np.random.default_rng(7)
    yield "noise", rng.random((37, 53)) > 0.5
    yield "single-pixel", np.ones((1, 1), bool)
    yield "empty", np.zeros((20, 30), bool)
    full = np.ones((300, 300), bool)  # one run of 360 000 bytes: split into 2**16 chunks
    yield "full", full
    blob = np.zeros((256, 256), bool)
    blob[40:200, 10:250] = True
    yield "blob", blob


@pytest.mark.parametrize(("name", "mask"), list(_masks()), ids=[n for n, _ in _masks()])
def test_encoding_identical_to_sdk_and_round_trips(name, mask):
    ours = mask_to_rle(mask)
    assert ours == mask2rle(mask.astype(np.uint8) * 255)
    np.testing.assert_array_equal(rle_to_mask(ours, *mask.shape), mask)
    sdk_decoded = decode_rle(ours)[3::4].reshape(mask.shape) > 0
    np.testing.assert_array_equal(sdk_decoded, mask)


def test_decodes_literal_blocks():
    # Label Studio's editor may emit literal (non-series) blocks; the SDK writes one for runs of 1
    rgba = np.array([0, 0, 0, 0, 255, 255, 255, 255, 0, 255, 0, 255], dtype=np.int64)
    rle = encode_rle(rgba)
    assert rle_to_mask(rle, 1, 3).tolist() == [[False, True, True]]  # painted where alpha != 0


def test_size_mismatch_and_truncation_are_errors():
    rle = mask_to_rle(np.ones((4, 4), bool))
    with pytest.raises(ValueError, match="4 x 5"):
        rle_to_mask(rle, 4, 5)
    with pytest.raises(ValueError, match="truncated"):
        rle_to_mask(rle[:8], 4, 4)
    with pytest.raises(ValueError, match="too short"):
        rle_to_mask([], 4, 4)


def test_mask_must_be_2d():
    with pytest.raises(ValueError, match="2-D"):
        mask_to_rle(np.zeros((2, 2, 2)))
