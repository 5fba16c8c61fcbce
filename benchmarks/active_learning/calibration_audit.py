"""Calibrating implicit-label confidence on one expert's audits and measuring it on other experts.

The benchmark keeps, for every implicit submission, a sample of its labelled pixels with the
calibration features (:func:`active_learning.calibration.pixel_features`), the hand-set
confidence, the calibrated one (when a model was in use) and whether the label is right.

* :func:`audit`: a uniform share (default 10 %) of one expert's submissions goes to a second
  review; the review is taken to be right (the truth), as a careful second reviewer would be;
* :func:`fit_on_audit`: the calibration model fitted on the audited pixels;
* :func:`ece_report`: adaptive-bin ECE (15 equal-mass bins) with a 95 % interval from a
  submission-clustered bootstrap, for the hand-set and the calibrated confidence;
* :func:`leave_one_annotator_out`: fitted on two experts' audits, measured on the third;
* :func:`with_own_audits`: fitted on expert A's audits and a share of the measured expert's own
  (their own isotonic map, as in production where every annotator is audited), measured on that
  expert's submissions that were not audited.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from active_learning.calibration import FEATURES, HARVEST_FEATURES, CalibrationModel
from ml_backend.metrics import ece_interval, expected_calibration_error, reliability_bins

AUDIT_SHARE = 0.1
BINS = 15


def concat(records: Sequence[dict[str, np.ndarray]], expert: str, seed: int) -> dict[str, np.ndarray]:
    """One table of a run's submission records, with the expert and a submission id per pixel."""
    if not records:
        return {}
    keys = set.intersection(*(set(r) for r in records))
    out = {k: np.concatenate([r[k] for r in records]) for k in keys}
    out["submission"] = np.concatenate(
        [np.full(len(r["correct"]), f"{expert}:{seed}:{i}") for i, r in enumerate(records)]
    )
    out["expert"] = np.full(len(out["correct"]), expert)
    return out


def join(tables: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Rows of several tables (columns they all have)."""
    tables = [t for t in tables if t]
    if not tables:
        return {}
    keys = set.intersection(*(set(t) for t in tables))
    return {k: np.concatenate([t[k] for t in tables]) for k in keys}


def rows(table: dict[str, np.ndarray], mask: np.ndarray) -> dict[str, np.ndarray]:
    """The rows of ``table`` where ``mask``."""
    return {k: v[mask] for k, v in table.items()}


def audit(table: dict[str, np.ndarray], share: float = AUDIT_SHARE, seed: int = 0) -> dict[str, np.ndarray]:
    """The pixels of a uniform random ``share`` of the submissions (at least two)."""
    submissions = np.unique(table["submission"])
    n = max(2, int(round(share * submissions.size)))
    chosen = np.random.default_rng(seed).choice(submissions, size=min(n, submissions.size), replace=False)
    return rows(table, np.isin(table["submission"], chosen))


def fit_on_audit(audited: dict[str, np.ndarray], with_probability: bool = False) -> CalibrationModel:
    """The calibration model on audited pixels (harvest-time features, or all with the model's probability)."""
    base = FEATURES if with_probability else HARVEST_FEATURES
    names = list(base) + sorted(k for k in audited if k.startswith("class_"))
    return CalibrationModel.fit(audited, audited["correct"].astype(bool), audited["submission"],
                                annotators=audited["expert"], names=names)  # fmt: skip


def ece_with_interval(
    confidence: np.ndarray, correct: np.ndarray, clusters: np.ndarray, n_boot: int = 1000
) -> dict[str, float]:
    """Adaptive ECE and its 95 % submission-clustered bootstrap interval."""
    ids, index = np.unique(clusters, return_inverse=True)  # once: sorting millions of string ids takes seconds
    low, high = ece_interval(confidence, correct, index, BINS, n_boot, 0.95, seed=2)
    return {"ece": expected_calibration_error(confidence, correct, BINS), "ci_low": low, "ci_high": high,
            "pixels": int(correct.size), "submissions": int(ids.size)}  # fmt: skip


def ece_report(
    table: dict[str, np.ndarray], model: CalibrationModel | None, n_boot: int = 1000, annotator: str | None = None
) -> dict[str, Any]:
    """ECE of the hand-set and (if a model is given) the recalibrated confidence on ``table``, with reliability bins."""
    correct = table["correct"].astype(bool)
    out: dict[str, Any] = {"accuracy": float(correct.mean()),
                           "hand_set": ece_with_interval(np.clip(table["hand_set"], 0, 1), correct, table["submission"], n_boot)}  # fmt: skip
    if model is not None:
        calibrated = np.clip(model.predict(table, annotator), 0, 1)
        out["calibrated"] = ece_with_interval(calibrated, correct, table["submission"], n_boot)
        out["reliability"] = reliability_bins(calibrated, correct, BINS)
    out["reliability_hand_set"] = reliability_bins(np.clip(table["hand_set"], 0, 1), correct, BINS)
    return out


def leave_one_annotator_out(tables: dict[str, dict[str, np.ndarray]], n_boot: int = 1000) -> dict[str, dict[str, Any]]:
    """For each expert: fitted on the other experts' audits, ECE on all of this expert's pixels."""
    out = {}
    for held in tables:
        audited = join([audit(t, seed=3) for name, t in tables.items() if name != held])
        if not audited:
            continue
        model = fit_on_audit(audited)
        out[held] = ece_report(tables[held], model, n_boot)
    return out


def with_own_audits(reference: dict[str, np.ndarray], table: dict[str, np.ndarray], expert: str) -> dict[str, Any]:
    """Fitted on ``reference`` (another expert's audited pixels) and ``expert``'s own audits, ECE on
    ``expert``'s submissions not audited."""
    own = audit(table, seed=3)
    model = fit_on_audit(join([reference, own]))
    return ece_report(rows(table, ~np.isin(table["submission"], own["submission"])), model, annotator=expert)
