"""The whole crystal analysis of one field: image + phase mask (+ probe points) -> tables and maps."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from label_config.catalogue import IGNORE_INDEX, Catalogue, load_catalogue
from ml_backend.crystals.calibration import (
    BseCalibration,
    ProbePoints,
    calibrate,
    calibration_target,
    composition_map,
    crystal_compositions,
)
from ml_backend.crystals.config import CrystalConfig
from ml_backend.crystals.grey_levels import grey_levels
from ml_backend.crystals.instances import CrystalInstances, label_crystals, validate_mask
from ml_backend.crystals.measure import measure_crystals
from ml_backend.crystals.modal import modal_proportions
from ml_backend.crystals.populations import cluster_crystals, describe_clusters, size_classes
from ml_backend.crystals.size_distribution import size_distribution
from ml_backend.crystals.zoning import ZONING_LABELS
from ml_backend.normalise import IntensityRange, percentile_range, remove_background

log = logging.getLogger(__name__)


@dataclass
class Calibrated:
    """A calibration and what it produced."""

    calibration: BseCalibration
    class_index: int
    points: pd.DataFrame
    composition_map: np.ndarray


@dataclass
class CrystalAnalysis:
    """Everything the crystal analysis of one field found.

    Attributes:
        table: One row per crystal (see ``measure_crystals``), with ``population`` and
            ``cluster`` columns, and core/rim compositions when calibrated.
        instances: Label map, depth map and per-crystal arrays.
        modal: Area % per class (``modal_proportions``).
        size_distribution: CSD per mineral (``size_distribution``).
        clusters: One row per cluster with a description (``describe_clusters``).
        zoning_summary: Counts and shares of zoning classes per mineral.
        pixel_size_um: Pixel size, or None (sizes then in px only).
        intensity_range: Grey levels mapped to 0 and 1 by the normalisation.
        calibrated: The BSE-to-composition calibration and its map, when probe points were given.
        notes: Plain-language remarks for the report (unknown pixel size, ...).
    """

    table: pd.DataFrame
    instances: CrystalInstances
    modal: pd.DataFrame
    size_distribution: pd.DataFrame
    clusters: pd.DataFrame
    zoning_summary: pd.DataFrame
    pixel_size_um: float | None
    intensity_range: IntensityRange
    calibrated: Calibrated | None = None
    notes: list[str] = field(default_factory=list)


def validate_image(image: np.ndarray, mask: np.ndarray) -> None:
    """Raise ``ValueError`` naming the problem with a BSE image and its mask."""
    if not isinstance(image, np.ndarray) or image.ndim != 2 or 0 in image.shape:
        raise ValueError(
            f"BSE image must be a non-empty 2-D array, got {getattr(image, 'shape', type(image).__name__)}"
        )
    if image.dtype.kind not in "uif":
        raise ValueError(f"BSE image must be numeric, got dtype {image.dtype}")
    if image.shape != mask.shape:
        raise ValueError(
            f"image {image.shape} and phase mask {mask.shape} differ in shape; they must be the same field"
        )
    if image.dtype.kind == "f" and not np.isfinite(image).all():
        raise ValueError("BSE image holds NaN or infinite values")


def zoning_summary(table: pd.DataFrame, variable: str | None = None) -> pd.DataFrame:
    """Counts and shares of each zoning class per mineral, with median rim - core contrast.

    Crystals whose zoning is unresolved are counted but left out of the shares. With a
    calibrated ``variable`` (e.g. ``Fo``), the median core and rim compositions are added.
    """
    rows = []
    for name, group in table.groupby("class_name", sort=False):
        counts = group["zoning"].value_counts()
        resolved = int(len(group) - counts.get("unresolved", 0))
        row = {"class_name": name, "crystals": len(group), "resolved": resolved}
        for label in ZONING_LABELS:
            row[f"n_{label}"] = int(counts.get(label, 0))
        for label in ZONING_LABELS[:-1]:
            row[f"share_{label}"] = counts.get(label, 0) / resolved if resolved else float("nan")
        zoned = group[group["zoning"].isin(("normal", "reverse"))]
        row["median_rim_minus_core"] = float(zoned["rim_minus_core"].median()) if len(zoned) else float("nan")
        if variable is not None:
            for column in (f"core_{variable}", f"rim_{variable}"):
                row[f"median_{column}"] = float(group[column].median())
        rows.append(row)
    return pd.DataFrame.from_records(rows)


def analyse_crystals(
    image: np.ndarray,
    mask: np.ndarray,
    pixel_size_um: float | None = None,
    catalogue: Catalogue | None = None,
    config: CrystalConfig | None = None,
    probe_points: ProbePoints | None = None,
    probe_mineral: str | None = None,
    progress: bool = False,
) -> CrystalAnalysis:
    """Crystal instances, measurements, zoning, populations, CSD, modes and (optionally) compositions.

    Args:
        image: (H, W) BSE image as read (any numeric dtype); normalised here once, by
            percentiles of the whole field (after shading removal if ``background_degree``).
        mask: (H, W) uint8 catalogue class indices (255 = no label).
        pixel_size_um: Pixel size in µm, or None (sizes in px; populations "unknown").
        catalogue: Classes of the mask (the built-in catalogue by default).
        config: Thresholds (``CrystalConfig()`` by default).
        probe_points: Microprobe points to calibrate BSE level to composition.
        probe_mineral: Mineral the probe points were measured on (default: the one whose
            solid-solution variable names the points' value column, e.g. Fo -> Olivine).
        progress: tqdm bar over crystal pieces on stderr.

    Raises:
        ValueError: for bad inputs, or a calibration that is refused (see ``calibration``).
    """
    catalogue = catalogue or load_catalogue()
    config = config or CrystalConfig()
    validate_mask(mask, len(catalogue))
    validate_image(image, mask)
    if pixel_size_um is not None and not (np.isfinite(pixel_size_um) and pixel_size_um > 0):
        raise ValueError(f"pixel size must be a positive number of micrometres, got {pixel_size_um}")
    notes = []
    if pixel_size_um is None:
        notes.append("pixel size unknown: sizes are in px, populations are 'unknown', densities per million px")
    if config.background_degree:
        image = remove_background(image, config.background_degree)
    intensity = percentile_range(image)
    normalised = intensity.apply(image)
    instances = label_crystals(mask, catalogue, config, progress=progress)
    log.info("%d crystals", instances.count)
    levels = grey_levels(normalised, mask, instances, config)
    table = measure_crystals(instances, levels, catalogue, pixel_size_um, config)
    table["population"] = size_classes(table["ecd_um"] if pixel_size_um is not None else None, config, len(table))
    table["cluster"] = cluster_crystals(table, config) if len(table) else np.empty(0, dtype=object)
    calibrated = None
    if probe_points is not None:
        target = calibration_target(catalogue, probe_points.variable, probe_mineral)
        calibration, points = calibrate(normalised, mask, probe_points, target, catalogue, config)
        table = crystal_compositions(table, target, calibration, config)
        calibrated = Calibrated(
            calibration, target, points, composition_map(normalised, mask, target, calibration, config)
        )
    labelled = int(np.count_nonzero(mask != IGNORE_INDEX))
    return CrystalAnalysis(
        table=table,
        instances=instances,
        modal=modal_proportions(mask, catalogue, pixel_size_um),
        size_distribution=size_distribution(table, mask.shape, labelled),
        clusters=describe_clusters(table) if len(table) else pd.DataFrame(),
        zoning_summary=zoning_summary(table, calibrated.calibration.variable if calibrated else None),
        pixel_size_um=pixel_size_um,
        intensity_range=intensity,
        calibrated=calibrated,
        notes=notes,
    )
