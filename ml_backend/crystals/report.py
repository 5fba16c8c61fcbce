"""Writing a crystal analysis to a folder: tables (CSV, Parquet, JSON), CSD plot, composition map."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tifffile

from ml_backend.crystals.analysis import CrystalAnalysis
from ml_backend.crystals.config import CrystalConfig
from ml_backend.crystals.size_distribution import plot_size_distribution


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return json.loads(frame.to_json(orient="records", force_ascii=False))  # NaN -> null


def _write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=float) + "\n", encoding="utf-8")
    return path


def write_report(
    analysis: CrystalAnalysis, out_dir: str | Path, config: CrystalConfig, source: dict[str, Any] | None = None
) -> dict[str, Path]:
    """Write every output of a crystal analysis into ``out_dir``.

    Files: ``crystals.csv`` and ``crystals.parquet`` (one row per crystal), ``modal.csv`` /
    ``modal.json`` (area % per mineral), ``size_distribution.csv`` / ``.png`` (CSD),
    ``zoning_summary.csv`` / ``.json``, ``clusters.csv`` (described populations),
    ``summary.json`` (counts, units, notes, thresholds, inputs), and with a calibration
    ``calibration.json``, ``calibration_points.csv`` and ``composition_<var>.tif``
    (float32, NaN outside the calibrated mineral).

    Returns:
        The written paths by name.

    Raises:
        OSError: when the folder cannot be created or written.
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(f"cannot create output folder {out} ({exc.strerror or exc}); choose a writable --out") from None
    paths: dict[str, Path] = {}
    table = analysis.table
    paths["crystals_csv"] = out / "crystals.csv"
    table.to_csv(paths["crystals_csv"], index=False)
    paths["crystals_parquet"] = out / "crystals.parquet"
    parquet = table.copy()
    parquet.attrs = {}  # pandas would store attrs as JSON metadata; keep the file plain
    parquet.to_parquet(paths["crystals_parquet"], index=False)
    paths["modal_csv"] = out / "modal.csv"
    analysis.modal.to_csv(paths["modal_csv"], index=False)
    paths["modal_json"] = _write_json(out / "modal.json", _records(analysis.modal))
    paths["size_distribution_csv"] = out / "size_distribution.csv"
    analysis.size_distribution.to_csv(paths["size_distribution_csv"], index=False)
    paths["size_distribution_png"] = plot_size_distribution(analysis.size_distribution, out / "size_distribution.png")
    paths["zoning_csv"] = out / "zoning_summary.csv"
    analysis.zoning_summary.to_csv(paths["zoning_csv"], index=False)
    paths["zoning_json"] = _write_json(out / "zoning_summary.json", _records(analysis.zoning_summary))
    paths["clusters_csv"] = out / "clusters.csv"
    analysis.clusters.to_csv(paths["clusters_csv"], index=False)
    summary = {
        "crystals": int(len(table)),
        "crystals_cut_by_edge": int(table["touches_border"].sum()) if len(table) else 0,
        "field_px": list(analysis.instances.labels.shape),
        "pixel_size_um": analysis.pixel_size_um,
        "size_unit": "um" if analysis.pixel_size_um is not None else "px",
        "intensity_range": asdict(analysis.intensity_range),
        "noise_sigma": table.attrs.get("noise_sigma"),
        "populations": {k: int(v) for k, v in table["population"].value_counts().items()} if len(table) else {},
        "clusters": analysis.clusters["description"].tolist() if len(analysis.clusters) else [],
        "notes": analysis.notes,
        "config": asdict(config),
        "source": source or {},
    }
    if analysis.calibrated is not None:
        cal = analysis.calibrated
        variable = cal.calibration.variable
        paths["calibration_json"] = _write_json(
            out / "calibration.json", {**cal.calibration.to_dict(), "points": _records(cal.points)}
        )
        paths["calibration_points_csv"] = out / "calibration_points.csv"
        cal.points.to_csv(paths["calibration_points_csv"], index=False)
        paths["composition_map"] = out / f"composition_{variable}.tif"
        tifffile.imwrite(paths["composition_map"], cal.composition_map.astype(np.float32), compression="zlib")
        summary["calibration"] = {
            "variable": variable,
            "mineral": cal.calibration.mineral,
            "points": cal.calibration.n,
            "residual_sd": cal.calibration.residual_sd,
        }
    paths["summary_json"] = _write_json(out / "summary.json", summary)
    return paths
