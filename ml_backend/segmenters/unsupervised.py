"""Unsupervised pixelwise segmentation: Gaussian-mixture clusters named by expected brightness.

Works on a new sample with no labels at all:

1. Normalise grey levels with one robust percentile range for the whole image.
2. Two features per pixel (:mod:`ml_backend.segmenters.features`): the denoised grey level
   and the region roughness (log of the structure tensor's smaller eigenvalue averaged over
   a few px: high in groundmass texture, low in crystal interiors and along straight
   phase boundaries).
3. Fit a Gaussian mixture on a random pixel sample balanced over grey levels (so a 0.5 %
   oxide gets a cluster). The image is over-segmented into ``max_clusters`` clusters on
   purpose: the naming merges clusters of one phase, and more clusters than phases
   follow the boundaries between overlapping phases better than the number BIC prefers
   (BIC measures how well Gaussians fit the density, not how well they separate phases;
   it chose 3 clusters on noisy fields where phases overlap). Every pixel's cluster
   posteriors are then computed tile by tile.
4. Name the clusters as a petrologist reads a BSE image (:func:`name_clusters`): grey level
   follows the backscatter coefficient eta with unknown gain and offset, so only relative
   positions count; the groundmass is told from crystals of the same eta because it is
   rough or spread evenly over the field, where crystals are smooth, compact objects.
   Class probabilities are the summed posteriors of the clusters named after each class.
5. One mean-field Potts update (:func:`smooth_labels`) lets a pixel follow its neighbours
   where its own evidence is weak. Tiles read :attr:`UnsupervisedConfig.halo` px of
   context, so a tiled run equals an untiled one.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np
from scipy import ndimage
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

from label_config.catalogue import Catalogue
from ml_backend.normalise import IntensityRange, percentile_range
from ml_backend.segmenters.base import Segmenter
from ml_backend.segmenters.features import TRUNCATE, kernel_radius, region_roughness, roughness_reach
from ml_backend.tiling import Window, extract_with_halo, predict_tiled, tile_windows

log = logging.getLogger(__name__)

_FLOOR = 1e-4  # probability given to classes no cluster is named after
_POOL = 4  # uniformly sampled pixels per pixel fitted, for weights and cluster statistics
_MIN_PIXELS_PER_CLUSTER = 10  # tiny images get fewer clusters
_GRID = 8  # coverage is measured on a GRID x GRID grid of cells over each sampled window
_SATURATED = 0.02  # grey levels this close to 0 or 1 are clipped: flat, so not a measure of smoothness


@dataclass(frozen=True)
class UnsupervisedConfig:
    """Parameters of :class:`UnsupervisedSegmenter` (all have working defaults).

    Attributes:
        n_clusters: Number of mixture components; ``None`` takes ``max_clusters``, fewer
            on images too small for them.
        max_clusters: Components when ``n_clusters`` is ``None``.
        sigma_grey: Gaussian sigma (px) of the denoised grey level.
        sigma_gradient, sigma_tensor, sigma_region: Sigmas of the region roughness: the
            Gaussian-derivative gradients, the integration of the structure tensor and
            the average of the log roughness (:func:`~ml_backend.segmenters.features.region_roughness`).
        sample_pixels: Pixels sampled to fit the mixture.
        sample_window: Side of the random windows features are computed on for fitting
            images larger than one tile.
        tile, overlap: Images with a side over ``tile`` px are processed in tiles. Each
            tile reads ``halo`` px of real context around it, so its features, and so its
            results, equal those of an untiled run: no blending ``overlap`` is needed, and
            any overlap only adds tiles.
        percentiles: Grey-level percentiles mapped to 0 and 1.
        matrix_classes: Names (or synonyms) of classes that form the matrix the crystals
            sit in: rough, or spread evenly over the field; names the catalogue lacks are ignored.
        texture_ratio: Roughness ratios to the smoothest phase of the image scored 0
            (smooth) and 1 (rough).
        coverage_range: Coverage (how evenly a cluster spreads over the cells of a grid,
            see :class:`ClusterStats`) scored 0 (compact, like crystals) and 1 (the matrix).
        brightness_tolerance: Grey-level misfit (normalised units) added in quadrature to
            a cluster's spread in the naming cost.
        misfit_cap: Largest brightness cost one cluster can add.
        matrix_weight: Cost of naming a matrix-like cluster after another class, or a
            compact smooth one after a matrix class.
        area_exponent: A cluster's brightness and matrix costs are scaled by
            ``(K * area) ** area_exponent``: the large clusters fix the brightness ladder.
        smooth_iterations, smooth_sigma, smooth_beta: Mean-field Potts smoothing of the
            class probabilities (:func:`smooth_labels`); 0 iterations switch it off.
        span_prior: Cost per unit of normalised eta range left without a named class.
        anchor_gap: Smallest normalised eta difference of two classes used to fix the scale.
        seed: Seed of the pixel sample and of the mixture fit.
    """

    n_clusters: int | None = None
    max_clusters: int = 12
    sigma_grey: float = 1.0
    sigma_gradient: float = 1.0
    sigma_tensor: float = 2.0
    sigma_region: float = 6.0
    sample_pixels: int = 10_000
    sample_window: int = 256
    tile: int = 1024
    overlap: int = 0
    percentiles: tuple[float, float] = (0.5, 99.5)
    matrix_classes: tuple[str, ...] = ("Groundmass",)
    texture_ratio: tuple[float, float] = (1.5, 3.0)
    coverage_range: tuple[float, float] = (0.5, 0.8)
    brightness_tolerance: float = 0.02
    misfit_cap: float = 50.0
    matrix_weight: float = 8.0
    area_exponent: float = 0.5
    smooth_iterations: int = 1
    smooth_sigma: float = 2.0
    smooth_beta: float = 2.0
    span_prior: float = 10.0
    anchor_gap: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_clusters is not None and not 1 <= self.n_clusters <= 64:
            raise ValueError(f"number of clusters must be 1-64, got {self.n_clusters}")
        if not 1 <= self.max_clusters <= 64:
            raise ValueError(f"max_clusters must be 1-64, got {self.max_clusters}")
        sigmas = (self.sigma_grey, self.sigma_gradient, self.sigma_tensor, self.sigma_region)
        if min(sigmas) <= 0:
            raise ValueError(f"Gaussian sigmas must be positive, got {sigmas}")
        if self.sample_pixels < 100 or self.sample_window < 16:
            raise ValueError("sample_pixels must be >= 100 and sample_window >= 16")
        if self.tile < 64 or not 0 <= self.overlap < self.tile:
            raise ValueError(f"need tile >= 64 and 0 <= overlap < tile, got tile {self.tile}, overlap {self.overlap}")
        if (
            not 1.0 <= self.texture_ratio[0] < self.texture_ratio[1]
            or not 0.0 <= self.coverage_range[0] < self.coverage_range[1]
        ):
            raise ValueError(
                "need 1 <= texture_ratio[0] < texture_ratio[1] and 0 <= coverage_range[0] < coverage_range[1], "
                f"got {self.texture_ratio}, {self.coverage_range}"
            )
        if self.smooth_iterations < 0 or self.smooth_sigma <= 0:
            raise ValueError(
                f"need smooth_iterations >= 0 and smooth_sigma > 0, got {self.smooth_iterations}, {self.smooth_sigma}"
            )

    @property
    def halo(self) -> int:
        """Context (px) a pixel's result needs: the widest chain of feature kernels, then the smoothing."""
        features = max(
            kernel_radius(self.sigma_grey), roughness_reach(self.sigma_gradient, self.sigma_tensor, self.sigma_region)
        )
        return features + self.smooth_iterations * kernel_radius(self.smooth_sigma)


def pixel_features(tile: np.ndarray, config: UnsupervisedConfig) -> np.ndarray:
    """(2, h, w) float32 features of a normalised tile: denoised grey level and region roughness.

    Values depend only on the ``config.halo`` neighbourhood of each pixel (scipy's
    ``mode="reflect"`` at the tile border).
    """
    x = np.asarray(tile, dtype=np.float32)
    grey = ndimage.gaussian_filter(x, config.sigma_grey, truncate=TRUNCATE)
    rough = region_roughness(x, config.sigma_gradient, config.sigma_tensor, config.sigma_region)
    return np.stack([grey, rough])


@dataclass(frozen=True)
class Mixture:
    """A fitted full-covariance Gaussian mixture in the float32 form used for prediction."""

    means: np.ndarray  # (K, F)
    precisions_cholesky: np.ndarray  # (K, F, F)
    log_det: np.ndarray  # (K,) log determinant of each precision Cholesky factor
    weights: np.ndarray  # (K,) mixing weights

    @classmethod
    def from_sklearn(cls, gmm: GaussianMixture, offset: np.ndarray, scale: np.ndarray) -> Mixture:
        """Take a ``GaussianMixture(covariance_type="full")`` fitted on ``(x - offset) / scale``."""
        chol = gmm.precisions_cholesky_ / scale[None, :, None]
        means = gmm.means_ * scale + offset
        log_det = np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
        return cls(means.astype(np.float32), chol.astype(np.float32), log_det.astype(np.float32), gmm.weights_.copy())

    @property
    def n_components(self) -> int:
        """Number of clusters K."""
        return len(self.means)

    def posteriors(self, features: np.ndarray) -> np.ndarray:
        """(K, N) float32 cluster posteriors of (N, F) features.

        The same numbers as ``GaussianMixture.predict_proba`` (to ~1e-4), computed as one
        float32 matrix product of the quadratic monomials of the centred features with
        per-cluster coefficients: 0.15 s instead of 1.4-2.7 s per MPix for K=12, F=3
        on this machine (one thread).
        """
        z = features.T - self.center[:, None]  # (F, N), contiguous when given a transposed (F, N) array
        n_features = len(self.center)
        design = np.empty((self.coefficients.shape[1], z.shape[1]), dtype=np.float32)
        row = 0
        for i in range(n_features):
            for j in range(i, n_features):
                np.multiply(z[i], z[j], out=design[row])
                row += 1
        design[row : row + n_features] = z
        design[-1] = 1.0
        log_p = self.coefficients @ design
        log_p -= log_p.max(axis=0)
        np.exp(log_p, out=log_p)
        log_p /= log_p.sum(axis=0)
        return log_p

    @property
    def center(self) -> np.ndarray:
        """(F,) weighted mean of the cluster means: features are centred on it (precision)."""
        return (self.weights @ self.means.astype(np.float64)).astype(np.float32)

    @property
    def coefficients(self) -> np.ndarray:
        """(K, D) float32 log-density coefficients of the monomials ``z_i z_j`` (i <= j), ``z_i``, 1."""
        n_features = self.means.shape[1]
        rows = []
        for k in range(self.n_components):
            chol = self.precisions_cholesky[k].astype(np.float64)
            precision = chol @ chol.T
            m = self.means[k].astype(np.float64) - self.center
            quadratic = [
                -0.5 * precision[i, j] * (1.0 if i == j else 2.0)
                for i in range(n_features)
                for j in range(i, n_features)
            ]
            constant = -0.5 * m @ precision @ m + np.log(max(self.weights[k], 1e-12)) + self.log_det[k]
            rows.append([*quadratic, *(precision @ m), constant])
        return np.asarray(rows, dtype=np.float32)

    def reweighted(self, features: np.ndarray, iterations: int = 20) -> Mixture:
        """The same components with mixing weights re-estimated (EM) on ``features``.

        The components are fitted on a brightness-balanced sample so that rare phases get
        their own cluster; this restores the weights of a uniform sample.
        """
        mixture = self
        for _ in range(iterations):
            mixture = replace(mixture, weights=mixture.posteriors(features).mean(axis=1, dtype=np.float64))
        return mixture


def _balanced(grey: np.ndarray, size: int, rng: np.random.Generator, bins: int = 64) -> np.ndarray:
    """Indices of ``size`` pixels: half drawn uniformly, half uniformly over grey-level bins.

    Rare grey levels (a 0.5 % oxide, a few vesicles) then get enough pixels for a
    cluster of their own.
    """
    size = min(size, len(grey))
    counts, edges = np.histogram(grey, bins=bins)
    index = np.clip(np.searchsorted(edges, grey, side="right") - 1, 0, bins - 1)
    flat = 1.0 / counts[index]
    uniform = rng.choice(len(grey), size - size // 2, replace=False)
    rest = np.setdiff1d(np.arange(len(grey)), uniform)
    p = flat[rest] / flat[rest].sum()
    return np.concatenate([uniform, rng.choice(rest, min(size // 2, len(rest)), replace=False, p=p)])


@dataclass(frozen=True)
class PixelSample:
    """Uniformly drawn pixels of an image, for fitting and for the cluster statistics.

    Attributes:
        features: (N, F) float64 features (:func:`pixel_features`).
        cells: (N,) index of the grid cell each pixel lies in (``_GRID`` x ``_GRID``
            cells per sampled window).
    """

    features: np.ndarray
    cells: np.ndarray


@dataclass(frozen=True)
class ClusterStats:
    """What the naming needs to know of each of K clusters (from the fitting sample).

    Attributes:
        brightness: Median normalised grey level.
        spread: Standard deviation of the grey level within the cluster.
        texture: Roughness score in [0, 1] (0: as smooth as the smoothest phase of the image).
        area: Area fraction.
        coverage: Evenness score in [0, 1]: how evenly the cluster spreads over the grid
            cells (1: in every cell about its share of the field, as a matrix; 0: in few
            cells, as crystals); ``None`` if not measured (texture alone then counts).
    """

    brightness: np.ndarray
    spread: np.ndarray
    texture: np.ndarray
    area: np.ndarray
    coverage: np.ndarray | None = None

    @property
    def matrix_likeness(self) -> np.ndarray:
        """(K,) score in [0, 1] of looking like a matrix: rough, or spread evenly."""
        return self.texture if self.coverage is None else np.maximum(self.texture, self.coverage)

    @classmethod
    def measure(cls, sample: PixelSample, posteriors: np.ndarray, config: UnsupervisedConfig) -> ClusterStats:
        """Statistics of the clusters of ``sample`` from its (K, N) cluster posteriors."""
        labels = np.argmax(posteriors, axis=0)
        n_clusters = len(posteriors)
        grey, rough = sample.features[:, 0], sample.features[:, 1]
        unsaturated = (grey > _SATURATED) & (grey < 1.0 - _SATURATED)
        floor = np.percentile(rough[unsaturated], 5) if unsaturated.sum() >= 20 else rough.min()
        brightness, spread, roughness = np.zeros(n_clusters), np.zeros(n_clusters), np.zeros(n_clusters)
        for k in range(n_clusters):
            members = labels == k
            if members.sum() < 5:  # a cluster no sampled pixel prefers: fall back to soft statistics
                members = posteriors[k] >= np.quantile(posteriors[k], 0.99)
            brightness[k] = np.median(grey[members])
            spread[k] = grey[members].std()
            roughness[k] = np.median(rough[members]) - floor
        onset, full = np.log(config.texture_ratio)
        texture = np.clip((roughness - onset) / (full - onset), 0.0, 1.0)
        low, high = config.coverage_range
        coverage = np.clip((_evenness(labels, sample.cells, n_clusters) - low) / (high - low), 0.0, 1.0)
        return cls(brightness, spread, texture, posteriors.mean(axis=1).astype(np.float64), coverage)


def _evenness(labels: np.ndarray, cells: np.ndarray, n_clusters: int) -> np.ndarray:
    """(K,) mean over grid cells of ``min(1, fraction of the cell in cluster k / fraction of all pixels in k)``."""
    counts = np.zeros((n_clusters, cells.max() + 1))
    np.add.at(counts, (labels, cells), 1.0)
    counts = counts[:, counts.sum(axis=0) > 0]
    fraction = counts / counts.sum(axis=0)
    share = np.maximum(fraction.mean(axis=1, keepdims=True), 1e-12)
    return np.minimum(fraction / share, 1.0).mean(axis=1)


@dataclass(frozen=True)
class ClusterNaming:
    """How clusters were named: the class of each cluster and the winning hypothesis."""

    classes: np.ndarray  # (K,) catalogue index of each cluster
    stats: ClusterStats
    anchors: tuple[int, int]  # catalogue classes of the two clusters that fixed the brightness scale
    cost: float

    def table(self, catalogue: Catalogue) -> list[dict]:
        """JSON-ready rows, darkest cluster first, for sidecars and logs."""
        s = self.stats
        return [
            {
                "cluster": int(k),
                "class": catalogue.names[int(self.classes[k])],
                "brightness": round(float(s.brightness[k]), 4),
                "texture": round(float(s.texture[k]), 3),
                "matrix_likeness": round(float(s.matrix_likeness[k]), 3),
                "area_fraction": round(float(s.area[k]), 4),
            }
            for k in np.argsort(s.brightness, kind="stable")
        ]


def name_clusters(stats: ClusterStats, catalogue: Catalogue, config: UnsupervisedConfig) -> ClusterNaming:
    """Name clusters after catalogue classes by the cheapest brightness ladder.

    Grey level is taken as linear in eta with unknown gain and offset, clipped to [0, 1]
    like the percentile-normalised image (a detector that saturates or bends its response
    at the ends then still fits the phases in the middle), so only relative positions
    count. Each hypothesis "cluster p is class i and cluster q is class j" (p darker than
    q, eta_i < eta_j, the two classes at least ``anchor_gap`` apart in eta normalised
    between the darkest and brightest class) places every class at an expected grey level.
    Every cluster then takes the class of least cost: squared brightness misfit (in units
    of the cluster's spread plus ``brightness_tolerance``, capped at ``misfit_cap`` so one
    odd cluster cannot decide) plus a matrix term (clusters that are rough or spread
    evenly belong to ``matrix_classes``, compact smooth ones elsewhere), scaled by
    ``(K * area) ** area_exponent``. Clusters are many more than phases on purpose, so
    several clusters share a class at no cost; classes of nearly the same eta (olivine,
    groundmass, clinopyroxene) are then told apart by the matrix term and by their order
    in eta. A hypothesis pays ``span_prior`` per unit of normalised eta that its named
    classes leave uncovered, so "darkest = Epoxy, brightest = Fe-Ti oxide" wins unless the
    spacing of the clusters says otherwise. The cheapest hypothesis wins.
    """
    n_clusters = len(stats.brightness)
    eta = np.array([m.eta for m in catalogue.classes])
    u = (eta - eta.min()) / max(eta.max() - eta.min(), 1e-12)
    matrix_class = np.zeros(len(catalogue), dtype=bool)
    for name in config.matrix_classes:
        index = catalogue.index_of(name)
        if index is not None:
            matrix_class[index] = True
    matrix_like = stats.matrix_likeness[:, None]
    matrix_cost = config.matrix_weight * np.where(matrix_class[None, :], 1.0 - matrix_like, matrix_like)
    scale2 = stats.spread[:, None] ** 2 + config.brightness_tolerance**2
    weight = (n_clusters * stats.area / max(stats.area.sum(), 1e-12))[:, None] ** config.area_exponent
    b = stats.brightness
    cluster_pairs: list[tuple[int, int | None]] = [
        (p, q) for p in range(n_clusters) for q in range(n_clusters) if b[q] - b[p] > config.brightness_tolerance
    ]
    class_pairs: list[tuple[int, int | None]] = [
        (i, j) for i in range(len(u)) for j in range(len(u)) if u[j] - u[i] >= config.anchor_gap
    ]
    if not cluster_pairs:  # one grey level: the brightness scale is unknown, name it by texture alone
        cluster_pairs, class_pairs = [(int(np.argmin(b)), None)], [(i, None) for i in range(len(u))]
    best: ClusterNaming | None = None
    for p, q in cluster_pairs:
        for i, j in class_pairs:
            if q is None:
                expected = b[p] + (u - u[i]) * config.brightness_tolerance * 1e3
            else:
                expected = b[p] + (u - u[i]) / (u[j] - u[i]) * (b[q] - b[p])
            misfit = np.minimum((b[:, None] - np.clip(expected, 0.0, 1.0)[None, :]) ** 2 / scale2, config.misfit_cap)
            cost = (misfit + matrix_cost) * weight
            named = np.argmin(cost, axis=1)
            total = float(cost[np.arange(n_clusters), named].sum()) + config.span_prior * (
                u[named].min() - u.min() + u.max() - u[named].max()
            )
            if best is None or total < best.cost - 1e-9:
                best = ClusterNaming(named, stats, (int(i), -1 if j is None else int(j)), total)
    assert best is not None  # a catalogue has at least two classes
    return best


@dataclass(frozen=True)
class FittedModel:
    """Everything needed to predict any part of one image: range, mixture, naming."""

    intensity: IntensityRange
    mixture: Mixture
    naming: ClusterNaming
    cluster_to_class: np.ndarray = field(repr=False)  # (C, K) float32 0/1

    def tile_proba(self, tile: np.ndarray, config: UnsupervisedConfig) -> np.ndarray:
        """(C, h, w) class probabilities of a raw tile (with its halo)."""
        features = pixel_features(self.intensity.apply(tile), config)
        n_features, h, w = features.shape
        with threadpool_limits(1, user_api="blas"):
            posteriors = self.mixture.posteriors(features.reshape(n_features, -1).T)
        proba = self.cluster_to_class @ posteriors  # each cluster names one class: columns sum to 1
        n_classes = len(proba)
        proba *= np.float32(1.0 - n_classes * _FLOOR)
        proba += np.float32(_FLOOR)
        return smooth_labels(proba.reshape(n_classes, h, w), config)


def smooth_labels(proba: np.ndarray, config: UnsupervisedConfig) -> np.ndarray:
    """Mean-field Potts smoothing of (C, h, w) class probabilities: ``q = softmax(log p + beta * G(q))``.

    ``smooth_iterations`` updates, each with a Gaussian neighbourhood of ``smooth_sigma``
    px, weighted by ``smooth_beta``: a pixel whose neighbours agree on another class
    follows them unless its own evidence is strong (e.g. isolated noise pixels in a crystal).
    """
    log_p = np.log(proba)
    q = proba
    for _ in range(config.smooth_iterations):
        q = ndimage.gaussian_filter(q, (0.0, config.smooth_sigma, config.smooth_sigma), truncate=TRUNCATE)
        q *= np.float32(config.smooth_beta)
        q += log_p
        q -= q.max(axis=0)
        np.exp(q, out=q)
        q /= q.sum(axis=0)
    return q


class UnsupervisedSegmenter(Segmenter):
    """Label-free segmentation: per-image Gaussian-mixture clusters named by brightness.

    Args:
        catalogue: Classes to name the clusters after.
        config: Parameters; keyword ``overrides`` replace single fields
            (e.g. ``n_clusters=5``).
    """

    def __init__(self, catalogue: Catalogue, config: UnsupervisedConfig | None = None, **overrides) -> None:
        unknown = sorted(set(overrides) - {f.name for f in fields(UnsupervisedConfig)})
        if unknown:
            valid = ", ".join(f.name for f in fields(UnsupervisedConfig))
            raise ValueError(f"unknown unsupervised segmenter option(s) {unknown}; valid options: {valid}")
        self.catalogue = catalogue
        self.config = replace(config or UnsupervisedConfig(), **overrides)
        params = {
            "config": asdict(self.config),
            "classes": [[m.name, round(m.eta, 6)] for m in catalogue.classes],
        }
        digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:10]
        self.version = f"unsupervised-{digest}"

    def fit(self, image: np.ndarray) -> FittedModel:
        """Fit the intensity range, mixture and cluster names on one raw image."""
        self._validate_inputs(image)
        cfg = self.config
        rng = np.random.default_rng(cfg.seed)
        intensity = percentile_range(image, *cfg.percentiles)
        sample = self._sample(image, intensity, rng)
        pool = sample.features.astype(np.float32)
        with threadpool_limits(1):
            mixture = self._fit_mixture(sample.features[_balanced(pool[:, 0], cfg.sample_pixels, rng)], rng)
            mixture = mixture.reweighted(pool)
            posteriors = mixture.posteriors(pool)
        naming = name_clusters(ClusterStats.measure(sample, posteriors, cfg), self.catalogue, cfg)
        mapping = np.zeros((len(self.catalogue), mixture.n_components), dtype=np.float32)
        mapping[naming.classes, np.arange(mixture.n_components)] = 1.0
        log.debug("cluster names: %s", naming.table(self.catalogue))
        return FittedModel(intensity, mixture, naming, mapping)

    def _sample(self, image: np.ndarray, intensity: IntensityRange, rng: np.random.Generator) -> PixelSample:
        """``_POOL`` times ``sample_pixels`` uniformly drawn pixels with their features and grid cells.

        Images larger than one tile are sampled in random windows of ``sample_window`` px.
        """
        cfg = self.config
        n_pool = _POOL * cfg.sample_pixels
        height, width = image.shape
        if height <= cfg.tile and width <= cfg.tile:
            windows = [Window(0, height, 0, width)]
        else:
            side = cfg.sample_window
            candidates = tile_windows(image.shape, side, 0)
            n_windows = min(len(candidates), max(4, n_pool // (side * side)))
            windows = [candidates[i] for i in rng.choice(len(candidates), n_windows, replace=False)]
        halo = cfg.halo
        per_window = -(-n_pool // len(windows))
        features, cells = [], []
        for n, window in enumerate(windows):
            h, w = window.shape
            x = intensity.apply(extract_with_halo(image, window, halo))
            f = pixel_features(x, cfg)[:, halo : halo + h, halo : halo + w].reshape(-1, h * w)
            take = rng.choice(h * w, min(per_window, h * w), replace=False)
            row, col = np.divmod(take, w)
            features.append(f[:, take].T)
            cells.append(n * _GRID * _GRID + (row * _GRID // h) * _GRID + col * _GRID // w)
        return PixelSample(np.concatenate(features).astype(np.float64), np.concatenate(cells))

    def _fit_mixture(self, sample: np.ndarray, rng: np.random.Generator) -> Mixture:
        """Mixture with ``n_clusters`` components (``max_clusters``, fewer for tiny images, if not given)."""
        cfg = self.config
        seed = int(rng.integers(2**31))
        offset, scale = sample.mean(axis=0), np.maximum(sample.std(axis=0), 1e-6)
        standard = (sample - offset) / scale  # k-means++ initialisation is not scale invariant
        n_clusters = cfg.n_clusters
        if n_clusters is None:
            n_clusters = max(1, min(cfg.max_clusters, len(sample) // _MIN_PIXELS_PER_CLUSTER))
        elif n_clusters * _MIN_PIXELS_PER_CLUSTER > len(sample):
            raise ValueError(f"an image of {len(sample)} sampled pixels is too small for {n_clusters} clusters")
        gmm = GaussianMixture(n_clusters, reg_covar=1e-6, init_params="k-means++", random_state=seed).fit(standard)
        return Mixture.from_sklearn(gmm, offset, scale)

    def predict_proba(self, image: np.ndarray, progress: bool = False) -> np.ndarray:
        """float32 (C, H, W) class probabilities; see the module docstring for the method."""
        return self.predict_with(self.fit(image), image, progress)

    def segment(self, image: np.ndarray, progress: bool = False) -> np.ndarray:
        """uint8 (H, W) class indices, holding probabilities for one band of tiles at a time."""
        return self.predict_with(self.fit(image), image, progress, labels=True)

    def predict_with(
        self, model: FittedModel, image: np.ndarray, progress: bool = False, labels: bool = False
    ) -> np.ndarray:
        """Apply a model from :meth:`fit` to ``image``, tile by tile.

        Returns:
            float32 (C, H, W) probabilities, or uint8 (H, W) class indices if ``labels``.
        """
        self._validate_inputs(image)
        cfg = self.config
        return predict_tiled(
            lambda tile: model.tile_proba(tile, cfg),
            image,
            len(self.catalogue),
            tile=cfg.tile,
            overlap=cfg.overlap,
            halo=cfg.halo,
            progress=progress,
            reduce=(lambda block: np.argmax(block, axis=0).astype(np.uint8)) if labels else None,
        )
