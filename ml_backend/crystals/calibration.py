"""BSE-to-composition calibration on microprobe points (e.g. olivine Fo from BSE brightness).

BSE brightness is linear in the backscatter coefficient eta, and eta varies smoothly and
almost linearly with composition across a solid solution (olivine: about -0.0011 eta per
mol % Fo in the catalogue), so an ordinary least-squares line ``value = a + b * level`` of
composition on the normalised BSE level is the model. Its prediction interval at a level
x0 is ``t(1 - alpha/2, n - 2) * s * sqrt(1 + 1/n + (x0 - mean)^2 / Sxx)``.

A calibration belongs to one image and its normalisation: the levels are sampled on the
same normalised image the calibration is applied to.

Refusals (``ValueError`` saying what to do): fewer usable points than
``min_probe_points``; points all at one level; predictions beyond the measured range of
compositions by more than ``extrapolation_margin`` (single predictions); maps and crystal
tables of which more than ``max_outside_fraction`` lies beyond that margin.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from scipy import stats

from label_config.catalogue import Catalogue
from ml_backend.crystals.config import CrystalConfig


@dataclass(frozen=True)
class ProbePoints:
    """Microprobe analyses: position in image pixels (x = column, y = row) and measured value."""

    x: np.ndarray
    y: np.ndarray
    value: np.ndarray
    variable: str
    source: str = ""


def read_probe_points(path: str | Path, variable: str | None = None) -> ProbePoints:
    """Read a CSV of microprobe points with columns ``x``, ``y`` and one composition column.

    Args:
        path: CSV file; x, y are pixel coordinates of the BSE image (x = column, y = row).
        variable: Name of the composition column (e.g. ``Fo``); by default the one column
            besides x and y (an ``id``/``label``/``name`` text column may also be present).

    Raises:
        ValueError: naming the file and the problem (missing, unreadable, columns, values).
    """
    path = Path(path)
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError:
        raise ValueError(f"{path}: probe point file not found") from None
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a readable CSV of probe points ({exc})") from None
    columns = {c.strip().lower(): c for c in frame.columns}
    missing = [c for c in ("x", "y") if c not in columns]
    if missing:
        raise ValueError(
            f"{path}: probe points need columns x and y (pixel coordinates); missing {missing}, found {list(frame.columns)}"
        )
    if variable is None:
        rest = [c for c in frame.columns if c.strip().lower() not in ("x", "y", "id", "label", "name", "comment")]
        if len(rest) != 1:
            raise ValueError(
                f"{path}: expected exactly one composition column besides x and y, found {rest}; name the column to use"
            )
        variable = rest[0]
    elif variable not in frame.columns:
        raise ValueError(f"{path}: no column {variable!r}; columns are {list(frame.columns)}")
    try:
        table = frame[[columns["x"], columns["y"], variable]].astype(float).to_numpy()
    except ValueError as exc:
        raise ValueError(f"{path}: x, y and {variable} must be numbers ({exc})") from None
    if not np.isfinite(table).all():
        bad = np.flatnonzero(~np.isfinite(table).all(axis=1)) + 2
        raise ValueError(f"{path}: rows {bad.tolist()} hold empty or non-finite values; fix or delete them")
    return ProbePoints(table[:, 0], table[:, 1], table[:, 2], str(variable).strip(), str(path))


def calibration_target(catalogue: Catalogue, variable: str, mineral: str | None = None) -> int:
    """Class index of the mineral a composition variable belongs to (``Fo`` -> Olivine).

    Raises:
        ValueError: when ``mineral`` is unknown, or no (or several) solid solutions use ``variable``.
    """
    if mineral is not None:
        index = catalogue.index_of(mineral)
        if index is None:
            raise ValueError(f"unknown mineral {mineral!r}; catalogue classes are: {', '.join(catalogue.names)}")
        return index
    found = [
        i for i, m in enumerate(catalogue.classes)
        if m.solid_solution is not None and m.solid_solution.variable.casefold() == variable.casefold()
    ]  # fmt: skip
    if len(found) != 1:
        known = sorted({m.solid_solution.variable for m in catalogue.classes if m.solid_solution is not None})
        raise ValueError(
            f"composition column {variable!r} matches {len(found)} solid solutions of the catalogue "
            f"(known variables: {', '.join(known)}); rename the column or name the mineral"
        )
    return found[0]


def sample_levels(
    image: np.ndarray, x: np.ndarray, y: np.ndarray, radius_px: float, valid: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Mean image level in a disc around each point, over ``valid`` pixels only.

    Returns:
        ``(levels, n_pixels)``: NaN and 0 where the disc holds no valid pixel.

    Raises:
        ValueError: naming the points that lie outside the image.
    """
    h, w = image.shape
    outside = (x < -0.5) | (y < -0.5) | (x > w - 0.5) | (y > h - 0.5)
    if outside.any():
        raise ValueError(
            f"probe points {np.flatnonzero(outside).tolist()} lie outside the {w} x {h} px image; x, y must be pixel coordinates"
        )
    r = int(np.ceil(radius_px))
    dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
    disc = dy**2 + dx**2 <= radius_px**2
    dy, dx = dy[disc], dx[disc]
    rows = np.rint(y).astype(np.int64)[:, None] + dy[None, :]
    cols = np.rint(x).astype(np.int64)[:, None] + dx[None, :]
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    rows, cols = np.clip(rows, 0, h - 1), np.clip(cols, 0, w - 1)
    use = inside if valid is None else inside & valid[rows, cols]
    n = use.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        levels = np.where(n > 0, (image[rows, cols] * use).sum(axis=1) / n, np.nan)
    return levels, n


@dataclass(frozen=True)
class BseCalibration:
    """A fitted line ``value = intercept + slope * level`` with its prediction intervals.

    Attributes:
        variable: Composition variable (``Fo``).
        mineral: Name of the calibrated mineral.
        intercept, slope: The line.
        residual_sd: Residual standard deviation (composition units).
        n: Number of points fitted.
        level_mean, level_sxx: Mean and sum of squared deviations of the fitted levels.
        value_min, value_max: Range of the measured compositions.
        margin: Allowed extrapolation beyond that range (composition units).
        confidence: Level of the prediction intervals.
        r_squared: Coefficient of determination.
        theory_slope: Slope expected from the catalogue's eta curves and the levels of the
            image's fixed-composition phases (``theory_slope``), or NaN when unknown.
    """

    variable: str
    mineral: str
    intercept: float
    slope: float
    residual_sd: float
    n: int
    level_mean: float
    level_sxx: float
    value_min: float
    value_max: float
    margin: float
    confidence: float
    r_squared: float
    theory_slope: float = float("nan")

    @property
    def t_quantile(self) -> float:
        """Student t quantile of the two-sided prediction interval."""
        return float(stats.t.ppf(0.5 + self.confidence / 2.0, self.n - 2))

    def half_width(self, levels: np.ndarray) -> np.ndarray:
        """Half-width of the prediction interval at each level (composition units)."""
        levels = np.asarray(levels, dtype=float)
        return (
            self.t_quantile
            * self.residual_sd
            * np.sqrt(1.0 + 1.0 / self.n + (levels - self.level_mean) ** 2 / self.level_sxx)
        )

    def predict(self, levels: np.ndarray, outside: Literal["raise", "nan"] = "raise") -> tuple[np.ndarray, np.ndarray]:
        """Composition and prediction-interval half-width at each level.

        Args:
            levels: Normalised BSE levels.
            outside: What to do with predictions beyond the calibrated range +- margin:
                ``"raise"`` a ValueError, or return ``"nan"`` for them.

        Raises:
            ValueError: with ``outside="raise"``, when a prediction is an extrapolation.
        """
        levels = np.asarray(levels, dtype=float)
        value = self.intercept + self.slope * levels
        far = np.isfinite(value) & ((value < self.value_min - self.margin) | (value > self.value_max + self.margin))
        if far.any() and outside == "raise":
            raise ValueError(
                f"{int(far.sum())} of {far.size} BSE levels map to {self.variable} "
                f"{np.nanmin(value[far]):.1f}-{np.nanmax(value[far]):.1f}, beyond the calibrated "
                f"{self.value_min:.1f}-{self.value_max:.1f} +- {self.margin:g}; add probe points covering "
                f"these compositions, or widen the extrapolation margin if you accept the risk"
            )
        value = np.where(far, np.nan, value)
        return value, np.where(np.isfinite(value), self.half_width(levels), np.nan)

    def to_dict(self) -> dict:
        """Plain dict for JSON reports (with the t quantile)."""
        return {**asdict(self), "t_quantile": self.t_quantile}


def fit_calibration(
    levels: np.ndarray,
    values: np.ndarray,
    variable: str,
    mineral: str,
    config: CrystalConfig | None = None,
    expected_slope: float = float("nan"),
) -> BseCalibration:
    """Fit composition on BSE level by ordinary least squares.

    Raises:
        ValueError: for fewer than ``min_probe_points`` (and at least 3) finite points, or
            points that all share one level.
    """
    config = config or CrystalConfig()
    levels, values = np.asarray(levels, float), np.asarray(values, float)
    ok = np.isfinite(levels) & np.isfinite(values)
    needed = max(config.min_probe_points, 3)
    if ok.sum() < needed:
        raise ValueError(
            f"{int(ok.sum())} usable probe point(s) on {mineral}, at least {needed} are needed to calibrate "
            f"{variable} with an uncertainty; add microprobe points inside {mineral} crystals"
        )
    x, yv = levels[ok], values[ok]
    n = len(x)
    sxx = float(np.sum((x - x.mean()) ** 2))
    if sxx <= 1e-12:
        raise ValueError(
            f"all {n} probe points have the same BSE level; choose points on {mineral} of different brightness"
        )
    slope = float(np.sum((x - x.mean()) * (yv - yv.mean())) / sxx)
    intercept = float(yv.mean() - slope * x.mean())
    residual = yv - (intercept + slope * x)
    sd = float(np.sqrt(np.sum(residual**2) / (n - 2)))
    total = float(np.sum((yv - yv.mean()) ** 2))
    r2 = 1.0 - float(np.sum(residual**2)) / total if total > 0 else float("nan")
    return BseCalibration(
        variable, mineral, intercept, slope, sd, n, float(x.mean()), sxx, float(yv.min()), float(yv.max()),
        config.extrapolation_margin, config.confidence, r2, expected_slope,
    )  # fmt: skip


def theory_slope(
    image: np.ndarray, mask: np.ndarray, class_index: int, catalogue: Catalogue, min_pixels: int = 1000
) -> float:
    """Composition change per unit of normalised level expected from the catalogue (a physics check).

    The image's level-to-eta scale is fitted on the median levels of the phases of fixed
    composition present (at least ``min_pixels`` each, at least two phases); the mineral's
    solid solution gives d eta / d composition. NaN when either is unavailable.
    """
    solution = catalogue.classes[class_index].solid_solution
    if solution is None:
        return float("nan")
    step = max(1, int(np.sqrt(image.size / 4_000_000)))
    sub_image, sub_mask = image[::step, ::step], mask[::step, ::step]
    etas, medians = [], []
    for index, mineral in enumerate(catalogue.classes):
        pixels = sub_image[sub_mask == index]
        if mineral.solid_solution is None and pixels.size >= min_pixels / step**2:
            etas.append(mineral.eta)
            medians.append(float(np.median(pixels)))
    if len(etas) < 2 or np.ptp(medians) <= 0:
        return float("nan")
    eta_per_level = np.polyfit(medians, etas, 1)[0]
    low, high = solution.range
    eta_per_value = (solution.eta_at(high) - solution.eta_at(low)) / (high - low)
    return float(eta_per_level / eta_per_value)


def calibrate(
    image: np.ndarray,
    mask: np.ndarray,
    points: ProbePoints,
    class_index: int,
    catalogue: Catalogue,
    config: CrystalConfig | None = None,
) -> tuple[BseCalibration, pd.DataFrame]:
    """Sample each probe point's disc on the calibrated mineral and fit the calibration.

    Points whose disc holds no pixel of the mineral are left out (their row says so).

    Returns:
        ``(calibration, points table)`` with columns x, y, measured value, level, pixels,
        used, predicted value, residual and interval half-width.

    Raises:
        ValueError: see ``fit_calibration``.
    """
    config = config or CrystalConfig()
    mineral = catalogue.classes[class_index].name
    levels, n = sample_levels(image, points.x, points.y, config.probe_radius_px, mask == class_index)
    expected = theory_slope(image, mask, class_index, catalogue)
    calibration = fit_calibration(levels, points.value, points.variable, mineral, config, expected)
    predicted, half = calibration.predict(levels, outside="nan")
    table = pd.DataFrame({
        "x": points.x, "y": points.y, points.variable: points.value, "level": levels, "pixels": n,
        "used": np.isfinite(levels), "predicted": predicted, "residual": points.value - predicted, "interval_half_width": half,
    })  # fmt: skip
    return calibration, table


def _refuse_if_outside(outside: int, total: int, calibration: BseCalibration, what: str, config: CrystalConfig) -> None:
    if total and outside / total > config.max_outside_fraction:
        raise ValueError(
            f"{outside} of {total} {what} ({outside / total:.0%}) lie beyond the calibrated {calibration.variable} "
            f"{calibration.value_min:.1f}-{calibration.value_max:.1f} +- {calibration.margin:g}: the sample is outside "
            f"the calibration; add probe points covering its compositions"
        )


def composition_map(
    image: np.ndarray,
    mask: np.ndarray,
    class_index: int,
    calibration: BseCalibration,
    config: CrystalConfig | None = None,
) -> np.ndarray:
    """Composition of every pixel of the calibrated mineral (float32, NaN elsewhere).

    Each pixel reads the mean level of the mineral's pixels in a square of side
    2 x ``probe_radius_px`` + 1 around it (about the support of a probe sample), so map
    values and probe values are comparable and pixel noise is damped. Pixels beyond the
    calibrated range +- margin are NaN.

    Raises:
        ValueError: when more than ``max_outside_fraction`` of the mineral's pixels lie beyond the margin.
    """
    config = config or CrystalConfig()
    phase = mask == class_index
    size = 2 * int(np.ceil(config.probe_radius_px)) + 1
    weight = ndi.uniform_filter(phase.astype(np.float32), size=size)
    total = ndi.uniform_filter(np.where(phase, image, 0).astype(np.float32), size=size)
    out = np.full(image.shape, np.nan, np.float32)
    levels = total[phase] / np.maximum(weight[phase], 1e-6)
    values, _ = calibration.predict(levels, outside="nan")
    _refuse_if_outside(int(np.isnan(values).sum()), values.size, calibration, f"{calibration.mineral} pixels", config)
    out[phase] = values
    return out


def crystal_compositions(
    table: pd.DataFrame, class_index: int, calibration: BseCalibration, config: CrystalConfig | None = None
) -> pd.DataFrame:
    """Core and rim compositions (with interval half-widths) of the calibrated mineral's crystals.

    Returns:
        The table with columns ``core_<var>``, ``core_<var>_pi``, ``rim_<var>``,
        ``rim_<var>_pi`` (NaN for other minerals, unresolved levels and extrapolations).

    Raises:
        ValueError: when more than ``max_outside_fraction`` of the core and rim levels lie beyond the margin.
    """
    config = config or CrystalConfig()
    table = table.copy()
    mine = (table["class_index"] == class_index).to_numpy()
    var = calibration.variable
    checked = outside = 0
    for part in ("core", "rim"):
        levels = table.loc[mine, f"{part}_level"].to_numpy()
        value, half = calibration.predict(levels, outside="nan")
        table[f"{part}_{var}"] = np.nan
        table[f"{part}_{var}_pi"] = np.nan
        table.loc[mine, f"{part}_{var}"] = value
        table.loc[mine, f"{part}_{var}_pi"] = half
        checked += int(np.isfinite(levels).sum())
        outside += int((np.isfinite(levels) & ~np.isfinite(value)).sum())
    _refuse_if_outside(outside, checked, calibration, f"{calibration.mineral} core and rim levels", config)
    return table
