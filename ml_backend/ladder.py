"""The brightness ladder: do the named classes of a prediction keep the catalogue's BSE order?

BSE grey level rises with the backscatter coefficient eta, whatever the detector's gain,
offset or (monotone) response. So in any one image, a class whose catalogue eta is clearly
lower (by more than ``relative_gap``) must not look brighter than another: epoxy darkest,
plagioclase below the mafic phases, Fe-Ti oxide brightest. Classes with nearly the same eta
(olivine, clinopyroxene, groundmass) are not compared. A violated ladder says that the
names, not only the boundaries, are in doubt: the prediction says so to the expert.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from label_config import Catalogue
from ml_backend.normalise import percentile_range


@dataclass(frozen=True)
class LadderCheck:
    """The outcome of :func:`check_ladder`.

    Attributes:
        violations: ``(darker class, brighter class)`` name pairs whose order the image reverses.
        levels: Median normalised grey level of each class that was measured.
    """

    violations: tuple[tuple[str, str], ...] = ()
    levels: dict[str, float] = field(default_factory=dict)

    @property
    def consistent(self) -> bool:
        """True when no pair of classes is in the wrong order."""
        return not self.violations

    def message(self) -> str:
        """One line for the expert (empty when consistent)."""
        pairs = "; ".join(f"{dark} looks brighter than {bright}" for dark, bright in self.violations)
        return f"BSE brightness ladder inconsistent ({pairs}): check the mineral names" if pairs else ""


def check_ladder(
    image: np.ndarray,
    labels: np.ndarray,
    catalogue: Catalogue,
    relative_gap: float = 0.1,
    tolerance: float = 0.02,
    min_pixels: int = 200,
    erode: int = 2,
) -> LadderCheck:
    """Compare each class's median grey level (away from its edges) with the catalogue's eta order.

    Args:
        image: Raw 2-D grey image.
        labels: (H, W) predicted class indices.
        catalogue: The classes and their eta.
        relative_gap: Pairs are compared only when their eta differ by more than this share of the lower.
        tolerance: Normalised grey levels (0-1 over the image's 0.5-99.5 percentiles) a pair may be out of order by.
        min_pixels: Classes with fewer interior pixels are not measured.
        erode: Pixels removed from every class edge before measuring (blur and boundary mixing).

    Raises:
        ValueError: if image and labels differ in shape.
    """
    if image.shape != labels.shape:
        raise ValueError(f"image {image.shape} and labels {labels.shape} differ in shape")
    grey = percentile_range(image).apply(image)
    levels: dict[int, float] = {}
    for index in np.unique(labels):
        if index >= len(catalogue):
            continue
        inside = ndimage.binary_erosion(labels == index, iterations=erode) if erode else labels == index
        if inside.sum() >= min_pixels:
            levels[int(index)] = float(np.median(grey[inside]))
    eta = {i: catalogue.classes[i].eta for i in levels}
    violations = []
    for dark in levels:
        for bright in levels:
            clearly = eta[bright] > eta[dark] * (1 + relative_gap)
            if clearly and levels[dark] > levels[bright] + tolerance:
                violations.append((catalogue.names[dark], catalogue.names[bright]))
    return LadderCheck(tuple(sorted(violations)), {catalogue.names[i]: round(v, 4) for i, v in levels.items()})
