"""Basaltic glass and its quench textures.

The glass ranges from featureless (faint schlieren only) to quench-crystallised: skeletal
and dendritic microlites (swallowtail and hollow plagioclase, feathery clinopyroxene
dendrites, H-shaped olivine, oxide crosses), feathery spherulites and bow-ties, and
variolitic fans of radiating plagioclase fibres. All of it is class Groundmass.

Features are sized in micrometres, so at 0.1 µm/px a microlite is a shape and at 1.5 µm/px
it is a sub-pixel streak: a segment narrower than a pixel is drawn one pixel wide with its
contrast scaled by its width (the area it covers).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from ml_backend.synthetic.groundmass import log_uniform
from ml_backend.synthetic.strokes import lath_pixels

_MICROLITES = {"smooth": (0.0, 0.03), "quench": (0.05, 0.35), "spherulitic": (0.0, 0.12), "variolitic": (0.0, 0.10)}
_SPHERULITES = {"smooth": (0.0, 0.0), "quench": (0.0, 0.1), "spherulitic": (0.2, 0.8), "variolitic": (0.3, 0.9)}
_PILOT = 64
_MAX_OBJECTS = 200_000


@dataclass(frozen=True)
class QuenchEtas:
    """Eta of the glass and of the phases that quench out of it in this field."""

    glass: float
    plagioclase: float
    pyroxene: float
    olivine: float
    oxide: float


@dataclass
class Segments:
    """Straight segments (rotated rectangles) to draw, with the eta each one carries."""

    centres: np.ndarray
    angles: np.ndarray
    lengths: np.ndarray
    widths: np.ndarray
    eta: np.ndarray

    @classmethod
    def concat(cls, parts: list[Segments]) -> Segments:
        """All parts in one set (drawn in order: later parts cover earlier ones)."""
        return cls(
            *(np.concatenate([getattr(p, k) for p in parts]) for k in ("centres", "angles", "lengths", "widths", "eta"))
        )

    def area(self) -> float:
        """Pixels the segments cover (overlaps counted twice)."""
        return float(np.sum(self.lengths * np.maximum(self.widths, 1.0)))


def _unit(angles: np.ndarray) -> np.ndarray:
    return np.column_stack((np.sin(angles), np.cos(angles)))


def segments_from(
    starts: np.ndarray, angles: np.ndarray, lengths: np.ndarray, widths: np.ndarray, eta: float
) -> Segments:
    """Segments given by their start point, direction and length."""
    centres = starts + _unit(angles) * (lengths / 2)[:, None]
    return Segments(centres, angles, lengths, widths, np.full(len(angles), eta))


def branched(
    stems: Segments, rng: np.random.Generator, per_side: int, angle: float, ratio: float, both_sides: bool = True
) -> Segments:
    """Stems with side branches (dendrites, feathery fibres): ``per_side`` branches per side
    at ``angle`` to the stem, shortening towards its tip (``ratio`` x stem length at the base)."""
    if per_side == 0 or not len(stems.angles):
        return stems
    n = len(stems.angles)
    t = (np.arange(per_side) + 0.5 + rng.uniform(-0.3, 0.3, (n, per_side))) / per_side
    starts = (
        stems.centres[:, None, :] + _unit(stems.angles)[:, None, :] * ((t - 0.5) * stems.lengths[:, None])[..., None]
    )
    sides = (1.0, -1.0) if both_sides else (1.0,)
    parts = [stems]
    for side in sides:
        angles = stems.angles[:, None] + side * angle + rng.normal(0.0, 0.1, (n, per_side))
        lengths = ratio * stems.lengths[:, None] * (1.05 - t) * rng.uniform(0.6, 1.2, (n, per_side))
        widths = np.repeat(0.6 * stems.widths[:, None], per_side, axis=1)
        part = segments_from(starts.reshape(-1, 2), angles.ravel(), lengths.ravel(), widths.ravel(), 0.0)
        part.eta = np.repeat(stems.eta, per_side)
        parts.append(part)
    return Segments.concat(parts)


def _plagioclase(rng: np.random.Generator, n: int, shape: tuple[int, int], um: float, etas: QuenchEtas,
                 flow: float, kappa: float) -> Segments:  # fmt: skip
    """Laths, a share with swallowtail prongs at both ends, a share hollow (two parallel walls)."""
    lengths = log_uniform(rng, (3.0 * um, 40.0 * um), n)
    widths = np.maximum(lengths / rng.uniform(4.0, 15.0, n), 0.2 * um)
    centres = rng.uniform((0.0, 0.0), shape, (n, 2))
    angles = rng.vonmises(flow, kappa, n) if kappa > 0 else rng.uniform(0, np.pi, n)
    kind = rng.choice(3, n, p=(0.5, 0.3, 0.2))  # plain, swallowtail, hollow
    solid, fork, hollow = (np.flatnonzero(kind == k) for k in range(3))
    parts = [
        Segments(centres[solid], angles[solid], lengths[solid], widths[solid], np.full(len(solid), etas.plagioclase))
    ]
    for end in (-1.0, 1.0):
        tip = centres[fork] + end * _unit(angles[fork]) * (lengths[fork] / 2)[:, None]
        for side in (-1.0, 1.0):
            prong = angles[fork] + side * rng.uniform(0.2, 0.45, len(fork)) + (np.pi if end < 0 else 0.0)
            parts.append(segments_from(tip, prong, 0.25 * lengths[fork], 0.5 * widths[fork], etas.plagioclase))
    for side in (-1.0, 1.0):
        shift = side * _unit(angles[hollow] + np.pi / 2) * (0.6 * widths[hollow])[:, None]
        parts.append(Segments(centres[hollow] + shift, angles[hollow], lengths[hollow], 0.35 * widths[hollow],
                              np.full(len(hollow), etas.plagioclase)))  # fmt: skip
    return Segments.concat(parts)


def _dendrites(rng: np.random.Generator, n: int, shape: tuple[int, int], eta: float, length_px: tuple[float, float],
               width_px: tuple[float, float], branching: tuple[int, float, float]) -> Segments:  # fmt: skip
    """Stems with (branches per side, branch angle, branch length ratio) side branches."""
    stems = Segments(
        rng.uniform((0.0, 0.0), shape, (n, 2)), rng.uniform(0, np.pi, n), log_uniform(rng, length_px, n),
        rng.uniform(*width_px, n), np.full(n, eta),
    )  # fmt: skip
    return branched(stems, rng, *branching)


def _pyroxene(rng: np.random.Generator, n: int, shape: tuple[int, int], um: float, etas: QuenchEtas,
              flow: float, kappa: float) -> Segments:  # fmt: skip
    """Feathery clinopyroxene dendrites: stems with branches at 50-70 degrees."""
    branching = (int(rng.integers(2, 7)), float(rng.uniform(0.9, 1.2)), float(rng.uniform(0.2, 0.5)))
    return _dendrites(rng, n, shape, etas.pyroxene, (4.0 * um, 40.0 * um), (0.3 * um, 1.5 * um), branching)


def _olivine(rng: np.random.Generator, n: int, shape: tuple[int, int], um: float, etas: QuenchEtas,
             flow: float, kappa: float) -> Segments:  # fmt: skip
    """H-shaped (chain / swallowtail) olivine: two parallel walls and a cross bar."""
    lengths = log_uniform(rng, (5.0 * um, 30.0 * um), n)
    centres = rng.uniform((0.0, 0.0), shape, (n, 2))
    angles = rng.uniform(0, np.pi, n)
    gap = lengths * rng.uniform(0.2, 0.4, n)
    widths = np.maximum(gap * rng.uniform(0.2, 0.4, n), 0.3 * um)
    normal = _unit(angles + np.pi / 2)
    eta = np.full(n, etas.olivine)
    walls = [Segments(centres + s * normal * (gap / 2)[:, None], angles, lengths, widths, eta) for s in (-1.0, 1.0)]
    return Segments.concat([*walls, Segments(centres, angles + np.pi / 2, gap, widths, eta)])


def _oxide(rng: np.random.Generator, n: int, shape: tuple[int, int], um: float, etas: QuenchEtas,
           flow: float, kappa: float) -> Segments:  # fmt: skip
    """Oxide crosses and right-angled dendrites."""
    branching = (int(rng.integers(1, 4)), np.pi / 2, 0.8)
    return _dendrites(rng, n, shape, etas.oxide, (1.0 * um, 8.0 * um), (0.3 * um, 1.0 * um), branching)


_SPECIES: dict[str, Callable[..., Segments]] = {
    "plagioclase": _plagioclase, "pyroxene": _pyroxene, "olivine": _olivine, "oxide": _oxide,
}  # fmt: skip
_SPECIES_ALPHA = (3.0, 2.0, 1.0, 0.4)


def microlites(rng: np.random.Generator, shape: tuple[int, int], um: float, fraction: float, etas: QuenchEtas,
               flow: float, kappa: float) -> tuple[Segments | None, dict[str, float]]:  # fmt: skip
    """Quench microlites of all species covering about ``fraction`` of the canvas.

    Returns:
        (segments, the share of the covered area drawn for each species).
    """
    shares = rng.dirichlet(_SPECIES_ALPHA)
    parts, realised = [], {}
    for (name, species), share in zip(_SPECIES.items(), shares):
        pilot = species(rng, _PILOT, shape, um, etas, flow, kappa)
        n = int(min(np.ceil(fraction * share * shape[0] * shape[1] * _PILOT / max(pilot.area(), 1.0)), _MAX_OBJECTS))
        realised[f"microlite_share_{name}"] = float(share)
        if n:
            parts.append(species(rng, n, shape, um, etas, flow, kappa))
    return (Segments.concat(parts) if parts else None), realised


def spherulites(rng: np.random.Generator, shape: tuple[int, int], um: float, cover: float, texture: str,
                etas: QuenchEtas) -> tuple[np.ndarray, Segments | None, dict[str, float | str]]:  # fmt: skip
    """Spherulites (full discs and bow-ties, feathery fibres) or variolitic fans.

    Returns:
        (bool map of the devitrified regions, radiating fibres, realised parameters).
    """
    region = Image.new("1", (shape[1], shape[0]), 0)
    radii_um = (30.0, 400.0) if texture == "variolitic" else (10.0, 150.0)
    kind = "fan" if texture == "variolitic" else str(rng.choice(("full", "bowtie"), p=(0.7, 0.3)))
    lobe_span = 2 * np.pi if kind == "full" else float(rng.uniform(*{"bowtie": (0.5, 1.2), "fan": (0.7, 2.1)}[kind]))
    radii_px = log_uniform(rng, (radii_um[0] * um, radii_um[1] * um), _PILOT)
    span = lobe_span * (2 if kind == "bowtie" else 1)
    n = int(min(np.ceil(cover * shape[0] * shape[1] / np.mean(radii_px**2 * span / 2)), 400)) if cover > 0 else 0
    realised: dict[str, float | str] = {
        "spherulite_count": float(n),
        "spherulite_kind": kind,
        "spherulite_span_rad": float(span),
    }
    if n == 0:
        return np.zeros(shape, bool), None, realised
    radii = log_uniform(rng, (radii_um[0] * um, radii_um[1] * um), n)
    centres = rng.uniform((0.0, 0.0), shape, (n, 2))
    heading = rng.uniform(0, 2 * np.pi, n)
    pen = ImageDraw.Draw(region)
    lobes = (0.0, np.pi) if kind == "bowtie" else (0.0,)
    for (row, col), radius, head in zip(centres, radii, heading):
        box = [col - radius, row - radius, col + radius, row + radius]
        if kind == "full":
            pen.ellipse(box, fill=1)
        for lobe in lobes if kind != "full" else ():
            mid = np.degrees(head + lobe)
            pen.pieslice(box, mid - np.degrees(lobe_span) / 2, mid + np.degrees(lobe_span) / 2, fill=1)
    spacing = rng.uniform(1.0, 4.0) * um
    width = rng.uniform(0.3, 1.0) * um if texture != "variolitic" else rng.uniform(0.6, 2.0) * um
    count = np.maximum((radii * span / spacing).astype(np.int64), 4)
    owner = np.repeat(np.arange(n), count)
    fibre_lobe = rng.integers(0, len(lobes), len(owner)) if kind == "bowtie" else np.zeros(len(owner), int)
    offset = rng.uniform(-0.5, 0.5, len(owner)) * lobe_span
    angles = heading[owner] + np.asarray(lobes)[fibre_lobe] + offset
    r0 = radii[owner] * rng.uniform(0.0, 0.9, len(owner))
    r1 = radii[owner] * rng.uniform(0.85, 1.0, len(owner))
    starts = centres[owner] + _unit(angles) * r0[:, None]
    fibres = segments_from(starts, angles, np.maximum(r1 - r0, 1.0), np.full(len(owner), width), etas.plagioclase)
    if texture == "spherulitic" and rng.random() < 0.5:
        fibres = branched(fibres, rng, 2, float(rng.uniform(0.3, 0.6)), 0.3, both_sides=False)
    realised.update({"fibre_spacing_px": float(spacing), "fibre_width_px": float(width)})
    return np.array(region, dtype=bool), fibres, realised


def schlieren(shape: tuple[int, int], um: float, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, float | str]]:
    """Zero-mean, unit-sd smooth field elongated along a flow direction (glass schlieren).

    Drawn and rotated at a resolution of about 4 px per schlieren width, then resized to
    the canvas (rotating a full-size 1024 px field took 60 ms).
    """
    cell = max(float(rng.uniform(5.0, 60.0)) * um, 4.0)
    stretch = float(rng.uniform(1.0, 6.0))
    angle = float(rng.uniform(0.0, 180.0))
    side = np.hypot(*shape) + 2
    coarse = max(cell / 4.0, 1.0)
    n = max(int(np.ceil(side / coarse)), 8)
    grid = rng.standard_normal((max(int(side / cell) + 3, 3), max(int(side / (cell * stretch)) + 3, 3))).astype(
        np.float32
    )
    small = Image.fromarray(grid).resize((n, n), Image.Resampling.BICUBIC).rotate(angle, Image.Resampling.BILINEAR)
    crop = (n - shape[1] / coarse) / 2, (n - shape[0] / coarse) / 2
    big = small.resize(shape[::-1], Image.Resampling.BILINEAR, box=(crop[0], crop[1], n - crop[0], n - crop[1]))
    field = np.asarray(big)
    field = (field - field.mean()) / max(float(field.std()), 1e-6)
    return field.astype(np.float32), {
        "schlieren_scale_px": cell,
        "schlieren_stretch": stretch,
        "schlieren_angle_deg": angle,
    }


def paint_segments(eta: np.ndarray, segments: Segments) -> np.ndarray:
    """Paint segments onto ``eta`` in place, blending sub-pixel widths; returns the flat pixels drawn."""
    flat, owner = lath_pixels(segments.centres, segments.angles, segments.lengths, segments.widths, eta.shape)
    values = eta.ravel()
    cover = np.minimum(segments.widths, 1.0)[owner].astype(np.float32)
    values[flat] = values[flat] + (segments.eta[owner].astype(np.float32) - values[flat]) * cover
    return flat


def paint_groundmass(shape: tuple[int, int], pixel_size_um: float, texture: str, etas: QuenchEtas,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, dict[str, float | str]]:  # fmt: skip
    """The groundmass eta over the whole canvas, and the plain glass under it.

    Args:
        shape: Canvas (height, width).
        pixel_size_um: Pixel size.
        texture: One of ``field.TEXTURES``.
        etas: Glass and quench-phase eta of this field.
        rng: The groundmass random stream.

    Returns:
        (textured eta, glass eta (for melt inclusions in crystals), realised parameters).
    """
    um = 1.0 / pixel_size_um
    noise, realised = schlieren(shape, um, rng)
    amplitude = float(rng.uniform(0.002, 0.012))
    glass = etas.glass * (1.0 + amplitude * noise)
    eta = glass.copy()
    cover = float(rng.uniform(*_SPHERULITES[texture]))
    region, fibres, spherulite_params = spherulites(rng, shape, um, cover, texture, etas)
    devitrified = float(rng.uniform(-0.03, 0.03))
    eta[region] *= 1.0 + devitrified
    fraction = float(rng.uniform(*_MICROLITES[texture]))
    flow, kappa = float(rng.uniform(0, np.pi)), float(rng.uniform(0.0, 3.0))
    segments, species = microlites(rng, shape, um, fraction, etas, flow, kappa)
    touched = np.zeros(eta.size, bool)
    for part in (fibres, segments):
        if part is not None:
            touched[paint_segments(eta, part)] = True
    realised.update(spherulite_params)
    realised.update(species)
    realised.update({
        "glass_eta": etas.glass, "schlieren_amplitude": amplitude, "spherulite_cover_target": cover,
        "spherulite_share": float(region.mean()), "devitrified_offset": devitrified, "microlite_fraction_target": fraction,
        "microlite_flow_rad": flow, "microlite_alignment_kappa": kappa, "textured_share": float(touched.mean()),
    })  # fmt: skip
    return eta, glass, realised
