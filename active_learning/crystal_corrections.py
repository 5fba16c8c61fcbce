"""What an expert changed in a crystal-review pre-annotation (polygons with choices).

Label Studio keeps a region's ``id`` when the expert edits a predicted polygon or its
per-region choices, so predicted and submitted crystals are matched by id: *kept*
(still there; *reshaped* if its vertices moved, *relabelled* if its mineral changed),
*deleted* (predicted, gone) and *added* (drawn by the expert). Choices (population,
zoning) are compared on kept crystals as ``"proposed -> kept"`` counts, the crystal-level
counterpart of the pixel confusion matrix.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from ml_backend.crystal_results import CrystalTarget

NONE = "none"


def _by_id(results: Sequence[Mapping[str, Any]], from_name: str, key: str) -> dict[str, Any]:
    return {
        str(r["id"]): r["value"]
        for r in results or []
        if isinstance(r, Mapping) and r.get("from_name") == from_name and "id" in r
        and isinstance(r.get("value"), Mapping) and key in r["value"]
    }  # fmt: skip


def _first(value: Mapping[str, Any] | None, key: str) -> str:
    items = (value or {}).get(key) or []
    return str(items[0]) if items else NONE


def crystal_labels(results: Sequence[Mapping[str, Any]], target: CrystalTarget) -> list[dict[str, str]]:
    """The crystals of a result list: region id, mineral and each choice kind (``none`` when unset)."""
    polygons = _by_id(results, target.polygons.from_name, "points")
    choices = {kind: _by_id(results, name, "choices") for kind, (name, _) in target.choices.items()}
    return [
        {
            "id": region_id,
            "mineral": _first(value, "polygonlabels"),
            **{kind: _first(by_id.get(region_id), "choices") for kind, by_id in choices.items()},
        }  # fmt: skip
        for region_id, value in polygons.items()
    ]


def crystal_changes(
    predicted: Sequence[Mapping[str, Any]], final: Sequence[Mapping[str, Any]], target: CrystalTarget
) -> dict[str, Any]:
    """Crystal-level statistics of a review: kept/reshaped/relabelled/deleted/added and choice changes."""
    before = _by_id(predicted, target.polygons.from_name, "points")
    after = _by_id(final, target.polygons.from_name, "points")
    kept = sorted(set(before) & set(after))
    changes: dict[str, Any] = {
        "kept": len(kept),
        "reshaped": sum(before[i]["points"] != after[i]["points"] for i in kept),
        "relabelled": sum(_first(before[i], "polygonlabels") != _first(after[i], "polygonlabels") for i in kept),
        "deleted": len(set(before) - set(after)),
        "added": len(set(after) - set(before)),
        "choices": {},
    }
    for kind, (name, _) in target.choices.items():
        proposed, chosen = _by_id(predicted, name, "choices"), _by_id(final, name, "choices")
        pairs = Counter(f"{_first(proposed.get(i), 'choices')} -> {_first(chosen.get(i), 'choices')}" for i in kept)
        changes["choices"][kind] = dict(sorted(pairs.items()))
    return changes
