"""Stitching tile annotations or predictions back into one whole-section class mask.

The tiles are the Label Studio tasks made by :mod:`active_learning.sections.ingest`; their
data says where each tile sits in the mosaic. Each tile's brush regions are decoded to
catalogue class indices by :func:`ml_backend.regions.regions_to_class_map` (synonyms
included; a label the catalogue lacks leaves its region unlabelled, with a warning).
Where tiles overlap, a labelled pixel of an annotation beats one of a prediction, and
among equals the tile whose border is farther away (the pixel nearer its centre) wins.
Pixels no tile labels stay 255. The mask is built band by band and written as a tiled
TIFF, fetching and decoding a tile only while the band crosses it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from active_learning.sections.ingest import project_label_config
from label_config.catalogue import IGNORE_INDEX, Catalogue
from ml_backend.label_map import control_target
from ml_backend.label_studio import LabelStudioClient
from ml_backend.mosaic.writer import write_mask_tiff
from ml_backend.regions import regions_to_class_map

log = logging.getLogger(__name__)

SOURCES = ("annotations", "predictions", "both")
_KIND_RANK = {"annotation": 2, "prediction": 1}
_RANK_STEP = 1 << 16  # border distances stay below this


@dataclass(frozen=True)
class Tile:
    """One task's tile: where it sits in the mosaic."""

    task_id: int
    x: int
    y: int
    width: int
    height: int

    @property
    def y1(self) -> int:
        """First mosaic row below the tile."""
        return self.y + self.height


def _border_distance(height: int, width: int) -> np.ndarray:
    """Distance (px) of every pixel of a tile to the tile's nearest edge."""
    return np.minimum.outer(
        np.minimum(np.arange(height), np.arange(height)[::-1]), np.minimum(np.arange(width), np.arange(width)[::-1])
    )


def _latest(items: list[dict]) -> dict | None:
    return max(items, key=lambda item: item["id"], default=None)


class Stitcher:
    """Builds a section's mask from the tiles of one mosaic in a Label Studio project.

    Args:
        client: Label Studio client.
        project_id: The project holding the tile tasks.
        catalogue: Classes the mask indexes.
        source: ``annotations``, ``predictions`` or ``both`` (annotations win).
        mosaic: Name of the mosaic to stitch; needed only when the project holds several.

    Raises:
        ValueError: a bad source, a missing project, no tile tasks, or several mosaics
            and no ``mosaic`` to choose.
    """

    def __init__(
        self,
        client: LabelStudioClient,
        project_id: int,
        catalogue: Catalogue,
        source: str = "annotations",
        mosaic: str | None = None,
    ) -> None:
        if source not in SOURCES:
            raise ValueError(f"unknown stitch source {source!r}; valid sources: {', '.join(SOURCES)}")
        self.client, self.catalogue, self.source = client, catalogue, source
        self.from_name = control_target(project_label_config(client, project_id), catalogue).from_name
        found: dict[str, dict] = {}
        tiles: dict[str, list[Tile]] = {}
        for task in client.list_tasks(project_id):
            data = task.get("data", {})
            info, where = data.get("mosaic"), data.get("tile")
            if not isinstance(info, dict) or not isinstance(where, dict):
                continue
            found[info["name"]] = {**info, "pixel_size_um": data.get("pixel_size_um")}
            tiles.setdefault(info["name"], []).append(
                Tile(int(task["id"]), int(where["x"]), int(where["y"]), int(where["width"]), int(where["height"]))
            )
        if not found:
            raise ValueError(f"project {project_id} has no tile tasks (made by `scraiber ingest`)")
        if mosaic is None and len(found) > 1:
            raise ValueError(
                f"project {project_id} holds tiles of several mosaics ({', '.join(sorted(found))}); pass --mosaic"
            )
        name = mosaic if mosaic is not None else next(iter(found))
        if name not in found:
            raise ValueError(f"project {project_id} has no tiles of mosaic {name!r}; it has {', '.join(sorted(found))}")
        self.mosaic = found[name]
        self.shape = (int(self.mosaic["height"]), int(self.mosaic["width"]))
        self.tiles = sorted(tiles[name], key=lambda t: (t.y, t.x))
        self.labelled = 0

    def _labels(self, tile: Tile) -> tuple[np.ndarray, np.ndarray] | None:
        """(classes, rank) of a tile, or None when it has nothing of the chosen source."""
        chosen = None
        if self.source in ("annotations", "both"):
            kept = [a for a in self.client.annotations(tile.task_id) if not a.get("was_cancelled") and a.get("result")]
            chosen = ("annotation", _latest(kept)) if kept else None
        if chosen is None and self.source in ("predictions", "both"):
            kept = [p for p in self.client.task_predictions(tile.task_id) if p.get("result")]
            chosen = ("prediction", _latest(kept)) if kept else None
        if chosen is None:
            return None
        kind, item = chosen
        assert item is not None  # _latest of a non-empty list
        try:
            classes, unknown = regions_to_class_map(
                item["result"], (tile.height, tile.width), self.catalogue, self.from_name
            )
        except ValueError as exc:
            raise ValueError(f"task {tile.task_id} ({kind} {item['id']}): {exc}") from None
        if unknown:
            log.warning(
                "task %s (%s %s): labels %s match no catalogue class; their regions stay unlabelled",
                tile.task_id, kind, item["id"], ", ".join(map(repr, unknown)),
            )  # fmt: skip
        self.labelled += 1
        return classes, _KIND_RANK[kind] * _RANK_STEP + _border_distance(tile.height, tile.width)

    def bands(self, band: int = 512, progress: bool = False) -> Iterator[np.ndarray]:
        """uint8 bands of the full width, top to bottom; each tile is fetched once."""
        height, width = self.shape
        active: dict[int, tuple[Tile, tuple[np.ndarray, np.ndarray] | None]] = {}
        upcoming = iter(self.tiles)
        following = next(upcoming, None)
        with tqdm(total=len(self.tiles), desc="tiles", unit="tile", disable=not progress) as bar:
            for b0 in range(0, height, band):
                b1 = min(b0 + band, height)
                while following is not None and following.y < b1:
                    active[following.task_id] = (following, self._labels(following))
                    following = next(upcoming, None)
                    bar.update(1)
                classes = np.full((b1 - b0, width), IGNORE_INDEX, dtype=np.uint8)
                rank = np.zeros((b1 - b0, width), dtype=np.int32)
                for tile, labels in active.values():
                    if labels is None:
                        continue
                    ys, ye = max(b0, tile.y), min(b1, tile.y1)
                    if ys >= ye:
                        continue
                    tile_cls = labels[0][ys - tile.y : ye - tile.y]
                    tile_rank = labels[1][ys - tile.y : ye - tile.y]
                    region = (slice(ys - b0, ye - b0), slice(tile.x, tile.x + tile.width))
                    better = (tile_cls != IGNORE_INDEX) & (tile_rank > rank[region])
                    classes[region][better] = tile_cls[better]
                    rank[region][better] = tile_rank[better]
                yield classes
                active = {key: value for key, value in active.items() if value[0].y1 > b1}

    def write(self, out: str | Path, progress: bool = False) -> tuple[Path, Path]:
        """Write the stitched mask as a tiled TIFF with its JSON sidecar."""
        extra = {
            "stitched_from": self.source,
            "mosaic": {k: self.mosaic[k] for k in ("name", "sha256")},
            "tiles": len(self.tiles),
        }
        paths = write_mask_tiff(
            out, self.shape, self.bands(progress=progress), self.catalogue, self.mosaic["pixel_size_um"], extra
        )
        log.info("stitched %d of %d tiles with %s", self.labelled, len(self.tiles), self.source)
        return paths
