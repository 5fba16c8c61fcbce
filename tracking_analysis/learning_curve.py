"""Learning curves of retraining with implicit vs explicit labels at the same labelling budget.

Input: a table with one row per (strategy, label kind, budget) as JSON (a list of objects,
or ``{"rows": [...]}``) or CSV, with the columns

* ``n_labelled_tiles``: labelling budget (tiles labelled);
* ``mIoU``: validation mean IoU of the model retrained on them;
* ``strategy``: the query strategy that picked the tiles (e.g. ``entropy``, ``random``);
* ``label_kind``: ``implicit`` (harvested corrections) or ``explicit`` (labelled from scratch).

Extra columns (e.g. ``seed``) are kept; repeated rows of the same key are averaged.
:func:`implicit_vs_explicit` compares the kinds at each budget both were run at.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = ("n_labelled_tiles", "mIoU", "strategy", "label_kind")
LABEL_KINDS = ("implicit", "explicit")


def validate(frame: pd.DataFrame, source: str = "learning curve") -> pd.DataFrame:
    """Check and normalise a learning-curve table (types, label kinds); returns a sorted copy.

    Raises:
        ValueError: naming ``source`` and the missing column or bad value.
    """
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{source} lacks column(s) {', '.join(missing)}; expected {', '.join(COLUMNS)}")
    out = frame.copy()
    try:
        out["n_labelled_tiles"] = out["n_labelled_tiles"].astype(int)
        out["mIoU"] = out["mIoU"].astype(float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{source}: n_labelled_tiles must be integers and mIoU numbers ({exc})") from None
    out["strategy"] = out["strategy"].astype(str)
    out["label_kind"] = out["label_kind"].astype(str).str.lower()
    bad = sorted(set(out["label_kind"]) - set(LABEL_KINDS))
    if bad:
        raise ValueError(f"{source}: label_kind {bad[0]!r} is not one of {', '.join(LABEL_KINDS)}")
    if ((out["mIoU"] < 0) | (out["mIoU"] > 1)).any():
        raise ValueError(f"{source}: mIoU must lie in [0, 1]")
    return out.sort_values(["strategy", "label_kind", "n_labelled_tiles"]).reset_index(drop=True)


def read_learning_curve(path: str | Path) -> pd.DataFrame:
    """Read and validate a learning-curve table from ``.json`` or ``.csv``.

    Raises:
        OSError: if the file cannot be read or parsed.
        ValueError: if it is not a valid learning-curve table.
    """
    path = Path(path)
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            rows = data.get("rows") if isinstance(data, dict) else data
            if not isinstance(rows, list):
                raise ValueError('expected a list of rows or {"rows": [...]}')
            frame = pd.DataFrame(rows)
        else:
            frame = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise OSError(f"cannot read learning curve {path}: {exc}") from None
    return validate(frame, str(path))


def curves(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean mIoU (and ``runs``) per strategy, label kind and budget."""
    return (
        frame.groupby(["strategy", "label_kind", "n_labelled_tiles"], sort=True)["mIoU"]
        .agg(mIoU="mean", runs="size")
        .reset_index()
    )


def implicit_vs_explicit(frame: pd.DataFrame) -> pd.DataFrame:
    """Per strategy and budget run with both kinds: ``implicit``, ``explicit`` mIoU and
    ``ratio`` = implicit / explicit (1 = implicit labels are worth as much as explicit ones)."""
    mean = curves(frame).pivot_table(index=["strategy", "n_labelled_tiles"], columns="label_kind", values="mIoU")
    for kind in LABEL_KINDS:
        if kind not in mean.columns:
            mean[kind] = np.nan
    both = mean.dropna(subset=list(LABEL_KINDS)).reset_index()
    both["ratio"] = both["implicit"] / both["explicit"]
    return both[["strategy", "n_labelled_tiles", "implicit", "explicit", "ratio"]]
