"""Unsupervised pixelwise segmentation: Gaussian-mixture clusters named by expected brightness.

Works on a new sample with no labels at all:

1. Normalise grey levels with one robust percentile range for the whole image.
2. Per-pixel features from Gaussian filters: denoised grey level, grey level of the
   neighbourhood, and the log of the local standard deviation (texture: groundmass with
   microlites is rough, crystal interiors are as smooth as the noise allows).
3. Fit a Gaussian mixture on a random pixel sample balanced over grey levels (so a 0.5 %
   oxide gets a cluster), number of clusters by BIC or given; then compute every pixel's
   cluster posteriors, tile by tile.
4. Name the clusters as a petrologist reads a BSE image: grey level is linear in the
   backscatter coefficient eta with unknown gain and offset, so only relative positions
   count (:func:`name_clusters`). Class probabilities are the summed posteriors of the
   clusters named after each class.
"""

from __future__ import annotations

import hashlib
import json
import logging
from functools import lru_cache
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

from label_config.catalogue import Catalogue
from ml_backend.normalise import IntensityRange, percentile_range
from ml_backend.segmenters.base import Segmenter
from ml_backend.tiling import Window, extract_with_halo, predict_tiled, tile_windows

log = logging.getLogger(__name__)

_TRUNCATE = 3.0  # Gaussian kernels reach int(3 * sigma + 0.5) px (scipy's 4 costs 25 % more)
_FLOOR = 1e-4  # probability given to classes no cluster is named after
_POOL = 4  # uniformly sampled pixels per pixel fitted, for weights and cluster statistics
_MIN_PIXELS_PER_CLUSTER = 10  # tiny images get fewer clusters
_ROUGH_EPS = np.float32(1e-3)  # keeps log(local std) finite on flat images


@dataclass(frozen=True)
class UnsupervisedConfig:
    """Parameters of :class:`UnsupervisedSegmenter` (all have working defaults).

    Attributes:
        n_clusters: Number of mixture components; ``None`` chooses by BIC in
            ``[min_clusters, max_clusters]``.
        min_clusters, max_clusters: Bounds of the BIC search.
        sigma_grey: Gaussian sigma (px) of the denoised grey level.
        sigma_context: Sigma of the neighbourhood grey level.
        sigma_texture: Sigmas of the local standard deviation (texture) features; the
            last one scores cluster roughness for the naming.
        sample_pixels: Pixels sampled to fit the mixture.
        bic_pixels: Pixels of the subsample on which the number of clusters is chosen.
        sample_window: Side of the random windows features are computed on for fitting
            images larger than one tile.
        tile, overlap: Images with a side over ``tile`` px are processed in tiles. Each
            tile reads ``halo`` px of real context around it, so its features, and so its
            results, equal those of an untiled run: no blending ``overlap`` is needed, and
            any overlap only adds tiles.
        percentiles: Grey-level percentiles mapped to 0 and 1.
        textured_classes: Names (or synonyms) of classes expected to be rough at the
            scale of ``sigma_texture``; names the catalogue lacks are ignored.
        texture_ratio: Roughness / noise ratios scored 0 (smooth) and 1 (rough).
        brightness_tolerance: Grey-level misfit (normalised units) added in quadrature to
            a cluster's spread in the naming cost.
        misfit_cap: Largest brightness cost one cluster can add.
        texture_weight: Cost of naming a rough cluster after a smooth class (or the reverse).
        span_prior: Cost per unit of normalised eta range left without a named class.
        anchor_gap: Smallest normalised eta difference of two classes used to fix the scale.
        reuse_cost: Cost of naming a further cluster after an already used class.
        seed: Seed of the pixel sample and of the mixture fit.
    """

    n_clusters: int | None = None
    min_clusters: int = 2
    max_clusters: int = 12
    sigma_grey: float = 1.0
    sigma_context: float = 8.0
    sigma_texture: tuple[float, ...] = (3.0,)
    sample_pixels: int = 10_000
    bic_pixels: int = 4_000
    sample_window: int = 256
    tile: int = 1024
    overlap: int = 0
    percentiles: tuple[float, float] = (0.5, 99.5)
    textured_classes: tuple[str, ...] = ("Groundmass",)
    texture_ratio: tuple[float, float] = (1.5, 3.0)
    brightness_tolerance: float = 0.02
    misfit_cap: float = 50.0
    texture_weight: float = 8.0
    span_prior: float = 10.0
    anchor_gap: float = 0.1
    reuse_cost: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_clusters is not None and not 1 <= self.n_clusters <= 64:
            raise ValueError(f"number of clusters must be 1-64, got {self.n_clusters}")
        if not 1 <= self.min_clusters <= self.max_clusters <= 64:
            raise ValueError(f"need 1 <= min_clusters <= max_clusters <= 64, got {self.min_clusters}, {self.max_clusters}")
        sigmas = (self.sigma_grey, self.sigma_context, *self.sigma_texture)
        if not self.sigma_texture or min(sigmas) <= 0:
            raise ValueError(f"Gaussian sigmas must be positive (and at least one texture sigma), got {sigmas}")
        if self.sample_pixels < 100 or self.sample_window < 16:
            raise ValueError("sample_pixels must be >= 100 and sample_window >= 16")
        if self.tile < 64 or not 0 <= self.overlap < self.tile:
            raise ValueError(f"need tile >= 64 and 0 <= overlap < tile, got tile {self.tile}, overlap {self.overlap}")

    @property
    def halo(self) -> int:
        """Context (px) every feature needs around a pixel: the widest Gaussian kernel."""
        grey = int(_TRUNCATE * self.sigma_grey + 0.5)
        return max(int(_TRUNCATE * s + 0.5) for s in (self.sigma_context, *self.sigma_texture)) + grey


def pixel_features(tile: np.ndarray, config: UnsupervisedConfig) -> np.ndarray:
    """(F, h, w) float32 features of a normalised tile: grey, context grey, log local stds.

    Values depend only on the ``config.halo`` neighbourhood of each pixel (scipy's
    ``mode="reflect"`` at the tile border).
    """
    x = np.asarray(tile, dtype=np.float32)
    grey = ndimage.gaussian_filter(x, config.sigma_grey, truncate=_TRUNCATE)
    out = [grey, ndimage.gaussian_filter(x, config.sigma_context, truncate=_TRUNCATE)]
    grey2 = grey * grey
    for sigma in config.sigma_texture:
        mean = ndimage.gaussian_filter(grey, sigma, truncate=_TRUNCATE)
        var = ndimage.gaussian_filter(grey2, sigma, truncate=_TRUNCATE)
        var -= mean * mean
        np.sqrt(np.maximum(var, 0.0, out=var), out=var)
        out.append(np.log(var + _ROUGH_EPS, out=var))
    return np.stack(out)


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
                -0.5 * precision[i, j] * (1.0 if i == j else 2.0) for i in range(n_features) for j in range(i, n_features)
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
class ClusterStats:
    """What the naming needs to know of each of K clusters (from the fitting sample).

    Attributes:
        brightness: Median normalised grey level.
        spread: Standard deviation of the grey level within the cluster.
        texture: Roughness score in [0, 1] (0: as smooth as the noise allows).
        area: Area fraction.
    """

    brightness: np.ndarray
    spread: np.ndarray
    texture: np.ndarray
    area: np.ndarray


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
                "area_fraction": round(float(s.area[k]), 4),
            }
            for k in np.argsort(s.brightness, kind="stable")
        ]


def name_clusters(stats: ClusterStats, catalogue: Catalogue, config: UnsupervisedConfig) -> ClusterNaming:
    """Name clusters after catalogue classes by optimal assignment on expected brightness.

    Grey level is taken as linear in eta with unknown gain and offset, so only relative
    positions count. Each hypothesis "cluster p is class i and cluster q is class j"
    (p darker than q, eta_i < eta_j, the two classes at least ``anchor_gap`` apart in eta
    normalised between the darkest and brightest class) places every class at an
    expected grey level. Clusters are then assigned to classes by
    ``linear_sum_assignment`` on squared brightness misfit (in units of the cluster's
    spread plus ``brightness_tolerance``, capped at ``misfit_cap`` so one odd cluster
    cannot decide), a texture term (rough clusters belong to ``textured_classes``, smooth
    ones elsewhere) and ``reuse_cost`` for each further cluster named after a class.
    A hypothesis pays ``span_prior`` per unit of normalised eta that its named classes
    leave uncovered, so "darkest = Epoxy, brightest = Fe-Ti oxide" wins unless the
    spacing of the clusters says otherwise. The cheapest hypothesis wins.
    """
    n_clusters = len(stats.brightness)
    eta = np.array([m.eta for m in catalogue.classes])
    u = (eta - eta.min()) / max(eta.max() - eta.min(), 1e-12)
    rough = np.zeros(len(catalogue), dtype=bool)
    for name in config.textured_classes:
        index = catalogue.index_of(name)
        if index is not None:
            rough[index] = True
    texture_cost = config.texture_weight * np.where(rough[None, :], 1.0 - stats.texture[:, None], stats.texture[:, None])
    scale2 = stats.spread[:, None] ** 2 + config.brightness_tolerance**2
    # columns: every class repeated K times, the r-th reuse of a class costing r * reuse_cost
    reuse = config.reuse_cost * np.tile(np.arange(n_clusters), len(catalogue))
    b = stats.brightness
    cluster_pairs = [(p, q) for p in range(n_clusters) for q in range(n_clusters) if b[q] - b[p] > config.brightness_tolerance]
    class_pairs = [(i, j) for i in range(len(u)) for j in range(len(u)) if u[j] - u[i] >= config.anchor_gap]
    if not cluster_pairs:  # one grey level: the brightness scale is unknown, name it by texture alone
        cluster_pairs, class_pairs = [(int(np.argmin(b)), None)], [(i, None) for i in range(len(u))]
    best: ClusterNaming | None = None
    for p, q in cluster_pairs:
        for i, j in class_pairs:
            if q is None:
                expected = b[p] + (u - u[i]) * config.brightness_tolerance * 1e3
            else:
                expected = b[p] + (u - u[i]) / (u[j] - u[i]) * (b[q] - b[p])
            misfit = np.minimum((b[:, None] - expected[None, :]) ** 2 / scale2, config.misfit_cap)
            cost = np.repeat(misfit + texture_cost, n_clusters, axis=1) + reuse[None, :]
            rows, cols = linear_sum_assignment(cost)
            named = cols // n_clusters
            total = float(cost[rows, cols].sum()) + config.span_prior * (u[named].min() - u.min() + u.max() - u[named].max())
            if best is None or total < best.cost - 1e-9:
                classes = np.empty(n_clusters, dtype=np.int64)
                classes[rows] = named
                best = ClusterNaming(classes, stats, (int(i), -1 if j is None else int(j)), total)
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
        return proba.reshape(n_classes, h, w)


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
        pool, residual = self._sample_features(image, intensity, rng)
        with threadpool_limits(1):
            mixture = self._fit_mixture(pool[_balanced(pool[:, 0], cfg.sample_pixels, rng)], rng)
            mixture = mixture.reweighted(pool.astype(np.float32))
            posteriors = mixture.posteriors(pool.astype(np.float32))
        stats = self._cluster_stats(pool, residual, posteriors)
        naming = name_clusters(stats, self.catalogue, cfg)
        mapping = np.zeros((len(self.catalogue), mixture.n_components), dtype=np.float32)
        mapping[naming.classes, np.arange(mixture.n_components)] = 1.0
        log.debug("cluster names: %s", naming.table(self.catalogue))
        return FittedModel(intensity, mixture, naming, mapping)

    def _sample_features(
        self, image: np.ndarray, intensity: IntensityRange, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """(N, F) features and (N,) fine-scale residuals (noise) of uniformly drawn pixels.

        N is ``_POOL`` times ``sample_pixels``; images larger than one tile are sampled
        in random windows of ``sample_window`` px.
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
        features, residuals = [], []
        for window in windows:
            x = intensity.apply(extract_with_halo(image, window, halo))
            inner = (slice(halo, x.shape[0] - halo), slice(halo, x.shape[1] - halo))
            f = pixel_features(x, cfg)[:, inner[0], inner[1]].reshape(-1, window.shape[0] * window.shape[1])
            r = (x[inner] - f[0].reshape(window.shape)).ravel()
            take = rng.choice(f.shape[1], min(per_window, f.shape[1]), replace=False)
            features.append(f[:, take].T)
            residuals.append(r[take])
        return np.concatenate(features).astype(np.float64), np.concatenate(residuals)

    def _fit_mixture(self, sample: np.ndarray, rng: np.random.Generator) -> Mixture:
        """Mixture with ``n_clusters`` components, or as many as BIC prefers within the bounds.

        BIC is compared on a ``bic_pixels`` subsample with loose convergence (a sweep on
        the full sample took 10-20 s for 2-12 clusters here); the chosen size is then
        fitted on the whole sample.
        """
        cfg = self.config
        seed = int(rng.integers(2**31))
        offset, scale = sample.mean(axis=0), np.maximum(sample.std(axis=0), 1e-6)
        standard = (sample - offset) / scale  # k-means++ initialisation is not scale invariant
        n_clusters = cfg.n_clusters
        if n_clusters is not None and n_clusters * _MIN_PIXELS_PER_CLUSTER > len(sample):
            raise ValueError(f"an image of {len(sample)} sampled pixels is too small for {n_clusters} clusters")
        if n_clusters is None:
            subset = standard[rng.choice(len(standard), min(cfg.bic_pixels, len(standard)), replace=False)]
            most = max(1, min(cfg.max_clusters, len(subset) // _MIN_PIXELS_PER_CLUSTER))
            bic = {
                k: GaussianMixture(k, reg_covar=1e-6, init_params="k-means++", tol=1e-2, max_iter=50, random_state=seed)
                .fit(subset)
                .bic(subset)
                for k in range(min(cfg.min_clusters, most), most + 1)
            }
            n_clusters = min(bic, key=bic.get)
        gmm = GaussianMixture(n_clusters, reg_covar=1e-6, init_params="k-means++", random_state=seed).fit(standard)
        return Mixture.from_sklearn(gmm, offset, scale)

    def _cluster_stats(self, sample: np.ndarray, residual: np.ndarray, posteriors: np.ndarray) -> ClusterStats:
        """Brightness, spread, texture score and area of each cluster of the sample."""
        cfg = self.config
        labels = np.argmax(posteriors, axis=0)
        n_clusters = len(posteriors)
        brightness, spread, texture = np.zeros(n_clusters), np.zeros(n_clusters), np.zeros(n_clusters)
        residual_gain, rough_gain = _noise_gains(cfg.sigma_grey, cfg.sigma_texture[-1])
        onset, full = cfg.texture_ratio
        for k in range(n_clusters):
            members = labels == k
            weight = posteriors[k].astype(np.float64)
            if members.sum() < 5:  # a cluster no sampled pixel prefers: fall back to soft statistics
                members = weight >= np.quantile(weight, 0.99)
            grey = sample[members, 0]
            brightness[k] = np.median(grey)
            spread[k] = grey.std()
            noise = max(np.median(np.abs(residual[members])) / 0.6745 / residual_gain, 1e-6)
            ratio = (np.exp(np.median(sample[members, -1])) - _ROUGH_EPS) / (noise * rough_gain)
            texture[k] = np.clip(np.log(max(ratio, 1e-9) / onset) / np.log(full / onset), 0.0, 1.0)
        return ClusterStats(brightness, spread, texture, posteriors.mean(axis=1).astype(np.float64))

    def predict_proba(self, image: np.ndarray, progress: bool = False) -> np.ndarray:
        """float32 (C, H, W) class probabilities; see the module docstring for the method."""
        return self.predict_with(self.fit(image), image, progress)

    def segment(self, image: np.ndarray, progress: bool = False) -> np.ndarray:
        """uint8 (H, W) class indices, holding probabilities for one band of tiles at a time."""
        return self.predict_with(self.fit(image), image, progress, labels=True)

    def predict_with(self, model: FittedModel, image: np.ndarray, progress: bool = False, labels: bool = False) -> np.ndarray:
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


@lru_cache(maxsize=8)
def _noise_gains(sigma_grey: float, sigma_texture: float) -> tuple[float, float]:
    """How white noise of unit std shows in the residual ``x - G(x)`` and in the roughness.

    Exact for the discrete Gaussian kernels used: the residual's std is the norm of the
    kernel ``delta - g``; the local std of the smoothed image is
    ``sqrt(|g|^2 - |g_t * g|^2)``. Dividing a cluster's roughness by its noise times the
    latter gives 1 for a flat phase, whatever the dose or contrast.
    """
    radius = int(_TRUNCATE * (sigma_grey + sigma_texture) + 2)
    delta = np.zeros((2 * radius + 1, 2 * radius + 1))
    delta[radius, radius] = 1.0
    g = ndimage.gaussian_filter(delta, sigma_grey, truncate=_TRUNCATE)
    residual = float(np.sqrt(((delta - g) ** 2).sum()))
    rough = float(np.sqrt((g**2).sum() - (ndimage.gaussian_filter(g, sigma_texture, truncate=_TRUNCATE) ** 2).sum()))
    return residual, rough
