"""Crystal review pre-annotations: a polygon per crystal with population and zoning choices.

The project's config decides everything shown: the PolygonLabels control and its mineral
labels, and the per-region Choices whose values name populations (Phenocryst,
Microphenocryst, Microlite) or zoning classes (Normal, Reverse, ...), matched without
regard to case. A crystal whose population or zoning has no matching choice gets none.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from label_studio_sdk.label_interface import LabelInterface

from label_config import Catalogue
from ml_backend.crystals import POPULATIONS, ZONING_LABELS, crystal_polygons, to_percent
from ml_backend.label_map import ControlTarget, control_target

_KINDS = {"population": frozenset(POPULATIONS), "zoning": frozenset(ZONING_LABELS)}


@dataclass(frozen=True)
class CrystalTarget:
    """Where crystal pre-annotations go in a project's config.

    Attributes:
        polygons: The PolygonLabels control (mineral of each crystal).
        choices: ``"population"`` / ``"zoning"`` -> (Choices control name, {lower-case value: config value}).
    """

    polygons: ControlTarget
    choices: dict[str, tuple[str, dict[str, str]]]


@lru_cache(maxsize=64)
def crystal_target(label_config: str, catalogue: Catalogue) -> CrystalTarget:
    """The crystal controls of a config.

    Raises:
        LabelConfigError: if the config has no PolygonLabels on an Image matching the catalogue.
    """
    polygons = control_target(label_config, catalogue, tag="PolygonLabels")
    choices: dict[str, tuple[str, dict[str, str]]] = {}
    for control in LabelInterface(label_config).controls:
        if control.tag != "Choices" or str(control.attr.get("perRegion", "")).lower() != "true":
            continue
        values = {str(v).lower(): str(v) for v in control.labels}
        for kind, vocabulary in _KINDS.items():
            if kind not in choices and len(set(values) & vocabulary) >= 2:
                choices[kind] = (control.name, values)
    return CrystalTarget(polygons, choices)


def crystal_results(
    image: np.ndarray, labels: np.ndarray, target: CrystalTarget, pixel_size_um: float | None, catalogue: Catalogue
) -> list[dict[str, Any]]:
    """Label Studio results: one polygon per crystal of a phase map, with its choices.

    Args:
        image: (H, W) BSE image as read (for zoning profiles).
        labels: (H, W) uint8 catalogue class indices.
        target: The project's crystal controls.
        pixel_size_um: Pixel size (populations need it; without it they are left out).
        catalogue: Classes of ``labels``.
    """
    height, width = labels.shape
    to_name = target.polygons.to_name
    results: list[dict[str, Any]] = []
    for crystal in crystal_polygons(image, labels, pixel_size_um, catalogue):
        label = target.polygons.labels.get(crystal.class_index)
        if label is None:
            continue
        region_id = f"crystal-{crystal.id}"
        points = to_percent(crystal.points, width, height)
        common = {"id": region_id, "to_name": to_name, "original_width": width, "original_height": height,
                  "image_rotation": 0, "origin": "prediction"}  # fmt: skip
        results.append(
            {
                **common,
                "from_name": target.polygons.from_name,
                "type": "polygonlabels",
                "value": {"points": points, "closed": True, "polygonlabels": [label]},
            }  # fmt: skip
        )
        for kind, value in (("population", crystal.population), ("zoning", crystal.zoning)):
            if kind in target.choices and value in target.choices[kind][1]:
                from_name, values = target.choices[kind]
                results.append(
                    {
                        **common,
                        "from_name": from_name,
                        "type": "choices",
                        "value": {"points": points, "closed": True, "choices": [values[value]]},
                    }  # fmt: skip
                )
    return results
