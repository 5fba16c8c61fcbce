"""The one configuration object of the crystal analysis, and which catalogue classes are crystals.

Every threshold of the analysis lives here, with the reason for its default. Sizes are
equivalent circular diameters (ECD) of the 2-D sections, in micrometres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

from label_config.catalogue import Catalogue

NON_CRYSTAL_CLASSES = ("Epoxy", "Groundmass")


@dataclass(frozen=True)
class CrystalConfig:
    """Thresholds of crystal splitting, measurement, zoning, populations and calibration.

    Attributes:
        crystal_classes: Catalogue names (or synonyms) analysed as crystals; ``None`` means every
            class except ``non_crystal_classes``.
        non_crystal_classes: Classes that are never crystals (matrix, epoxy, vesicles, cracks).
        max_crack_width_px: Gaps of the same mineral up to this width (epoxy-filled cracks,
            polishing scratches) are closed before labelling, so a cracked crystal stays one.
        crack_fill_classes: Classes that fill cracks: only their pixels (and unlabelled
            ones) are closed, never groundmass or another mineral.
        min_area_px: Fragments smaller than this are dropped (not measured, not counted).
        marker_h_px: Depth (px of distance transform) a maximum must stand above its
            surroundings to seed its own region (h-maxima).
        neck_ratio: Two seeded regions stay separate crystals only where the neck between them
            is narrower than ``neck_ratio`` times the smaller one's inscribed radius; wider
            contacts are merged back (one crystal with an irregular outline).
        background_degree: Degree of the polynomial shading removed before normalisation
            (``ml_backend.normalise.remove_background``); 0 = none. Use 2 on images with
            visible shading: on synthetic sections with 6-8 % shading it cut calibration
            errors from up to 7 to under 4 mol % Fo, but on shading-free ones it added about
            1 mol % (the fit follows the modal mix of the blocks).
        edge_px: Pixels this close to another phase, a crack or another crystal are left out of
            grey-level statistics (beam spread and the PSF mix phases there).
        rim_depth_px: The rim level is the mean of the clean pixels at most this deep.
        core_fraction: The core level is the mean of the clean pixels deeper than this fraction
            of the crystal's largest depth.
        profile_bins: Shells of the core-to-rim profile (equal steps of relative depth).
        min_zoning_depth_px: Crystals whose largest depth is below this have rim and core shells
            too close together to tell; their zoning is ``"unresolved"``.
        zoning_sigma: A core-rim difference is zoning only when it exceeds this many standard
            errors of the difference (noise of the pixel means).
        zoning_noise_floor: ... and this many times the per-pixel image noise (a floor for
            shading and PSF residues, which do not average out).
        oscillation_sigma: A step between profile shells counts only above this many standard
            errors (and the noise floor).
        min_oscillations: Oscillatory = at least this many sign changes of the profile gradient.
        microphenocryst_min_um, phenocryst_min_um: Population thresholds (ECD, µm).
        cluster_max_components: Most clusters per mineral tried by the mixture model.
        cluster_min_crystals: Minerals with fewer crystals than this form a single cluster.
        probe_radius_px: Radius of the disc sampled around each microprobe point.
        min_probe_points: Fewest points a calibration is fitted to.
        extrapolation_margin: How far (in composition units, e.g. mol % Fo) predictions may
            leave the calibrated range before they are refused (NaN in maps).
        max_outside_fraction: A map or table whose crystal pixels lie beyond the margin in more
            than this fraction is refused: the sample is outside the calibration.
        confidence: Level of the calibration's prediction intervals.
        polygon_tolerance_px: Largest distance of a simplified polygon from the pixel outline.
    """

    crystal_classes: tuple[str, ...] | None = None
    non_crystal_classes: tuple[str, ...] = NON_CRYSTAL_CLASSES
    # instances
    max_crack_width_px: int = 3
    crack_fill_classes: tuple[str, ...] = ("Epoxy",)
    min_area_px: int = 12
    marker_h_px: float = 1.0
    neck_ratio: float = 0.8
    # grey levels
    background_degree: int = 0
    edge_px: int = 2
    rim_depth_px: float = 5.0
    core_fraction: float = 0.6
    profile_bins: int = 8
    # zoning
    min_zoning_depth_px: float = 8.0
    zoning_sigma: float = 3.0
    zoning_noise_floor: float = 0.5
    oscillation_sigma: float = 4.0
    min_oscillations: int = 2
    # populations
    microphenocryst_min_um: float = 30.0
    phenocryst_min_um: float = 300.0
    cluster_max_components: int = 5
    cluster_min_crystals: int = 20
    # calibration
    probe_radius_px: float = 3.0
    min_probe_points: int = 3
    extrapolation_margin: float = 5.0
    max_outside_fraction: float = 0.5
    confidence: float = 0.95
    # Label Studio polygons
    polygon_tolerance_px: float = 1.0

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                if not math.isfinite(value) or value < 0:
                    raise ValueError(f"crystal config: {spec.name} must be a finite number >= 0, got {value!r}")
        if self.min_area_px < 1 or self.profile_bins < 2 or self.min_probe_points < 3:
            raise ValueError("crystal config: min_area_px must be >= 1, profile_bins >= 2 and min_probe_points >= 3")
        if not 0 < self.neck_ratio <= 1 or not 0 < self.core_fraction < 1:
            raise ValueError(
                f"crystal config: neck_ratio must lie in (0, 1] and core_fraction in (0, 1), got {self.neck_ratio}, {self.core_fraction}"
            )
        if not 0 < self.confidence < 1 or not 0 < self.max_outside_fraction <= 1:
            raise ValueError("crystal config: confidence must lie in (0, 1) and max_outside_fraction in (0, 1]")
        if not 0 < self.microphenocryst_min_um < self.phenocryst_min_um:
            raise ValueError(
                f"crystal config: size thresholds must satisfy 0 < microphenocryst < phenocryst, "
                f"got {self.microphenocryst_min_um}, {self.phenocryst_min_um}"
            )

    def replace(self, **changes: Any) -> CrystalConfig:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)


def crystal_class_indices(catalogue: Catalogue, config: CrystalConfig) -> list[int]:
    """Catalogue indices of the classes analysed as crystals.

    Raises:
        ValueError: naming an unknown class and listing the catalogue's classes.
    """

    def index(name: str) -> int:
        found = catalogue.index_of(name)
        if found is None:
            raise ValueError(f"unknown crystal class {name!r}; catalogue classes are: {', '.join(catalogue.names)}")
        return found

    if config.crystal_classes is not None:
        return sorted({index(name) for name in config.crystal_classes})
    excluded = {catalogue.index_of(name) for name in config.non_crystal_classes}
    return [i for i in range(len(catalogue)) if i not in excluded]


def crack_fill_indices(catalogue: Catalogue, config: CrystalConfig) -> tuple[int, ...]:
    """Catalogue indices of the crack-filling classes present in the catalogue."""
    found = (catalogue.index_of(name) for name in config.crack_fill_classes)
    return tuple(sorted(i for i in found if i is not None))
