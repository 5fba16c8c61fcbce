"""Fingerprints of data sets: which samples (and which contents) a model was validated on.

Kept apart from MLflow so the training loop can use it with light imports.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping


def fingerprint(samples: Mapping[str, str] | Iterable[str]) -> str:
    """A stable SHA-256 (hex) of a data set's identity, independent of order.

    Args:
        samples: Sample ids, or a mapping sample id -> content hash (then a changed
            content changes the fingerprint too).

    Raises:
        ValueError: if an id repeats or there are no samples.
    """
    if isinstance(samples, Mapping):
        items = sorted((str(key), str(value)) for key, value in samples.items())
    else:
        ids = [str(sample) for sample in samples]
        if len(set(ids)) != len(ids):
            repeated = sorted({sample for sample in ids if ids.count(sample) > 1})
            raise ValueError(f"sample ids repeat in the data set: {repeated[:5]}")
        items = sorted((sample, "") for sample in ids)
    if not items:
        raise ValueError("cannot fingerprint an empty data set")
    return hashlib.sha256(json.dumps(items, separators=(",", ":")).encode("utf-8")).hexdigest()
