"""Confidence of implicit labels learnt from audits: a logistic model, then isotonic recalibration.

The hand-set :class:`~active_learning.corrections.ConfidenceModel` depends on the distance to the
nearest edit plus a constant. Whether a pixel of a harvested label is right depends on more
(the simulated experts of ``benchmarks/experts.py`` miss small grains, jitter boundaries, accept
confident errors, misname low-contrast phases) and on the annotator. So the confidence is learnt:
a uniform share of submissions is reviewed a second time (:mod:`active_learning.audit`), and a
model is fitted on the audited pixels to predict "this pixel of the implicit label is right".

**Features** of each labelled pixel (:func:`pixel_features`, :data:`FEATURES`): edited or not;
distance to the nearest edit and to the nearest boundary of the final label (log, capped); the
model's top probability and its product with "the expert kept the model's class" (when the
probabilities are known; at harvest time they are not, see below); the area of the final region
holding the pixel (log); whether the submission has any edit; the time per edited pixel (log);
the class (one-hot). A per-annotator offset (one-hot, shrunk by the L2 penalty towards the
population) is added when the model is fitted on several annotators; an annotator it has not
seen gets the population value (offset 0).

**Model.** Standardised features -> L2 logistic regression -> isotonic map of its output
(Zadrozny & Elkan 2002), the isotonic step fitted on out-of-fold logistic outputs (folds by
tile, so a tile never calibrates itself). An annotator with at least
:data:`MIN_ANNOTATOR_GROUPS` audited tiles gets an isotonic map of their own: how right an
expert's labels are is not a shift of the population's curve. On the active-learning
benchmark (reporting seeds 0-3, three random draws each): a model fitted on expert A's audits
alone leaves ECE 0.10-0.14 on experts B and C; adding 20 of their audited tiles (offset only)
0.07-0.08; an own map from 40 tiles 0.02-0.06, from 300 tiles 0.02-0.03. Stored as JSON
(coefficients, scaling, isotonic knots): any process rebuilds it exactly, no pickle.

    model = CalibrationModel.fit(features, correct, groups=tiles, annotators=names)
    confidence = calibrated_confidence(model, predicted, final, lead_time)   # (H, W), 0 where unlabelled

Harvest-time features (:data:`HARVEST_FEATURES`) leave out the model's probability, which a
Label Studio prediction does not carry; the benchmark reports both variants.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from active_learning.corrections import NOTHING

FEATURES = (
    "edited", "log_distance_to_edit", "log_distance_to_boundary", "top_probability", "kept_times_probability",
    "log_region_area", "any_edit", "log_seconds_per_edited_kpx",
)  # fmt: skip
#: The features known when a submission is harvested (no model probabilities).
HARVEST_FEATURES = tuple(name for name in FEATURES if name not in ("top_probability", "kept_times_probability"))
EDIT_CAP_PX = 64.0
BOUNDARY_CAP_PX = 32.0
FORMAT = "scraiber-confidence-calibration"
#: Artefact-store key of the model harvests use (written by ``scraiber calibrate``).
CALIBRATION_KEY = "calibration/confidence.json"
#: Audited tiles (submissions) an annotator needs for an isotonic map of their own.
MIN_ANNOTATOR_GROUPS = 40


def class_feature(k: int) -> str:
    """Name of the one-hot feature of class ``k``."""
    return f"class_{k}"


def _boundary(label: np.ndarray) -> np.ndarray:
    edge = np.zeros(label.shape, bool)
    vertical, horizontal = label[1:] != label[:-1], label[:, 1:] != label[:, :-1]
    edge[1:] |= vertical
    edge[:-1] |= vertical
    edge[:, 1:] |= horizontal
    edge[:, :-1] |= horizontal
    return edge


def pixel_features(
    predicted: np.ndarray,
    final: np.ndarray,
    lead_time: float | None,
    n_classes: int,
    top_probability: np.ndarray | None = None,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Features of every labelled pixel of one submission.

    Args:
        predicted: (H, W) uint8 prediction the expert started from (255 = nothing).
        final: (H, W) uint8 submitted label (255 = unlabelled).
        lead_time: Seconds spent (None: unknown, counted as 0 s per edited pixel).
        n_classes: Number of catalogue classes.
        top_probability: (H, W) the model's top class probability, if known (else NaN).

    Returns:
        ({feature name: (N,) float64}, (N,) flat indices of the labelled pixels).

    Raises:
        ValueError: for maps of different shapes.
    """
    if predicted.shape != final.shape or (top_probability is not None and top_probability.shape != final.shape):
        raise ValueError(f"prediction {predicted.shape}, label {final.shape} and probability differ in shape")
    labelled = (final != NOTHING).ravel()
    index = np.flatnonzero(labelled)
    edited = predicted != final
    n_edited = int(edited.sum())
    to_edit = ndimage.distance_transform_edt(~edited) if n_edited else np.full(final.shape, EDIT_CAP_PX)
    to_boundary = ndimage.distance_transform_edt(~_boundary(final))
    area = np.zeros(final.shape, np.float64)
    for k in np.unique(final[final != NOTHING]):
        regions, n = ndimage.label(final == k)
        sizes = np.bincount(regions.ravel())
        sizes[0] = 0
        area += sizes[regions]
    probability = np.full(final.shape, math.nan) if top_probability is None else top_probability.astype(np.float64)
    seconds = 0.0 if lead_time is None else max(float(lead_time), 0.0)
    flat = lambda array: np.asarray(array, np.float64).ravel()[index]  # noqa: E731
    kept = 1.0 - flat(edited)
    out = {
        "edited": flat(edited),
        "log_distance_to_edit": np.log1p(np.minimum(flat(to_edit), EDIT_CAP_PX)),
        "log_distance_to_boundary": np.log1p(np.minimum(flat(to_boundary), BOUNDARY_CAP_PX)),
        "top_probability": flat(probability),
        "kept_times_probability": kept * flat(probability),
        "log_region_area": np.log1p(flat(area)),
        "any_edit": np.full(index.size, float(n_edited > 0)),
        "log_seconds_per_edited_kpx": np.full(index.size, math.log1p(seconds / (n_edited / 1000.0 + 1.0))),
    }
    classes = final.ravel()[index]
    for k in range(n_classes):
        out[class_feature(k)] = (classes == k).astype(np.float64)
    return out, index


def feature_matrix(features: dict[str, np.ndarray], names: Sequence[str]) -> np.ndarray:
    """(N, len(names)) matrix of the named features.

    Raises:
        ValueError: naming a missing feature, or one with NaN values (e.g. probabilities not given).
    """
    missing = [name for name in names if name not in features]
    if missing:
        raise ValueError(f"missing calibration feature(s) {', '.join(missing)}")
    matrix = np.column_stack([features[name] for name in names]) if names else np.zeros((0, 0))
    if np.isnan(matrix).any():
        bad = [name for name in names if np.isnan(features[name]).any()]
        raise ValueError(f"calibration feature(s) {', '.join(bad)} are unknown (NaN) for some pixels")
    return matrix


@dataclass(frozen=True)
class CalibrationModel:
    """Logistic regression on standardised features (+ annotator offsets), then an isotonic map.

    Build with :meth:`fit`; serialise with :meth:`to_dict` / :meth:`from_dict`.
    """

    features: tuple[str, ...]
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    annotators: dict[str, float] = field(default_factory=dict)
    knots_x: np.ndarray = field(default_factory=lambda: np.array([0.0, 1.0]))
    knots_y: np.ndarray = field(default_factory=lambda: np.array([0.0, 1.0]))
    annotator_maps: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    fitted_on: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def fit(
        cls,
        features: dict[str, np.ndarray],
        correct: np.ndarray,
        groups: np.ndarray,
        annotators: np.ndarray | None = None,
        names: Sequence[str] | None = None,
        l2: float = 1.0,
        folds: int = 3,
    ) -> CalibrationModel:
        """Fit on audited pixels.

        Args:
            features: As from :func:`pixel_features` (concatenated over submissions).
            correct: (N,) whether each pixel's implicit label agrees with the audit.
            groups: (N,) tile / submission of each pixel (folds never split one).
            annotators: (N,) annotator pseudonyms (None: no per-annotator offsets or maps).
            names: Features to use (default :data:`FEATURES` and the class one-hots present).
            l2: Inverse regularisation strength ``C`` of the logistic regression.
            folds: Folds of the out-of-fold outputs the isotonic map is fitted on.

        Raises:
            ValueError: with fewer than two groups or a single outcome.
        """
        from sklearn.isotonic import IsotonicRegression
        from sklearn.linear_model import LogisticRegression

        correct = np.asarray(correct, bool)
        groups = np.asarray(groups)
        if names is None:
            names = list(FEATURES) + sorted(name for name in features if name.startswith("class_"))
        x = feature_matrix(features, names)
        if len(np.unique(groups)) < 2 or correct.all() or not correct.any():
            raise ValueError("calibration needs audited pixels of at least two tiles, both right and wrong ones")
        mean, scale = x.mean(axis=0), x.std(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        z = (x - mean) / scale
        people = sorted(set(np.asarray(annotators).tolist())) if annotators is not None else []
        design = cls._design(z, annotators, people) if len(people) > 1 else z

        def logistic() -> LogisticRegression:
            return LogisticRegression(C=l2, max_iter=500)

        unique = np.unique(groups)
        fold_of = {g: i % folds for i, g in enumerate(np.random.default_rng(0).permutation(unique))}
        fold = np.array([fold_of[g] for g in groups])
        oof = np.full(len(correct), np.nan)
        for f in range(min(folds, len(unique))):
            train, test = fold != f, fold == f
            if correct[train].all() or not correct[train].any() or not test.any():
                continue
            oof[test] = logistic().fit(design[train], correct[train]).predict_proba(design[test])[:, 1]
        final = logistic().fit(design, correct)
        seen = np.isfinite(oof)

        def isotonic(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(oof[rows], correct[rows])
            return np.asarray(iso.X_thresholds_, np.float64), np.asarray(iso.y_thresholds_, np.float64)

        knots = isotonic(seen)
        maps = {}
        for person in people if len(people) > 1 else []:
            mine = seen & (np.asarray(annotators) == person)
            if len(np.unique(groups[mine])) >= MIN_ANNOTATOR_GROUPS and 0 < correct[mine].mean() < 1:
                maps[person] = isotonic(mine)
        coef = final.coef_[0]
        offsets = {p: float(c) for p, c in zip(people, coef[len(names) :])} if len(people) > 1 else {}
        return cls(
            features=tuple(names), mean=mean, scale=scale, coef=coef[: len(names)], intercept=float(final.intercept_[0]),
            annotators=offsets, knots_x=knots[0], knots_y=knots[1], annotator_maps=maps,
            fitted_on={"pixels": int(len(correct)), "groups": int(len(unique)), "annotators": people,
                       "accuracy": float(correct.mean())},
        )  # fmt: skip

    @staticmethod
    def _design(z: np.ndarray, annotators: np.ndarray | None, people: list[str]) -> np.ndarray:
        onehot = np.zeros((len(z), len(people)))
        if annotators is not None:
            where = {p: i for i, p in enumerate(people)}
            for row, person in enumerate(np.asarray(annotators).tolist()):
                if person in where:
                    onehot[row, where[person]] = 1.0
        return np.hstack([z, onehot])

    def predict(self, features: dict[str, np.ndarray], annotator: str | None = None) -> np.ndarray:
        """(N,) calibrated probability that each pixel's label is right (an unseen annotator: offset 0, population map)."""
        z = (feature_matrix(features, self.features) - self.mean) / self.scale
        logit = z @ self.coef + self.intercept + self.annotators.get(annotator or "", 0.0)
        raw = 1.0 / (1.0 + np.exp(-logit))
        knots_x, knots_y = self.annotator_maps.get(annotator or "", (self.knots_x, self.knots_y))
        return np.interp(raw, knots_x, knots_y).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters (:meth:`from_dict` rebuilds the same model)."""
        return {"format": FORMAT, "version": 1, "features": list(self.features), "mean": self.mean.tolist(),
                "scale": self.scale.tolist(), "coef": self.coef.tolist(), "intercept": self.intercept,
                "annotators": self.annotators, "isotonic": {"x": self.knots_x.tolist(), "y": self.knots_y.tolist()},
                "annotator_isotonic": {p: {"x": x.tolist(), "y": y.tolist()} for p, (x, y) in self.annotator_maps.items()},
                "fitted_on": self.fitted_on}  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CalibrationModel:
        """A model from :meth:`to_dict` output.

        Raises:
            ValueError: if ``data`` is not a calibration model of this format.
        """
        if data.get("format") != FORMAT:
            raise ValueError(f"not a confidence calibration model (format {data.get('format')!r})")
        return cls(
            tuple(data["features"]), np.asarray(data["mean"], np.float64), np.asarray(data["scale"], np.float64),
            np.asarray(data["coef"], np.float64), float(data["intercept"]), dict(data.get("annotators") or {}),
            np.asarray(data["isotonic"]["x"], np.float64), np.asarray(data["isotonic"]["y"], np.float64),
            {p: (np.asarray(m["x"], np.float64), np.asarray(m["y"], np.float64))
             for p, m in (data.get("annotator_isotonic") or {}).items()},
            dict(data.get("fitted_on") or {}),
        )  # fmt: skip

    def to_json(self) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict())


def calibrated_confidence(
    model: CalibrationModel,
    predicted: np.ndarray,
    final: np.ndarray,
    lead_time: float | None,
    top_probability: np.ndarray | None = None,
    annotator: str | None = None,
) -> np.ndarray:
    """(H, W) float32 calibrated confidence of a submission's implicit label (0 where unlabelled)."""
    n_classes = sum(1 for name in model.features if name.startswith("class_"))
    n_classes = max(n_classes, int(final[final != NOTHING].max()) + 1 if (final != NOTHING).any() else 0)
    features, index = pixel_features(predicted, final, lead_time, n_classes, top_probability)
    out = np.zeros(final.size, np.float32)
    if index.size:
        out[index] = model.predict(features, annotator)
    return out.reshape(final.shape)
