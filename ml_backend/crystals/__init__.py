"""Crystal analysis of BSE images: instances, size, shape, zoning, populations, compositions.

Public API::

    from ml_backend.crystals import analyse_crystals, crystal_polygons, CrystalConfig

    analysis = analyse_crystals(image, mask, pixel_size_um=1.5)     # tables, maps, notes
    analysis.table                                                   # one row per crystal
    polygons = crystal_polygons(image, mask, 1.5)                    # for Label Studio PolygonLabels

Command line: ``scraiber crystals IMAGE --mask MASK --out DIR`` and ``scraiber bench crystals``.
"""

from ml_backend.crystals.analysis import CrystalAnalysis, analyse_crystals
from ml_backend.crystals.calibration import BseCalibration, ProbePoints, fit_calibration, read_probe_points
from ml_backend.crystals.config import CrystalConfig, crystal_class_indices
from ml_backend.crystals.instances import CrystalInstances, label_crystals
from ml_backend.crystals.polygons import CrystalPolygon, crystal_polygons, polygons_from_table, to_percent
from ml_backend.crystals.populations import POPULATIONS
from ml_backend.crystals.zoning import ZONING_LABELS

__all__ = [
    "POPULATIONS", "ZONING_LABELS", "BseCalibration", "CrystalAnalysis", "CrystalConfig", "CrystalInstances",
    "CrystalPolygon", "ProbePoints", "analyse_crystals", "crystal_class_indices", "crystal_polygons",
    "fit_calibration", "label_crystals", "polygons_from_table", "read_probe_points", "to_percent",
]  # fmt: skip
