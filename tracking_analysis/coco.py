"""The labels as COCO JSON, so common tools (pycocotools, detectron2, mmdetection, FiftyOne) load them.

Two files, both with compressed RLE segmentations (``pycocotools.mask``):

* ``coco/minerals.json``: semantic segmentation in COCO's "stuff" style, one annotation per
  mineral present in a label (all its pixels), ``iscrowd`` 0;
* ``coco/crystals.json``: instance segmentation, one annotation per crystal, the crystals
  split from the label exactly as ``scraiber crystals`` does (:func:`ml_backend.crystals.instances.label_crystals`).

COCO images are the labels, not the image files: two experts' labels of one image are two
COCO images (``id`` = Label Studio annotation id) with the same ``file_name``. Unlabelled
pixels (255) belong to no annotation. Label Studio SDK's COCO converter is not used: it
exports rectangles, polygons and keypoints, and skips brush masks (label-studio-sdk 2.1,
``Converter.convert_to_coco``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from pycocotools import mask as coco_mask

from label_config import Catalogue
from ml_backend.crystals.config import CrystalConfig
from ml_backend.crystals.instances import label_crystals


@dataclass(frozen=True)
class CocoImage:
    """One label as a COCO image: its annotation id, image file (package path or URL) and mask."""

    annotation_id: int
    task_id: int
    file_name: str
    label: np.ndarray
    annotator: str = ""
    split: str = ""


def _rle(binary: np.ndarray) -> dict[str, Any]:
    rle = coco_mask.encode(np.asfortranarray(binary.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def _annotation(ann_id: int, image_id: int, category: int, binary: np.ndarray, **extra: Any) -> dict[str, Any]:
    rle = coco_mask.encode(np.asfortranarray(binary.astype(np.uint8)))
    return {
        "id": ann_id, "image_id": image_id, "category_id": category, "segmentation": _rle(binary),
        "area": float(coco_mask.area(rle)), "bbox": [float(v) for v in coco_mask.toBbox(rle)], "iscrowd": 0, **extra,
    }  # fmt: skip


def _skeleton(
    images: list[CocoImage], catalogue: Catalogue, info: dict[str, Any], licence: dict[str, Any]
) -> dict[str, Any]:
    return {
        "info": info,
        "licenses": [licence],
        "categories": [
            {"id": index + 1, "name": mineral.name, "supercategory": "mineral", "color": mineral.color}
            for index, mineral in enumerate(catalogue.classes)
        ],
        "images": [
            {
                "id": image.annotation_id,
                "file_name": image.file_name,
                "height": int(image.label.shape[0]),
                "width": int(image.label.shape[1]),
                "license": 1,
                "scraiber_task_id": image.task_id,
                "scraiber_annotator": image.annotator,
                "scraiber_split": image.split,
            }
            for image in images
        ],  # fmt: skip
        "annotations": [],
    }


def coco_minerals(
    images: Iterable[CocoImage], catalogue: Catalogue, info: dict[str, Any], licence: dict[str, Any]
) -> dict[str, Any]:
    """COCO semantic segmentation: per label one RLE annotation per mineral present (category = index + 1)."""
    images = list(images)
    data = _skeleton(images, catalogue, info, licence)
    for image in images:
        for index in range(len(catalogue)):
            binary = image.label == index
            if binary.any():
                data["annotations"].append(
                    _annotation(len(data["annotations"]) + 1, image.annotation_id, index + 1, binary)
                )
    return data


def coco_crystals(
    images: Iterable[CocoImage], catalogue: Catalogue, info: dict[str, Any], licence: dict[str, Any],
    config: CrystalConfig | None = None,
) -> dict[str, Any]:  # fmt: skip
    """COCO instance segmentation: per label one RLE annotation per crystal (``label_crystals``)."""
    images = list(images)
    data = _skeleton(images, catalogue, info, licence)
    config = config or CrystalConfig()
    data["info"] = {**info, "crystal_config": asdict(config)}
    for image in images:
        instances = label_crystals(image.label, catalogue, config)
        for crystal in range(1, instances.count + 1):
            binary = instances.labels == crystal
            data["annotations"].append(_annotation(
                len(data["annotations"]) + 1, image.annotation_id, int(instances.class_index[crystal]) + 1, binary,
                touches_border=bool(instances.touches_border[crystal]),
            ))  # fmt: skip
    return data
