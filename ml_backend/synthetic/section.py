"""``generate_section``: one synthetic BSE thin-section image with its ground truth."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from label_config.catalogue import Catalogue, load_catalogue
from ml_backend.synthetic.config import SynthConfig
from ml_backend.synthetic.detector import detector_params, render
from ml_backend.synthetic.scene import Crystal, build_scene

MIN_SIZE = 32
MAX_SIZE = 16384
CRYSTAL_COLUMNS = (
    "id", "class_index", "class_name", "zoning", "composition_variable", "core_composition", "rim_composition",
    "centroid_row", "centroid_col", "area_px", "equivalent_diameter_um", "population", "host_id", "touches_border",
)  # fmt: skip
_STREAMS = ("acquisition", "groundmass", "crystals", "vesicles", "cracks", "noise")


@dataclass
class SyntheticSection:
    """A synthetic BSE image and its ground truth.

    Attributes:
        image: (H, W) uint16 BSE image.
        classes: (H, W) uint8 catalogue class indices (crack and vesicle pixels are Epoxy).
        instances: (H, W) int32 crystal ids, 0 = no crystal (groundmass incl. its microlites,
            vesicles). Ids run 1..n; a crack inside a crystal keeps the crystal's id.
        crystals: One row per id of ``instances`` (columns ``CRYSTAL_COLUMNS``).
        pixel_size_um: Pixel size in micrometres.
        seed: The seed that reproduces this section.
        eta: (H, W) float32 noise-free backscatter coefficient before PSF, shading and noise.
        params: The drawn acquisition and texture parameters (gain, offset, dose, ...).
        config: The configuration the section was drawn from.
        class_names: Catalogue class names, in index order.
    """

    image: np.ndarray
    classes: np.ndarray
    instances: np.ndarray
    crystals: pd.DataFrame
    pixel_size_um: float
    seed: int
    eta: np.ndarray | None = None
    params: dict[str, Any] = field(default_factory=dict)
    config: SynthConfig | None = None
    class_names: list[str] = field(default_factory=list)


@lru_cache(maxsize=1)
def _default_catalogue() -> Catalogue:
    return load_catalogue()  # parsing the formulas takes ~60 ms: once per process, not per section


def _shape_of(size: int | tuple[int, int]) -> tuple[int, int]:
    dims = (size, size) if isinstance(size, (int, np.integer)) else tuple(size)
    if len(dims) != 2 or not all(isinstance(d, (int, np.integer)) for d in dims):
        raise ValueError(f"size must be an int or (height, width) of ints, got {size!r}")
    if not all(MIN_SIZE <= d <= MAX_SIZE for d in dims):
        raise ValueError(f"size must be between {MIN_SIZE} and {MAX_SIZE} px per side, got {size!r}")
    return int(dims[0]), int(dims[1])


def crystal_table(
    instances: np.ndarray, crystals: list[Crystal], catalogue: Catalogue, pixel_size_um: float
) -> tuple[np.ndarray, pd.DataFrame]:
    """Drop fully hidden crystals, renumber ids 1..n, and measure what is visible.

    Returns:
        (renumbered instance map, table with one row per id).
    """
    n = len(crystals)
    area = np.bincount(instances.ravel(), minlength=n + 1)
    alive = np.nonzero(area[1:])[0] + 1
    if len(alive) < n:
        lut = np.zeros(n + 1, np.int32)
        lut[alive] = np.arange(1, len(alive) + 1, dtype=np.int32)
        instances = lut[instances]
    new_id = {int(old): k + 1 for k, old in enumerate(alive)}
    m = len(alive) + 1
    flat = instances.ravel()
    inside = np.flatnonzero(flat)
    ids = flat[inside]
    counts = np.bincount(ids, minlength=m).astype(float)
    rows = np.bincount(ids, weights=inside // instances.shape[1], minlength=m)
    cols = np.bincount(ids, weights=inside % instances.shape[1], minlength=m)
    border = np.zeros(m, bool)
    border[np.concatenate((instances[0], instances[-1], instances[:, 0], instances[:, -1]))] = True
    records = []
    for old in alive:
        c = crystals[old - 1]
        k = new_id[int(old)]
        records.append({
            "id": k,
            "class_index": c.class_index,
            "class_name": catalogue.classes[c.class_index].name,
            "zoning": c.zoning,
            "composition_variable": c.variable,
            "core_composition": c.core,
            "rim_composition": c.rim,
            "centroid_row": rows[k] / counts[k],
            "centroid_col": cols[k] / counts[k],
            "area_px": int(counts[k]),
            "equivalent_diameter_um": float(np.sqrt(4.0 * counts[k] / np.pi) * pixel_size_um),
            "population": c.population,
            "host_id": new_id.get(c.host_id, 0),
            "touches_border": bool(border[k]),
        })  # fmt: skip
    table = pd.DataFrame.from_records(records, columns=list(CRYSTAL_COLUMNS))
    return instances, table.astype({"id": "int32", "class_index": "int32", "area_px": "int64", "host_id": "int32"})


def generate_section(
    size: int | tuple[int, int],
    seed: int,
    config: SynthConfig | None = None,
    catalogue: Catalogue | None = None,
) -> SyntheticSection:
    """Draw one synthetic BSE thin section with ground truth; the same seed gives identical arrays.

    Args:
        size: Side length in px, or (height, width).
        seed: Non-negative integer seed.
        config: Ranges to draw from (``SynthConfig()`` by default; ``SynthConfig.ideal()`` for
            a noise-free linear rendering).
        catalogue: Mineral catalogue (the built-in basaltic one by default).

    The scene (crystals, vesicles, cracks, groundmass) and the acquisition draw from separate
    random streams spawned from ``seed``, and everything but the shading surface is local, so
    a large mosaic can later be drawn scene-first and rendered tile by tile.

    Raises:
        ValueError: for a bad size or seed, or a catalogue without Epoxy/Groundmass.
    """
    shape = _shape_of(size)
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    config = config or SynthConfig()
    catalogue = catalogue or _default_catalogue()
    rngs = dict(
        zip(_STREAMS, (np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(len(_STREAMS))))
    )
    pixel_size = float(rngs["acquisition"].uniform(*config.pixel_size_um))
    params = detector_params(config, rngs["acquisition"])
    scene = build_scene(shape, pixel_size, config, catalogue, rngs)
    instances, table = crystal_table(scene.instances, scene.crystals, catalogue, pixel_size)
    image = render(scene.eta, params, rngs["noise"])
    params.update(scene.realised)
    return SyntheticSection(
        image, scene.classes, instances, table, pixel_size, int(seed), scene.eta, params, config, catalogue.names
    )
