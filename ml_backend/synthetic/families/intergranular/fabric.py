"""The crystal fabric of one field: which grains nucleate where, how large, in what shape.

Sizes follow an exponential crystal size distribution (``L_min + Exp(scale)``, the log-linear
CSD of basalts) per phase, so a 5 µm-pixel field holds hundreds of crystals and a 1 µm one a
few. The number of grains is set by the crystal cover and modal shares drawn for the field:
in a Boolean model, balls of total area ``-ln(1 - cover)`` times the field cover ``cover`` of
it, and a phase that crystallises later only gains what earlier ones left free; where balls
overlap, the tessellation makes the grains touch. Part of the grains sit in glomerocrysts
(tight clusters of plagioclase, clinopyroxene and olivine); some clinopyroxenes are large,
late, slow-growing oikocrysts that enclose early plagioclase laths (ophitic / subophitic).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ml_backend.synthetic.families.intergranular.smooth import WaveField
from ml_backend.synthetic.families.intergranular.tessellation import (
    ARMS,
    CHAMFER,
    EMBAY_ANGLE,
    EMBAY_DEPTH,
    EMBAY_WIDTH,
    FRAME,
    HARMONIC_AMPLITUDES,
    HARMONIC_PHASES,
    HARMONICS,
    OCTAGON,
    ROUND,
    SHAPE_COLUMNS,
    SKELETAL,
    Grains,
)
from ml_backend.synthetic.groundmass import log_uniform

ROLES = ("Plagioclase", "Clinopyroxene", "Olivine", "Fe-Ti oxide")
PLAG, CPX, OLIVINE, OXIDE = range(4)
#: Mean modal shares of the crystal area (plagioclase, clinopyroxene, olivine, oxide) per style.
STYLES = {
    "doleritic": (0.52, 0.34, 0.08, 0.06),
    "olivine-rich": (0.33, 0.22, 0.40, 0.05),
    "oxide-rich": (0.47, 0.31, 0.07, 0.15),
    "plagioclase-rich": (0.68, 0.22, 0.06, 0.04),
}
_STYLE_WEIGHTS = (0.4, 0.2, 0.2, 0.2)
OXIDE_VARIETIES = ("equant", "skeletal", "needle")
#: Phases in order of nucleation time (see the start ranges in ``HABITS``).
_SEQUENCE = ("Olivine", "Plagioclase", "Clinopyroxene", "Fe-Ti oxide")
_MIN_LENGTH_UM = {"Plagioclase": 30.0, "Clinopyroxene": 30.0, "Olivine": 30.0, "Fe-Ti oxide": 12.0}
_MIN_HALF_WIDTH_PX = 0.6  # a 1 px wide line at least
Range = tuple[float, float]


@dataclass
class Fabric:
    """The grains of a field and what they are.

    Attributes:
        grains: Positions, shapes and growth of every grain (in drawing order).
        roles: (n,) int8 index into ``ROLES``.
        varieties: Habit per grain ("lath", "prism", "granular", "oikocryst", "chadacryst",
            "rounded", "embayed", "equant", "skeletal", "needle").
        hosts: (n,) int32 index + 1 of the oikocryst enclosing a chadacryst, else 0.
    """

    grains: Grains
    roles: np.ndarray
    varieties: list[str]
    hosts: np.ndarray


@dataclass(frozen=True)
class Habit:
    """How one variety of grain is drawn.

    Attributes:
        role: Index into ``ROLES``.
        size_factor: Scale of its exponential size distribution, relative to the field's.
        kind: Shape kind of the tessellation.
        aspect: Log-uniform length / width range (None: the field's plagioclase range).
        start, duration: Nucleation time and growth duration ranges (crystallisation order).
        chamfer: Octagon chamfer range (2 = rectangle); ``square_share`` of them uncut.
        roughness: Harmonic perturbation of rounded outlines.
        embayed: Whether rounded outlines get an embayment.
    """

    role: int
    size_factor: float
    kind: int
    aspect: Range | None
    start: Range
    duration: Range
    chamfer: Range = (2.0, 2.0)
    square_share: float = 0.0
    roughness: float = 0.0
    embayed: bool = False


HABITS = {
    "lath": Habit(PLAG, 1.3, OCTAGON, None, (0.1, 0.4), (0.3, 0.6), chamfer=(1.5, 1.9), square_share=0.6),
    "chadacryst": Habit(PLAG, 0.0, OCTAGON, None, (0.0, 0.2), (0.3, 0.6), chamfer=(1.5, 1.9), square_share=0.6),
    "prism": Habit(CPX, 1.0, OCTAGON, (1.0, 2.2), (0.5, 0.8), (0.4, 0.8), chamfer=(1.2, 1.5)),
    "granular": Habit(CPX, 1.0, ROUND, (1.0, 1.6), (0.5, 0.8), (0.4, 0.8), roughness=0.25),
    "oikocryst": Habit(CPX, 3.0, ROUND, (1.0, 1.5), (0.7, 0.9), (0.8, 1.2), roughness=0.35),
    "rounded": Habit(OLIVINE, 0.8, ROUND, (1.0, 1.5), (0.0, 0.1), (0.3, 0.6), roughness=0.12),
    "embayed": Habit(OLIVINE, 0.8, ROUND, (1.0, 1.5), (0.0, 0.1), (0.3, 0.6), roughness=0.12, embayed=True),
    "equant": Habit(OXIDE, 0.25, OCTAGON, (1.0, 1.3), (1.6, 2.2), (0.2, 0.5), chamfer=(1.0, 2.0)),
    "skeletal": Habit(OXIDE, 0.35, SKELETAL, (3.0, 8.0), (1.9, 2.4), (0.2, 0.4)),
    "needle": Habit(OXIDE, 0.6, OCTAGON, (8.0, 40.0), (1.9, 2.4), (0.2, 0.4)),
}


def draw_habit(rng: np.random.Generator, variety: str, length_px: np.ndarray, field: dict[str, Any]) -> Grains:
    """Grains of one variety with the given lengths (px), centred at the origin."""
    habit = HABITS[variety]
    n = len(length_px)
    aspect = log_uniform(rng, habit.aspect or field["plagioclase_aspect"], n)
    half = length_px / 2.0
    g = Grains(
        row=np.zeros(n), col=np.zeros(n), angle=rng.uniform(0.0, np.pi, n),
        half_length=half, half_width=np.maximum(half / aspect, _MIN_HALF_WIDTH_PX),
        kind=np.full(n, habit.kind, np.int8), shape=np.zeros((n, SHAPE_COLUMNS)),
        start=rng.uniform(*habit.start, n), duration=rng.uniform(*habit.duration, n),
    )  # fmt: skip
    if habit.kind == OCTAGON:
        g.shape[:, CHAMFER] = np.where(rng.random(n) < habit.square_share, 2.0, rng.uniform(*habit.chamfer, n))
    elif habit.kind == SKELETAL:  # a bare cross, one in ten inside a square frame; arms of unequal length
        g.shape[:, FRAME] = np.where(rng.random(n) < 0.1, rng.uniform(0.75, 0.9, n), 2.0)
        g.shape[:, ARMS] = rng.uniform(0.3, 1.0, (n, 4))
    else:
        g.shape[:, HARMONIC_AMPLITUDES] = rng.uniform(0.0, habit.roughness, (n, len(HARMONICS))) / np.array(HARMONICS)
        g.shape[:, HARMONIC_PHASES] = rng.uniform(0.0, 2.0 * np.pi, (n, len(HARMONICS)))
        if habit.embayed:
            g.shape[:, EMBAY_DEPTH] = rng.uniform(0.25, 0.6, n)
            g.shape[:, EMBAY_ANGLE] = rng.uniform(-np.pi, np.pi, n)
            g.shape[:, EMBAY_WIDTH] = rng.uniform(0.15, 0.45, n)
    return g


def ball_area(grains: Grains) -> np.ndarray:
    """Area of each grain's unit ball in px² (harmonics and embayments ignored)."""
    ab = grains.half_length * grains.half_width
    octagon = ab * (4.0 - 2.0 * (2.0 - grains.shape[:, CHAMFER]) ** 2)
    cross = 2.0 * ab * grains.shape[:, ARMS].sum(axis=1) - 4.0 * grains.half_width**2
    frame = np.clip(grains.shape[:, FRAME], 0.0, 1.0)
    skeletal = cross + 0.8 * 4.0 * grains.half_length**2 * (1.0 - frame**2)
    return np.select([grains.kind == OCTAGON, grains.kind == ROUND], [octagon, np.pi * ab], skeletal)


def _draw_variety(
    rng: np.random.Generator,
    variety: str,
    target_px2: float,
    scale_um: float,
    px: float,
    cap_um: float,
    field: dict[str, Any],
) -> Grains:
    """Grains of one variety whose ball areas add up to ``target_px2``."""
    habit = HABITS[variety]
    min_um, factor = min(_MIN_LENGTH_UM[ROLES[habit.role]], cap_um), habit.size_factor
    parts, total = [], 0.0
    while total < target_px2:
        guess = draw_habit(rng, variety, np.full(1, (min_um + factor * scale_um) / px), field)
        n = int(np.clip(2.0 * (target_px2 - total) / max(float(ball_area(guess)[0]), 1.0), 1, 20000))
        length_um = np.minimum(min_um + rng.exponential(factor * scale_um, n), cap_um)
        batch = draw_habit(rng, variety, length_um / px, field)
        cumulative = total + np.cumsum(ball_area(batch))
        keep = int(np.searchsorted(cumulative, target_px2))
        if keep < n:  # keep the grain that crosses the target with a chance that makes the mean right
            before = float(cumulative[keep - 1]) if keep else total
            keep += int(rng.random() * (cumulative[keep] - before) < target_px2 - before)
            total = target_px2
        else:
            total = float(cumulative[-1])
        parts.append(_take(batch, slice(0, keep)))
    return Grains.concatenate(parts)


def _take(grains: Grains, index: slice | np.ndarray) -> Grains:
    return Grains(**{name: getattr(grains, name)[index] for name in Grains.__dataclass_fields__})


def _draw_field(rng: np.random.Generator) -> dict[str, Any]:
    """The fabric parameters of one field."""
    style = str(rng.choice(list(STYLES), p=_STYLE_WEIGHTS))
    groundmass_dominated = bool(rng.random() < 0.25)
    shares = np.array(STYLES[style]) * rng.lognormal(0.0, 0.25, len(ROLES))
    shares /= shares.sum()
    aspect_low = float(rng.uniform(1.5, 3.0))
    return {
        "style": style,
        "groundmass_dominated": groundmass_dominated,
        "crystal_cover": float(rng.uniform(0.05, 0.35) if groundmass_dominated else rng.uniform(0.45, 0.95)),
        "modal_shares": dict(zip(ROLES, shares.round(4).tolist())),
        "size_scale_um": float(log_uniform(rng, (25.0, 150.0))),
        "plagioclase_aspect": (aspect_low, float(rng.uniform(max(4.0, aspect_low + 1.0), 20.0))),
        "prism_share": float(rng.uniform(0.2, 0.8)),
        "oikocryst_share": float(rng.uniform(0.0, 0.5)),
        "chadacryst_fill": float(rng.uniform(0.1, 0.35)),
        "embayed_share": float(rng.uniform(0.0, 0.6)),
        "oxide_variety_shares": dict(zip(OXIDE_VARIETIES, rng.dirichlet((5.0, 1.0, 1.0)).round(4).tolist())),
        "glomerocryst_share": float(rng.uniform(0.0, 0.5)),
        "density_contrast": float(rng.uniform(0.0, 0.8)),
    }


def _ball_density(field: dict[str, Any]) -> dict[str, float]:
    """Ball area per field area of each phase such that, grown in crystallisation order, each
    covers its modal share of the crystal cover (Boolean model: a later phase only gains the
    area the earlier ones left free)."""
    covered, density = 0.0, {}
    for role in _SEQUENCE:
        after = covered + field["crystal_cover"] * field["modal_shares"][role]
        density[role] = float(np.log((1.0 - covered) / (1.0 - after)))
        covered = after
    return density


def _variety_targets(field: dict[str, Any], area_px2: float) -> dict[str, float]:
    """Ball area (px²) to draw per variety."""
    phase = {role: d * area_px2 for role, d in _ball_density(field).items()}
    cpx, olivine = phase["Clinopyroxene"], phase["Olivine"]
    oxide = {v: phase["Fe-Ti oxide"] * s for v, s in field["oxide_variety_shares"].items()}
    return {
        "lath": phase["Plagioclase"],
        "oikocryst": cpx * field["oikocryst_share"],
        "prism": cpx * (1.0 - field["oikocryst_share"]) * field["prism_share"],
        "granular": cpx * (1.0 - field["oikocryst_share"]) * (1.0 - field["prism_share"]),
        "rounded": olivine * (1.0 - field["embayed_share"]),
        "embayed": olivine * field["embayed_share"],
        **oxide,
    }


def _place(
    rng: np.random.Generator, n: int, box: tuple[float, float, float, float], density: WaveField, contrast: float
) -> np.ndarray:
    """``n`` centres in ``box`` (r0, c0, r1, c1), thinned where the density field is low."""
    out: np.ndarray = np.zeros((0, 2))
    while len(out) < n:
        points = rng.uniform(box[:2], box[2:], (2 * (n - len(out)) + 8, 2))
        keep = rng.random(len(points)) < (1.0 + contrast * density.at(points[:, 0], points[:, 1])) / (1.0 + contrast)
        out = np.vstack((out, points[keep]))
    return out[:n]


def _glomerocrysts(rng: np.random.Generator, grains: Grains, members: np.ndarray) -> None:
    """Gather ``members`` in clusters of 3-8 grains around the first one, close enough to touch."""
    order = rng.permutation(members)
    start = 0
    while start < len(order):
        cluster = order[start : start + int(rng.integers(3, 9))]
        spread = 0.6 * float(np.mean(grains.half_length[cluster]))
        grains.row[cluster[1:]] = grains.row[cluster[0]] + rng.normal(0.0, spread, len(cluster) - 1)
        grains.col[cluster[1:]] = grains.col[cluster[0]] + rng.normal(0.0, spread, len(cluster) - 1)
        start += len(cluster)


def _chadacrysts(
    rng: np.random.Generator, hosts: Grains, host_ids: np.ndarray, px: float, field: dict[str, Any]
) -> tuple[Grains, np.ndarray]:
    """Small early plagioclase laths in and across the oikocrysts' balls (ophitic / subophitic).

    Returns:
        (laths, host id of each).
    """
    mean_length_px = _MIN_LENGTH_UM["Plagioclase"] / px + 0.25 * hosts.half_length
    mean_area = mean_length_px**2 / float(np.sqrt(np.prod(field["plagioclase_aspect"])))
    counts = np.minimum(rng.poisson(field["chadacryst_fill"] * ball_area(hosts) / mean_area), 60)
    owner = np.repeat(np.arange(len(hosts)), counts)
    length_um = np.minimum(
        _MIN_LENGTH_UM["Plagioclase"] + rng.exponential(0.25 * hosts.half_length[owner] * px),
        1.2 * hosts.half_length[owner] * px,
    )
    laths = draw_habit(rng, "chadacryst", length_um / px, field)
    radius = np.sqrt(rng.random(len(laths))) * 0.95
    theta = rng.uniform(0.0, 2.0 * np.pi, len(laths))
    along, across = radius * np.cos(theta) * hosts.half_length[owner], radius * np.sin(theta) * hosts.half_width[owner]
    cos, sin = np.cos(hosts.angle[owner]), np.sin(hosts.angle[owner])
    laths.row = hosts.row[owner] + along * sin + across * cos
    laths.col = hosts.col[owner] + along * cos - across * sin
    return laths, host_ids[owner]


def draw_fabric(
    shape: tuple[int, int], pixel_size_um: float, rng: np.random.Generator
) -> tuple[Fabric, dict[str, Any]]:
    """Draw the crystal grains of one field (to be grown by :func:`tessellation.grow`).

    Returns:
        (fabric, drawn parameters).
    """
    field = _draw_field(rng)
    margin = 0.1 * min(shape)
    box = (-margin, -margin, shape[0] + margin, shape[1] + margin)
    area = (shape[0] + 2 * margin) * (shape[1] + 2 * margin)
    cap_um = 0.7 * min(shape) * pixel_size_um
    parts, roles, varieties = [], [], []
    for variety, target in _variety_targets(field, area).items():
        if target <= 0.0:
            continue
        g = _draw_variety(rng, variety, target, field["size_scale_um"], pixel_size_um, cap_um, field)
        parts.append(g)
        roles.append(np.full(len(g), HABITS[variety].role, np.int8))
        varieties += [variety] * len(g)
    grains = Grains.concatenate(parts)
    roles_arr = np.concatenate(roles) if roles else np.zeros(0, np.int8)
    density = WaveField(rng, 4, (0.5, 2.0), float(max(shape)))
    centres = _place(rng, len(grains), box, density, field["density_contrast"])
    grains.row, grains.col = centres[:, 0], centres[:, 1]
    kinds = np.array(varieties, dtype=str)
    silicate = np.flatnonzero((roles_arr != OXIDE) & (kinds != "oikocryst"))
    members = silicate[rng.random(len(silicate)) < field["glomerocryst_share"]]
    _glomerocrysts(rng, grains, members)
    oikocrysts = np.flatnonzero(kinds == "oikocryst")
    hosts = np.zeros(len(grains), np.int32)
    if len(oikocrysts):
        laths, host_ids = _chadacrysts(rng, _take(grains, oikocrysts), oikocrysts + 1, pixel_size_um, field)
        grains = Grains.concatenate([grains, laths])
        roles_arr = np.concatenate((roles_arr, np.full(len(laths), PLAG, np.int8)))
        varieties += ["chadacryst"] * len(laths)
        hosts = np.concatenate((hosts, host_ids.astype(np.int32)))
    field["grains_per_variety"] = {v: varieties.count(v) for v in HABITS}
    field["glomerocryst_members"] = int(len(members))
    return Fabric(grains, roles_arr, varieties, hosts), field
