"""Label Studio brush RLE, encoded and decoded with numpy.

Label Studio stores a brush mask as RGBA bytes (4 per pixel) compressed with its own
run-length bit format (``label_studio_sdk.converter.brush``). The SDK's encoder
builds a Python string bit by bit and its decoder expands every bit through Python;
on a 2048 x 2048 mask they take about 0.15 s and 0.32 s. These numpy versions produce
byte-identical output (tested against the SDK) in a fraction of that: see
``scraiber bench predict`` for the measured ratio.
"""

from __future__ import annotations

import numpy as np

_WORD_BITS = 8
_RLE_SIZES = (3, 4, 8, 16)  # bits for the run length, chosen by 2-bit index
_MAX_RUN = 2**16
_HEADER_BITS = 32 + 5 + 4 * 4


def _header(n_values: int) -> np.ndarray:
    fields = [(n_values, 32), (_WORD_BITS - 1, 5)] + [(size - 1, 4) for size in _RLE_SIZES]
    return np.concatenate([(value >> np.arange(width - 1, -1, -1)) & 1 for value, width in fields]).astype(np.uint8)


def mask_to_rle(mask: np.ndarray) -> list[int]:
    """Encode a 2-D mask as Label Studio brush RLE.

    Args:
        mask: 2-D array; non-zero pixels are painted (alpha and grey value 255).

    Returns:
        The ``rle`` list of a brushlabels result value.
    """
    if mask.ndim != 2:
        raise ValueError(f"brush mask must be 2-D, got shape {mask.shape}")
    painted = mask.ravel() != 0
    # runs over pixels; every pixel is 4 equal RGBA bytes, so byte runs are 4x longer
    ends = np.append(np.flatnonzero(painted[1:] != painted[:-1]), painted.size - 1)
    lengths = np.diff(np.append(-1, ends)) * 4
    values = np.where(painted[ends], 255, 0).astype(np.int64)
    # runs longer than 2**16 are split into full 2**16 chunks followed by the rest, as the SDK does
    extra = np.maximum((lengths - 1) // _MAX_RUN, 0)
    if extra.any():
        values = np.repeat(values, extra + 1)
        chunked = np.full(values.size, _MAX_RUN, dtype=np.int64)
        last = np.cumsum(extra + 1) - 1
        chunked[last] = lengths - extra * _MAX_RUN
        lengths = chunked
    size_index = np.searchsorted(np.array([8, 16, 256]), lengths, side="left")  # 0..3
    size_bits = np.array(_RLE_SIZES)[size_index]
    # every run: '1' (series), 2-bit size index, length-1 in size_bits bits, 8-bit value
    codes = (1 << (2 + size_bits + _WORD_BITS)) | (size_index << (size_bits + _WORD_BITS))
    codes |= (lengths - 1) << _WORD_BITS
    codes |= values
    widths = 1 + 2 + size_bits + _WORD_BITS
    shifts = np.arange(26, -1, -1)
    bits = ((codes[:, None] >> shifts) & 1).astype(np.uint8)
    keep = shifts[None, :] < widths[:, None]
    stream = np.concatenate([_header(painted.size * 4), bits[keep]])
    stream = np.concatenate([stream, np.zeros(8 - stream.size % 8, np.uint8)])  # SDK always pads
    return np.packbits(stream).tolist()


def rle_to_mask(rle: list[int], height: int, width: int) -> np.ndarray:
    """Decode Label Studio brush RLE into a boolean mask of shape (height, width).

    Accepts any RLE Label Studio's editor produces (literal and series blocks, any
    word size); a pixel is painted where its alpha byte is non-zero.

    Raises:
        ValueError: if the RLE is empty, truncated, or its size disagrees with the image.
    """
    data = np.asarray(rle, dtype=np.uint8) if len(rle) else np.zeros(0, np.uint8)
    bits = np.unpackbits(data)
    if bits.size < _HEADER_BITS:
        raise ValueError(f"brush RLE too short ({len(rle)} bytes)")
    text = (bits + ord("0")).tobytes().decode("ascii")
    position = 0

    def read(n: int) -> int:
        nonlocal position
        if position + n > len(text):
            raise ValueError("brush RLE is truncated")
        value = int(text[position : position + n], 2)
        position += n
        return value

    n_values = read(32)
    if n_values != height * width * 4:
        raise ValueError(f"brush RLE holds {n_values // 4} pixels but the image has {height} x {width}")
    word = read(5) + 1
    sizes = [read(4) + 1 for _ in range(4)]
    out = np.zeros(n_values, dtype=np.uint8)
    i = 0
    while i < n_values:
        series = read(1)
        end = i + 1 + read(sizes[read(2)])
        if series:
            out[i:end] = read(word)
        else:
            for k in range(i, min(end, n_values)):
                out[k] = read(word)
        i = end
    return out[3::4].reshape(height, width) != 0
