"""Class maps <-> Label Studio labelling regions: the one place that converts between them.

A class map is a 2-D uint8 array of catalogue indices, ``IGNORE_INDEX`` (255) where no
mineral is drawn. Every reader and writer of brush (RLE) or polygon regions goes through
:func:`class_map_to_regions` and :func:`regions_to_class_map`, with one policy:

* **Which regions.** ``brushlabels`` regions in RLE format and ``polygonlabels`` regions
  (crystal review) of the control ``from_name`` (any control when it is None); other
  types (keypoints, choices...) are ignored.
* **Labels.** A region's first label is resolved with :meth:`Catalogue.index_of`: class
  names and their synonyms, case and punctuation ignored, the same way everywhere.
* **Unknown labels.** A region whose label matches no catalogue class (or that has none)
  is skipped, and its label is reported (sorted, each once): the caller records it (the
  harvest stores it with the statistics) or logs it. Decoding never guesses a class.
* **Overlaps.** Regions are painted in list order, so where regions overlap the later one
  wins (Label Studio draws later regions on top as well).
* **Size.** A region whose ``original_height``/``original_width`` differ from the image
  raises ``ValueError``, as does an undecodable RLE.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from skimage import draw

from label_config import Catalogue
from label_config.catalogue import IGNORE_INDEX
from ml_backend.brush import mask_to_rle, rle_to_mask


def class_map_to_regions(
    classes: np.ndarray,
    labels: Mapping[int, str],
    from_name: str,
    to_name: str,
    origin: str = "manual",
    id_prefix: str | None = None,
    probs: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """Label Studio ``brushlabels`` regions of a class map, one per class present that ``labels`` offers.

    Args:
        classes: 2-D uint8 class map (255 = nothing painted).
        labels: Catalogue index -> label text of the control (``ControlTarget.labels``);
            classes it lacks (and 255) get no region.
        from_name: The control's name.
        to_name: The image object it labels.
        origin: ``"prediction"`` for the model's regions, ``"manual"`` for an expert's.
        id_prefix: Region ids are ``f"{id_prefix}-{index}"`` (default: ``from_name``).
        probs: (C, H, W) class probabilities; when given, each region's ``score`` is the
            mean probability of its class over its pixels.
    """
    height, width = classes.shape
    prefix = from_name if id_prefix is None else id_prefix
    regions = []
    for index in np.unique(classes):
        index = int(index)
        if index not in labels:
            continue
        mask = classes == index
        region: dict[str, Any] = {
            "id": f"{prefix}-{index}",
            "from_name": from_name,
            "to_name": to_name,
            "type": "brushlabels",
            "origin": origin,
            "original_width": width,
            "original_height": height,
            "image_rotation": 0,
        }
        if probs is not None:
            region["score"] = float(probs[index][mask].mean())
        region["value"] = {"format": "rle", "rle": mask_to_rle(mask), "brushlabels": [labels[index]]}
        regions.append(region)
    return regions


def regions_to_class_map(
    results: Sequence[Mapping[str, Any]] | None,
    shape: tuple[int, int],
    catalogue: Catalogue,
    from_name: str | None = None,
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Decode the brush and polygon regions of a Label Studio result list into a class map.

    Args:
        results: ``annotation["result"]`` or ``prediction["result"]``.
        shape: (height, width) of the image.
        catalogue: Resolves each region's first label (names and synonyms).
        from_name: Only regions of this control count (None: every control).

    Returns:
        The uint8 class map (255 where no region paints; later regions win) and the labels
        that match no catalogue class, sorted, each once (their regions are skipped).

    Raises:
        ValueError: for a region of another size than ``shape`` or with an undecodable RLE.
    """
    class_map = np.full(shape, IGNORE_INDEX, dtype=np.uint8)
    unknown: set[str] = set()
    for region in _regions(results, from_name):
        value = region["value"]
        names = value.get("brushlabels") or value.get("polygonlabels") or []
        index = catalogue.index_of(names[0]) if names else None
        if index is None:
            unknown.add(str(names[0]) if names else "None")
            continue
        size = (int(region.get("original_height", shape[0])), int(region.get("original_width", shape[1])))
        if size != tuple(shape):
            raise ValueError(f"brush region {region.get('id')!r} is {size}, the image is {tuple(shape)}")
        if "points" in value:
            class_map[polygon_mask(value["points"], shape)] = index
        else:
            class_map[rle_to_mask(value.get("rle") or [], *shape)] = index
    return class_map, tuple(sorted(unknown))


def result_shape(results: Sequence[Mapping[str, Any]] | None, from_name: str | None) -> tuple[int, int] | None:
    """(height, width) of the brush or polygon regions of control ``from_name``, or None if it has none.

    Raises:
        ValueError: if the regions disagree about the image size.
    """
    shapes = {
        (int(r["original_height"]), int(r["original_width"]))
        for r in _regions(results, from_name)
        if "original_height" in r and "original_width" in r
    }
    if len(shapes) > 1:
        raise ValueError(f"regions of {from_name!r} disagree about the image size: {sorted(shapes)}")
    return shapes.pop() if shapes else None


def polygon_mask(points: Sequence[Sequence[float]], shape: tuple[int, int]) -> np.ndarray:
    """Pixels whose centres lie inside a Label Studio polygon (vertices in percent of width and height).

    Raises:
        ValueError: for fewer than 3 vertices or vertices that are not (x, y) pairs.
    """
    vertices = np.asarray(points, dtype=float)
    if vertices.ndim != 2 or vertices.shape[1] != 2 or len(vertices) < 3:
        raise ValueError(f"a polygon needs at least 3 (x, y) vertices, got shape {vertices.shape}")
    height, width = shape
    rows, cols = draw.polygon(vertices[:, 1] / 100 * height - 0.5, vertices[:, 0] / 100 * width - 0.5, shape)
    mask = np.zeros(shape, bool)
    mask[rows, cols] = True
    return mask


def _regions(results: Sequence[Mapping[str, Any]] | None, from_name: str | None) -> list[Mapping[str, Any]]:
    """Brush (RLE) and polygon regions of control ``from_name`` (any control when None)."""
    return [
        r
        for r in results or []
        if isinstance(r, Mapping)
        and (from_name is None or r.get("from_name") == from_name)
        and isinstance(r.get("value"), Mapping)
        and (
            (str(r.get("type", "")).lower() == "brushlabels" and r["value"].get("format", "rle") == "rle")
            or str(r.get("type", "")).lower() == "polygonlabels"
        )
    ]
