"""Class masks on disk: a uint8 PNG of catalogue indices plus a JSON sidecar.

``write_mask("out/field1.png", ...)`` writes ``out/field1.png`` and ``out/field1.json``;
the sidecar names the classes (``{"classes": {"0": "Epoxy", ...}}``), the pixel size
and whatever the producer adds (method, model_version, source image).

:func:`palette_png` writes a mask as an indexed PNG instead: the same indices, with the
catalogue's colours as its palette (what the open-data export ships).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import imagecodecs
import numpy as np
from PIL import Image

from label_config.catalogue import IGNORE_INDEX, Catalogue

_RESERVED = ("classes", "ignore_index", "pixel_size_um", "shape")


def check_mask_path(path: str | Path) -> Path:
    """``path`` as a ``Path`` if it can name a mask PNG.

    Raises:
        ValueError: when it does not end in ``.png`` or names a folder.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path}: a mask is written as PNG; give a path ending in .png")
    if path.is_dir():
        raise ValueError(f"{path}: is a folder; give a file name ending in .png")
    return path


def sidecar_path(mask_path: str | Path) -> Path:
    """The JSON sidecar beside a mask PNG (same name, ``.json``)."""
    return Path(mask_path).with_suffix(".json")


def write_mask(
    path: str | Path,
    mask: np.ndarray,
    catalogue: Catalogue,
    pixel_size_um: float | None,
    extra: dict[str, Any] | None = None,
) -> tuple[Path, Path]:
    """Write a class mask as a uint8 PNG and its JSON sidecar.

    Args:
        path: Output ``.png`` path; parent folders are created.
        mask: 2-D uint8 class indices into ``catalogue`` (255 = no label).
        catalogue: The classes the indices refer to.
        pixel_size_um: Pixel size in micrometres, or ``None`` when unknown.
        extra: More JSON-serialisable sidecar entries (method, model_version, source...).

    Returns:
        The paths of the PNG and of the sidecar.

    Raises:
        ValueError: for a path not ending in ``.png``, a mask of the wrong shape or dtype,
            indices outside the catalogue, a bad pixel size or reserved ``extra`` keys.
    """
    path = check_mask_path(path)
    _check_mask(mask, catalogue)
    if pixel_size_um is not None and not (np.isfinite(pixel_size_um) and pixel_size_um > 0):
        raise ValueError(f"pixel size must be a positive number of micrometres or None, got {pixel_size_um}")
    clash = sorted(set(extra or {}) & set(_RESERVED))
    if clash:
        raise ValueError(f"sidecar entries {clash} are reserved; rename them")
    sidecar = {
        "classes": {str(i): name for i, name in enumerate(catalogue.names)},
        "ignore_index": IGNORE_INDEX,
        "pixel_size_um": None if pixel_size_um is None else float(pixel_size_um),
        "shape": list(mask.shape),
        **(extra or {}),
    }
    text = json.dumps(sidecar, indent=2)  # fails before anything is written if extra is not JSON
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(imagecodecs.png_encode(np.ascontiguousarray(mask)))
    side = sidecar_path(path)
    side.write_text(text + "\n", encoding="utf-8")
    return path, side


def _check_mask(mask: np.ndarray, catalogue: Catalogue) -> None:
    if mask.ndim != 2 or mask.dtype != np.uint8 or 0 in mask.shape:
        raise ValueError(f"mask must be a non-empty 2-D uint8 array, got shape {mask.shape} dtype {mask.dtype}")
    bad = np.setdiff1d(np.unique(mask), [*range(len(catalogue)), IGNORE_INDEX])
    if bad.size:
        raise ValueError(
            f"mask holds class indices {bad.tolist()} outside the catalogue's 0-{len(catalogue) - 1} (and {IGNORE_INDEX})"
        )


def palette_png(mask: np.ndarray, catalogue: Catalogue) -> bytes:
    """A class mask as an indexed (palette) PNG: pixel values are the catalogue indices, the
    palette holds the catalogue's colours, and :data:`IGNORE_INDEX` (no label) is transparent.

    Any viewer shows the minerals in their catalogue colours; :func:`read_palette_png` (or any
    reader that keeps palette indices, e.g. ``numpy.asarray(PIL.Image.open(path))``) returns the indices.

    Raises:
        ValueError: for a mask of the wrong shape or dtype, or indices outside the catalogue.
    """
    _check_mask(mask, catalogue)
    palette = bytearray(768)
    for index, mineral in enumerate(catalogue.classes):
        palette[3 * index : 3 * index + 3] = bytes(mineral.rgb)
    image = Image.fromarray(np.ascontiguousarray(mask))
    image.putpalette(bytes(palette))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", transparency=IGNORE_INDEX, optimize=True)
    return buffer.getvalue()


def read_palette_png(path: str | Path) -> np.ndarray:
    """The uint8 class indices of an indexed PNG (:func:`palette_png`).

    Raises:
        ValueError: naming the file when it is unreadable or not a palette PNG.
    """
    try:
        with Image.open(path) as image:
            if image.mode != "P":
                raise ValueError(f"{path}: expected an indexed (palette) PNG, got mode {image.mode}")
            return np.asarray(image, dtype=np.uint8).copy()
    except OSError as exc:
        raise ValueError(f"{path}: not a readable PNG ({exc})") from None


def read_mask(path: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    """Read a mask PNG written by :func:`write_mask` and its sidecar.

    Returns:
        ``(mask, sidecar)``: the uint8 (H, W) indices and the sidecar dictionary.

    Raises:
        ValueError: naming the file when the PNG or the sidecar is missing or unreadable,
            or when they do not match.
    """
    path = Path(path)
    side = sidecar_path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read mask ({exc.strerror or exc})") from None
    try:
        mask = imagecodecs.png_decode(data)
    except Exception as exc:  # imagecodecs raises its own error types
        raise ValueError(f"{path}: not a readable PNG mask ({exc})") from None
    if mask.ndim != 2 or mask.dtype != np.uint8:
        raise ValueError(f"{path}: expected a grey uint8 mask, got shape {mask.shape} dtype {mask.dtype}")
    try:
        sidecar = json.loads(side.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ValueError(f"{side}: cannot read the mask's sidecar ({exc.strerror or exc})") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{side}: sidecar is not valid JSON ({exc})") from None
    if not isinstance(sidecar, dict) or not isinstance(sidecar.get("classes"), dict):
        raise ValueError(f"{side}: sidecar has no 'classes' table")
    if list(mask.shape) != sidecar.get("shape", list(mask.shape)):
        raise ValueError(f"{side}: sidecar shape {sidecar['shape']} does not match the mask {list(mask.shape)}")
    return mask, sidecar
