"""Crystal instances from a phase mask: crack closing, splitting of touching crystals, border flags.

Per crystal class: gaps of the same mineral up to ``max_crack_width_px`` wide that are
filled with epoxy (or unlabelled) are closed with a square closing, so a cracked crystal
stays one; then every connected piece is looked at in its own bounding box. A piece with
one regional maximum of its distance transform is one crystal. Otherwise every maximum
seeds a marker-controlled watershed on the negative distance transform, and the regions
are merged back in a watershed hierarchy (deepest contact first) when the lower dome
stands less than ``marker_h_px`` above the contact (the h-maxima criterion), when the
contact is wide (the "neck" criterion: a neck narrower than ``neck_ratio`` = 0.8 x the
smaller region's inscribed radius separates two crystals, a wider one is an irregular
outline of one crystal), or when a region is a fragment below ``min_area_px``. This keeps
laths and rounded crystals, whose digitised distance transforms have rows of equal
maxima, in one piece (plain ``skimage.morphology.h_maxima`` cuts a tilted lath into one
marker per peak pixel). Crystals touching the field's edge are flagged (their size is cut).

Measured on synthetic sections (``scraiber synth`` defaults, 24 sections of 1024 px):
matched-instance F1 0.98 at IoU >= 0.5 (README, "Crystals").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import watershed
from tqdm import tqdm

from label_config.catalogue import IGNORE_INDEX, Catalogue
from ml_backend.crystals.config import CrystalConfig, crack_fill_indices, crystal_class_indices

_SPLIT_MIN_AREA_FACTOR = 4  # pieces smaller than 4 x min_area_px cannot hold two crystals worth splitting


@dataclass
class CrystalInstances:
    """Crystal instances of one field.

    Attributes:
        labels: (H, W) int32 crystal ids 1..n, 0 = no crystal. Closed cracks belong to the
            crystal they cut; inclusions of another mineral do not.
        depth: (H, W) float32 distance (px) from each crystal pixel to the crystal's outline
            (inclusions filled, so they do not count as outline); 0 outside crystals.
        class_index: (n + 1,) catalogue class of each id (entry 0 is -1).
        max_depth: (n + 1,) largest depth of each crystal (inscribed radius, px).
        touches_border: (n + 1,) True where the crystal reaches the edge of the field.
    """

    labels: np.ndarray
    depth: np.ndarray
    class_index: np.ndarray
    max_depth: np.ndarray
    touches_border: np.ndarray

    @property
    def count(self) -> int:
        """Number of crystals."""
        return int(len(self.class_index) - 1)


def validate_mask(mask: np.ndarray, n_classes: int) -> None:
    """Raise ``ValueError`` naming the problem with a phase mask (shape, dtype, indices)."""
    if not isinstance(mask, np.ndarray) or mask.ndim != 2 or 0 in mask.shape:
        raise ValueError(f"phase mask must be a non-empty 2-D array, got {getattr(mask, 'shape', type(mask).__name__)}")
    if mask.dtype != np.uint8:
        raise ValueError(f"phase mask must be uint8 catalogue indices, got dtype {mask.dtype}")
    if int(mask.max()) < n_classes:  # the common case, without a histogram of the whole mask
        return
    bad = np.unique(mask[(mask >= n_classes) & (mask != IGNORE_INDEX)]).tolist()
    if bad:
        raise ValueError(
            f"phase mask holds class indices {bad} outside the catalogue's 0-{n_classes - 1} (and {IGNORE_INDEX})"
        )


def _shifted_reduce(binary: np.ndarray, size: int, axis: int, dilate: bool) -> np.ndarray:
    """1-D dilation (OR) or erosion (AND) over a centred window, by shifted slices.

    Outside the image counts as background for dilation and foreground for erosion, so a
    closing never eats into the image's edge.
    """
    r = size // 2
    pad = [(0, 0), (0, 0)]
    pad[axis] = (r, r)
    padded = np.pad(binary, pad, constant_values=not dilate)
    n = binary.shape[axis]

    def window(k: int) -> np.ndarray:
        return padded[k : k + n] if axis == 0 else padded[:, k : k + n]

    out = window(0).copy()
    combine = np.logical_or if dilate else np.logical_and
    for k in range(1, size):
        combine(out, window(k), out=out)
    return out


def square_closing(binary: np.ndarray, size: int) -> np.ndarray:
    """Binary closing with a ``size`` x ``size`` square (separable, shifted slices).

    On 16.7 Mpx, size 5: 0.2 s here against 1.6 s for scipy's max/min filters on uint8
    and about 7 s for ``binary_closing`` with a disc.
    """
    out = binary
    for dilate in (True, False):
        for axis in (0, 1):
            out = _shifted_reduce(out, size, axis, dilate)
    return out


def close_cracks(mask: np.ndarray, class_index: int, fillable: np.ndarray, width_px: int) -> np.ndarray:
    """Pixels of one mineral with its cracks (gaps up to ``width_px`` wide) closed.

    Only ``fillable`` pixels (crack fillings: epoxy, unlabelled) are filled, so closing never
    takes pixels from another crystal or from the groundmass in the notch where two crystals
    touch.
    """
    phase = mask == class_index
    if width_px <= 0:
        return phase
    size = 2 * ((width_px + 1) // 2) + 1  # a (2r+1) square closes gaps up to 2r px
    return phase | (square_closing(phase, size) & fillable)


def _pair_table(regions: np.ndarray, height: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Adjacent region pairs (4-connectivity) and the pass height between them.

    The pass height of a pair is the largest ``min(height[p], height[q])`` over neighbouring
    pixels p, q of the two regions: how deep the contact (neck) between them reaches.
    """
    a_parts, b_parts, h_parts = [], [], []
    for first, second in ((np.s_[:, :-1], np.s_[:, 1:]), (np.s_[:-1, :], np.s_[1:, :])):
        a, b = regions[first], regions[second]
        contact = (a != b) & (a > 0) & (b > 0)
        a_parts.append(np.minimum(a[contact], b[contact]))
        b_parts.append(np.maximum(a[contact], b[contact]))
        h_parts.append(np.minimum(height[first][contact], height[second][contact]))
    a, b, h = (np.concatenate(p) for p in (a_parts, b_parts, h_parts))
    if a.size == 0:
        return a, b, h
    key = a.astype(np.int64) * (int(regions.max()) + 1) + b
    order = np.lexsort((h, key))
    last = np.r_[key[order][1:] != key[order][:-1], True]
    keep = order[last]
    return a[keep], b[keep], h[keep]


def merge_regions(regions: np.ndarray, height: np.ndarray, config: CrystalConfig) -> np.ndarray:
    """Merge the over-split watershed regions of one connected piece.

    Contacts are visited from the deepest pass down (as in a watershed hierarchy) and the
    two sides joined when the lower side's dome stands less than ``marker_h_px`` above the
    pass (an h-maximum test), when the contact is wide (pass >= ``neck_ratio`` x the lower
    peak), or when a side is smaller than ``min_area_px`` (it joins its deepest-pass
    neighbour). What is left apart is separate crystals.

    Args:
        regions: int labels 1..k of one connected piece (0 outside).
        height: Distance transform of the piece.
        config: Thresholds.

    Returns:
        Labels 1..m (m <= k), 0 outside.
    """
    k = int(regions.max())
    a, b, passes = _pair_table(regions, height)
    peak = np.zeros(k + 1)
    peak[1:] = ndi.maximum(height, regions, np.arange(1, k + 1))
    area = np.bincount(regions.ravel(), minlength=k + 1)
    parent = np.arange(k + 1)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in np.argsort(-passes, kind="stable"):  # a handful of contacts per piece
        ra, rb = root(int(a[i])), root(int(b[i]))
        if ra == rb:
            continue
        low = min(peak[ra], peak[rb])
        if (
            low - passes[i] < config.marker_h_px
            or passes[i] >= config.neck_ratio * low
            or min(area[ra], area[rb]) < config.min_area_px
        ):
            parent[rb] = ra
            peak[ra] = max(peak[ra], peak[rb])
            area[ra] += area[rb]
    roots = np.array([root(i) for i in range(k + 1)])
    _, lut = np.unique(roots, return_inverse=True)  # root of 0 is 0, so background stays 0
    return lut.astype(np.int32)[regions]


def fill_holes(region: np.ndarray) -> np.ndarray:
    """A boolean region with its holes (inclusions of other phases) filled.

    Background components that do not reach the crop's edge are holes; labelling them is
    much faster than ``ndi.binary_fill_holes`` (iterated dilation) on large crops.
    """
    background, n = ndi.label(~region)
    if n <= 1:
        return region
    edge = np.unique(np.concatenate((background[0], background[-1], background[:, 0], background[:, -1])))
    return region | ~np.isin(background, edge)


def _padded(piece: np.ndarray, rows: slice, cols: slice, shape: tuple[int, int]) -> np.ndarray:
    """A crop with a 1-px margin: empty inside the field, a copy of the edge at the field's edge.

    Copying the edge keeps the field's border from counting as the crystal's outline in
    the distance transform (a cut crystal's rim is outside the image, not at its edge).
    """
    out = np.pad(piece, 1)
    if rows.start == 0:
        out[0, 1:-1] = piece[0]
    if rows.stop == shape[0]:
        out[-1, 1:-1] = piece[-1]
    if cols.start == 0:
        out[1:-1, 0] = piece[:, 0]
    if cols.stop == shape[1]:
        out[1:-1, -1] = piece[:, -1]
    return out


def _split_piece(piece: np.ndarray, height: np.ndarray, config: CrystalConfig) -> np.ndarray:
    """Crystal labels 1..m of one connected piece (boolean crop with a 1-px margin)."""
    if piece.sum() < _SPLIT_MIN_AREA_FACTOR * config.min_area_px:
        return piece.astype(np.int32)
    # every regional maximum seeds a region (cheap, no reconstruction); merge_regions then
    # applies the h-maximum and neck tests on the region graph
    peaks = (height == ndi.maximum_filter(height, size=3)) & piece
    markers, n = ndi.label(peaks, structure=np.ones((3, 3)))
    if n <= 1:
        return piece.astype(np.int32)
    regions = watershed(-height, markers, mask=piece)
    return merge_regions(regions, height, config)


def _crystals_of_piece(piece: np.ndarray, config: CrystalConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split one padded piece: (labels 1..n, depth map, inscribed radius of each), margin removed."""
    height = ndi.distance_transform_edt(fill_holes(piece)).astype(np.float32)
    regions = _split_piece(piece, height, config)
    n = int(regions.max())
    if n > 1:  # depth inside each crystal, to its own outline (the split line included)
        height = np.zeros_like(height)
        for r in range(1, n + 1):
            own = regions == r
            height[own] = ndi.distance_transform_edt(fill_holes(own))[own]
    regions, height = regions[1:-1, 1:-1], height[1:-1, 1:-1]
    peaks = ndi.maximum(height, regions, np.arange(1, n + 1)) if n > 1 else [float(height[regions > 0].max())]
    return regions, height, np.asarray(peaks, np.float64)


def label_crystals(
    mask: np.ndarray,
    catalogue: Catalogue,
    config: CrystalConfig | None = None,
    progress: bool = False,
) -> CrystalInstances:
    """Split a phase mask into crystal instances.

    Args:
        mask: (H, W) uint8 catalogue class indices (255 = no label).
        catalogue: The classes of the mask; ``config`` says which are crystals
            (``crystal_class_indices``) and which fill cracks (``crack_fill_indices``).
        config: Thresholds (``CrystalConfig()`` by default).
        progress: Show a tqdm bar over the connected pieces on stderr.

    Returns:
        The instances: labels, depth map, class, inscribed radius and border flag per crystal.
    """
    config = config or CrystalConfig()
    validate_mask(mask, len(catalogue))
    crystal_classes = crystal_class_indices(catalogue, config)
    labels = np.zeros(mask.shape, np.int32)
    depth = np.zeros(mask.shape, np.float32)
    classes: list[int] = [-1]
    max_depth: list[float] = [0.0]
    fillable = np.isin(mask, [*crack_fill_indices(catalogue, config), IGNORE_INDEX])
    bar = tqdm(desc="crystals", unit="piece", total=0, disable=not progress, mininterval=1.0)
    for class_index in crystal_classes:  # one class at a time: one component map in memory
        components, _ = ndi.label(close_cracks(mask, class_index, fillable, config.max_crack_width_px))
        objects = ndi.find_objects(components)
        bar.total += len(objects)
        for k, sl in enumerate(objects, start=1):
            bar.update()
            if sl is None:
                continue
            rows = slice(max(sl[0].start - 1, 0), min(sl[0].stop + 1, mask.shape[0]))
            cols = slice(max(sl[1].start - 1, 0), min(sl[1].stop + 1, mask.shape[1]))
            piece = _padded(components[rows, cols] == k, rows, cols, mask.shape)
            if piece.sum() < config.min_area_px:
                continue
            regions, height, peaks = _crystals_of_piece(piece, config)
            area = np.bincount(regions.ravel(), minlength=len(peaks) + 1)[1:]
            keep = np.flatnonzero(area >= config.min_area_px)
            lut = np.zeros(len(peaks) + 1, np.int32)
            lut[keep + 1] = len(classes) + np.arange(len(keep), dtype=np.int32)
            ids = lut[regions]
            inside = ids > 0
            labels[rows, cols][inside] = ids[inside]
            depth[rows, cols][inside] = height[inside]
            classes += [class_index] * len(keep)
            max_depth += peaks[keep].tolist()
    bar.close()
    border = np.zeros(len(classes), bool)
    border[np.concatenate((labels[0], labels[-1], labels[:, 0], labels[:, -1]))] = True
    border[0] = False
    return CrystalInstances(labels, depth, np.asarray(classes, np.int32), np.asarray(max_depth, np.float32), border)
