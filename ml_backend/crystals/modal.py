"""Modal proportions: area share of every phase of the mask (area % = volume % in a random section)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from label_config.catalogue import IGNORE_INDEX, Catalogue


def modal_proportions(mask: np.ndarray, catalogue: Catalogue, pixel_size_um: float | None) -> pd.DataFrame:
    """Area and area % of every catalogue class in a phase mask.

    Unlabelled pixels (255) are left out of every total. ``percent_without_epoxy`` leaves
    epoxy (vesicles, cracks, holes in the section) out too: the vesicle-free mode.

    Returns:
        One row per class: class_index, class_name, area_px, area_mm2 (when the pixel size is
        known), percent, percent_without_epoxy.
    """
    counts = np.bincount(mask.ravel(), minlength=256)
    areas = counts[: len(catalogue)].astype(np.int64)
    labelled = int(counts.sum() - counts[IGNORE_INDEX])
    epoxy = catalogue.index_of("Epoxy")
    solid = labelled - (int(areas[epoxy]) if epoxy is not None else 0)
    table = pd.DataFrame({"class_index": np.arange(len(catalogue)), "class_name": catalogue.names, "area_px": areas})
    if pixel_size_um is not None:
        table["area_mm2"] = areas * (pixel_size_um / 1000.0) ** 2
    table["percent"] = 100.0 * areas / max(labelled, 1)
    without = 100.0 * areas / max(solid, 1)
    if epoxy is not None:
        without[epoxy] = np.nan
    table["percent_without_epoxy"] = without
    return table
