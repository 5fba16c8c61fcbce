"""The ground-truth scene: phase, crystal-instance and noise-free eta maps.

Order of painting: groundmass texture over the whole canvas, then crystals (largest
first, with occasional clusters; oxides last, some as inclusions in mafic crystals),
then vesicles (only into groundmass), then epoxy-filled cracks. Cracks change the class
(Epoxy) and the signal, never the instance id: a cracked crystal stays one crystal.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.ndimage import distance_transform_edt
from scipy.special import erf

from label_config.catalogue import Catalogue, SolidSolution
from ml_backend.synthetic import shapes
from ml_backend.synthetic.config import SynthConfig
from ml_backend.synthetic.groundmass import GroundmassEtas, log_uniform, paint_groundmass
from ml_backend.synthetic.strokes import line_coverage

ZONINGS = ("normal", "reverse", "unzoned")
_ROLES = ("Epoxy", "Groundmass", "Plagioclase", "Clinopyroxene", "Olivine", "Fe-Ti oxide")
_ATTEMPTS = 8


@dataclass
class Crystal:
    """Ground truth of one crystal as drawn (before occlusion by later crystals)."""

    id: int
    class_index: int
    role: str
    zoning: str
    variable: str
    core: float
    rim: float
    diameter_um: float
    population: str
    host_id: int = 0


@dataclass
class Scene:
    """Label maps and the noise-free backscatter-coefficient map of one section."""

    classes: np.ndarray
    instances: np.ndarray
    eta: np.ndarray
    crystals: list[Crystal]
    realised: dict[str, float]


@lru_cache(maxsize=32)
def _eta_table(solution: SolidSolution) -> tuple[np.ndarray, np.ndarray]:
    grid = np.linspace(0.0, 100.0, 201)
    return grid, np.array([solution.eta_at(v) for v in grid])


def role_indices(catalogue: Catalogue) -> dict[str, int]:
    """Catalogue index of each phase the generator draws (missing crystal phases are skipped).

    Raises:
        ValueError: when the catalogue lacks Epoxy or Groundmass (or a synonym).
    """
    found = {role: catalogue.index_of(role) for role in _ROLES}
    missing = [r for r in ("Epoxy", "Groundmass") if found[r] is None]
    if missing:
        raise ValueError(f"catalogue {catalogue.name!r} lacks {', '.join(missing)}; the synthetic generator needs them")
    return {role: index for role, index in found.items() if index is not None}


class _Painter:
    """Places and paints crystals, vesicles and cracks onto the canvases."""

    def __init__(self, shape, pixel_size_um, config: SynthConfig, catalogue: Catalogue, roles: dict[str, int]):
        self.shape = shape
        self.px = pixel_size_um
        self.config = config
        self.catalogue = catalogue
        self.roles = roles
        self.classes = np.full(shape, roles["Groundmass"], np.uint8)
        self.instances = np.zeros(shape, np.int32)
        self.crystals: list[Crystal] = []
        self.footprints: dict[int, shapes.Footprint] = {}
        self.eta: np.ndarray | None = None
        self.painted: dict[str, int] = {}  # visible px painted per phase (before later overlaps)

    def mineral_eta(self, role: str) -> float:
        return self.catalogue.classes[self.roles[role]].eta

    def population(self, diameter_um: float) -> str:
        if diameter_um >= self.config.phenocryst_min_um:
            return "phenocryst"
        return "microphenocryst" if diameter_um >= self.config.microphenocryst_min_um else "microlite"

    # --- placement -----------------------------------------------------------------
    def _candidate_centre(self, rng: np.random.Generator, radius: float, cluster: bool) -> tuple[float, float]:
        if cluster and self.footprints:
            other = self.footprints[int(rng.choice(list(self.footprints)))]
            oh, ow = other.mask.shape
            centre = np.array((other.row + oh / 2, other.col + ow / 2))
            direction = rng.uniform(0, 2 * np.pi)
            dist = (radius + max(oh, ow) / 2) * rng.uniform(0.5, 0.9)
            return tuple(centre + dist * np.array((np.sin(direction), np.cos(direction))))
        return tuple(rng.uniform((0.0, 0.0), self.shape))

    def place(
        self, rng: np.random.Generator, outline: np.ndarray, inclusion: bool = False
    ) -> tuple[shapes.Footprint, int] | None:
        """Find a position with little overlap; returns the footprint and host id (inclusions)."""
        radius = float(np.abs(outline).max())
        base = shapes.rasterise(outline, (0.0, 0.0))
        for _ in range(_ATTEMPTS):
            if inclusion:
                host = int(rng.choice([c.id for c in self.crystals if c.role in ("Olivine", "Clinopyroxene")]))
                hf = self.footprints[host]
                rr, cc = np.nonzero(hf.mask)
                k = int(rng.integers(len(rr)))
                centre = (hf.row + rr[k], hf.col + cc[k])
            else:
                host = 0
                centre = self._candidate_centre(rng, radius, rng.random() < self.config.cluster_probability)
            fp = shapes.Footprint(base.mask, base.row + int(round(centre[0])), base.col + int(round(centre[1])))
            window = fp.clipped(self.shape)
            if window is None:
                continue
            canvas, local = window
            visible = fp.mask[local]
            n_visible = int(visible.sum())
            if n_visible == 0:
                continue
            if inclusion:
                if np.all(self.instances[canvas][visible] == host):
                    return fp, host
                continue
            overlap = int(np.count_nonzero(self.instances[canvas][visible]))
            if overlap <= self.config.max_overlap * n_visible:
                return fp, 0
        return None

    def paint_crystal(self, fp: shapes.Footprint, role: str, values: np.ndarray, crystal: Crystal) -> None:
        window = fp.clipped(self.shape)
        assert window is not None  # place() returns only footprints that reach into the canvas
        canvas, local = window
        assert self.eta is not None  # build_scene paints the groundmass (eta) first
        visible = fp.mask[local]
        self.painted[role] = self.painted.get(role, 0) + int(visible.sum())
        self.classes[canvas][visible] = self.roles[role]
        self.instances[canvas][visible] = crystal.id
        self.eta[canvas][visible] = values[local][visible]
        self.crystals.append(crystal)
        self.footprints[crystal.id] = fp

    # --- zoning --------------------------------------------------------------------
    def zoned_values(self, fp: shapes.Footprint, solution: SolidSolution, core: float, rim: float, width_um: float):
        """Composition from rim to core (error-function profile in depth), as eta, and the true core."""
        depth_um = (distance_transform_edt(fp.mask) - 0.5) * self.px
        profile = erf(np.maximum(depth_um, 0.0) / max(width_um, 1e-6))
        composition = rim + (core - rim) * profile
        grid, table = _eta_table(solution)
        values = np.interp(composition, grid, table).astype(np.float32)
        true_core = rim + (core - rim) * float(profile.max())
        return values, true_core

    def draw_composition(self, rng: np.random.Generator, role: str) -> tuple[str, float, float]:
        """(zoning, core, rim) for olivine (Fo) or plagioclase (An)."""
        c = self.config
        solution = self.catalogue.classes[self.roles[role]].solid_solution
        assert solution is not None  # add_crystals draws compositions only for phases with a solid solution
        lo, hi = solution.range
        if role == "Olivine":
            zoning = ZONINGS[rng.choice(3, p=np.array(c.olivine_zoning_weights) / sum(c.olivine_zoning_weights))]
            delta = rng.uniform(*c.olivine_zoning_delta_fo)
            if zoning == "normal":
                core = rng.uniform(*c.olivine_core_fo_normal)
                rim = core - delta
            elif zoning == "reverse":
                core = rng.uniform(*c.olivine_core_fo_reverse)
                rim = core + delta
            else:
                core = rim = rng.uniform(*c.olivine_fo_unzoned)
        else:
            zoning = ZONINGS[
                rng.choice(3, p=np.array(c.plagioclase_zoning_weights) / sum(c.plagioclase_zoning_weights))
            ]
            core = rng.uniform(*c.plagioclase_core_an)
            delta = rng.uniform(*c.plagioclase_zoning_delta_an)
            rim = core - delta if zoning == "normal" else core + delta if zoning == "reverse" else core
        return zoning, float(np.clip(core, lo, hi)), float(np.clip(rim, lo, hi))

    # --- crystals ------------------------------------------------------------------
    def _sizes(
        self, rng: np.random.Generator, role: str, target_um2: float, bounds: tuple[float, float]
    ) -> list[float]:
        """Log-uniform sizes (µm) whose areas add up to the target; none overshoots it by much."""
        per_d2 = 0.2 if role == "Plagioclase" else np.pi / 4.0  # area / size^2 (laths: aspect ~5)
        sizes, total = [], 0.0
        while total < target_um2:
            cap = np.sqrt(1.5 * (target_um2 - total) / per_d2)
            d = float(log_uniform(rng, (bounds[0], min(bounds[1], cap)))) if cap > bounds[0] else bounds[0]
            sizes.append(d)
            total += per_d2 * d * d
        return sizes

    def add_crystals(self, rng: np.random.Generator) -> None:
        """Draw each phase's modal abundance, place the crystals (biggest first, oxides last)
        and top up phases that border clipping and overlap left short."""
        c = self.config
        field_um = min(self.shape) * self.px * c.max_crystal_fraction_of_field
        specs = {
            "Olivine": (c.olivine_fraction, c.olivine_size_um),
            "Clinopyroxene": (c.clinopyroxene_fraction, c.clinopyroxene_size_um),
            "Plagioclase": (c.plagioclase_fraction, c.plagioclase_length_um),
            "Fe-Ti oxide": (c.oxide_fraction, c.oxide_size_um),
        }
        targets, bounds = {}, {}
        for role, (fraction, size) in specs.items():
            targets[role] = rng.uniform(*fraction) * self.shape[0] * self.shape[1] * self.px**2
            bounds[role] = (min(size[0], field_um), min(size[1], field_um))
        roles = [r for r in specs if r in self.roles and targets[r] > 0 and bounds[r][0] > 0]
        for top_up in (False, True):
            for group in ([r for r in roles if r != "Fe-Ti oxide"], [r for r in roles if r == "Fe-Ti oxide"]):
                plan = []
                for role in group:
                    missing = targets[role] - self.painted.get(role, 0) * self.px**2 if top_up else targets[role]
                    if missing > (0.1 * targets[role] if top_up else 0.0):
                        plan += [(role, d) for d in self._sizes(rng, role, missing, bounds[role])]
                for role, size_um in sorted(plan, key=lambda item: -item[1]):
                    self.add_crystal(rng, role, size_um)

    def add_crystal(self, rng: np.random.Generator, role: str, size_um: float) -> None:
        """Shape, place, zone and paint one crystal (skipped when no place is found)."""
        c = self.config
        d_px = size_um / self.px
        if role == "Olivine":
            outline = shapes.olivine_outline(rng, d_px, rng.uniform(*c.olivine_aspect), int(rng.choice((0, 1, 1, 2))))
        elif role == "Clinopyroxene":
            outline = shapes.prism_outline(rng, d_px, rng.uniform(*c.clinopyroxene_aspect))
        elif role == "Plagioclase":
            outline = shapes.lath_outline(rng, d_px, rng.uniform(*c.plagioclase_aspect))
        else:
            outline = shapes.oxide_outline(rng, d_px)
        inclusion = (
            role == "Fe-Ti oxide"
            and rng.random() < c.oxide_inclusion_probability
            and any(k.role in ("Olivine", "Clinopyroxene") for k in self.crystals)
        )
        placed = self.place(rng, outline, inclusion)
        if placed is None:
            return
        fp, host = placed
        diameter_um = float(np.sqrt(4.0 * fp.mask.sum() / np.pi) * self.px)
        crystal = Crystal(len(self.crystals) + 1, self.roles[role], role, "unzoned", "", np.nan, np.nan, diameter_um,
                          self.population(diameter_um), host)  # fmt: skip
        solution = self.catalogue.classes[self.roles[role]].solid_solution
        if role in ("Olivine", "Plagioclase") and solution is not None:
            zoning, core, rim = self.draw_composition(rng, role)
            values, true_core = self.zoned_values(fp, solution, core, rim, rng.uniform(*c.zoning_width_um))
            crystal.zoning, crystal.variable, crystal.core, crystal.rim = zoning, solution.variable, true_core, rim
        else:
            eta = self.mineral_eta(role)
            if role == "Clinopyroxene":
                eta *= 1.0 + float(np.clip(rng.normal(0.0, c.clinopyroxene_eta_jitter), -0.05, 0.05))
            values = np.full(fp.mask.shape, eta, np.float32)
        self.paint_crystal(fp, role, values, crystal)

    # --- vesicles and cracks -------------------------------------------------------
    def add_vesicles(self, rng: np.random.Generator) -> None:
        """Epoxy-filled vesicles in the groundmass; they may touch crystals but rarely cover them."""
        c = self.config
        target = rng.uniform(*c.vesicle_fraction) * self.shape[0] * self.shape[1]
        bounds = tuple(min(s / self.px, min(self.shape) * c.max_crystal_fraction_of_field) for s in c.vesicle_size_um)
        total = 0.0
        epoxy, groundmass = self.roles["Epoxy"], self.roles["Groundmass"]
        eta_epoxy = self.mineral_eta("Epoxy")
        while total < target and bounds[1] > 0:
            cap = np.sqrt(1.5 * (target - total) * 4.0 / np.pi)
            d = float(log_uniform(rng, (bounds[0], min(bounds[1], cap)))) if cap > bounds[0] else bounds[0]
            total += np.pi * d * d / 4.0
            outline = shapes.blob_outline(rng, d, rng.uniform(0.0, 0.35))
            base = shapes.rasterise(outline, (0.0, 0.0))
            # crystals may reach into a vesicle's margin, never float in its middle
            core = shapes.rasterise(0.75 * outline, (0.0, 0.0))
            for _ in range(_ATTEMPTS):
                centre = rng.uniform((0.0, 0.0), self.shape)
                fp = shapes.Footprint(base.mask, base.row + int(centre[0]), base.col + int(centre[1]))
                window = fp.clipped(self.shape)
                if window is None:
                    continue
                canvas, local = window
                inside = fp.mask[local]
                middle = shapes.Footprint(core.mask, core.row + int(centre[0]), core.col + int(centre[1])).clipped(
                    self.shape
                )
                if middle is not None and np.count_nonzero(self.instances[middle[0]][core.mask[middle[1]]]):
                    continue
                if np.count_nonzero(self.instances[canvas][inside]) <= 0.15 * max(int(inside.sum()), 1):
                    hit = inside & (self.classes[canvas] == groundmass)
                    assert self.eta is not None  # build_scene paints the groundmass (eta) first
                    self.classes[canvas][hit] = epoxy
                    self.eta[canvas][hit] = eta_epoxy
                    break

    def add_cracks(self, rng: np.random.Generator) -> int:
        """Draw cracks inside crystals and across the section; returns how many were drawn."""
        c = self.config
        parts: list[tuple[np.ndarray, np.ndarray]] = []
        flat_instances = self.instances.ravel()
        for crystal in self.crystals:
            rate = c.olivine_cracks_per_mm if crystal.role == "Olivine" else c.other_cracks_per_mm
            n = rng.poisson(rng.uniform(*rate) * crystal.diameter_um / 1000.0)
            fp = self.footprints[crystal.id]
            rr, cc = np.nonzero(fp.mask)
            d_px = crystal.diameter_um / self.px
            for _ in range(n):
                k = int(rng.integers(len(rr)))
                anchor = np.array((fp.row + rr[k], fp.col + cc[k]), float)
                flat, cover = self._crack(rng, anchor, d_px * rng.uniform(0.6, 1.5), 3)
                keep = flat_instances[flat] == crystal.id
                parts.append((flat[keep], cover[keep]))
        n_section = int(min(np.floor(rng.uniform(c.section_cracks[0], c.section_cracks[1] + 1)), c.section_cracks[1]))
        for _ in range(n_section):
            anchor = rng.uniform((0.0, 0.0), self.shape)
            parts.append(self._crack(rng, anchor, float(np.hypot(*self.shape)) * 2, 8))
        parts = [p for p in parts if len(p[0])]
        if not parts:
            return 0
        flat = np.concatenate([p[0] for p in parts])
        cover = np.concatenate([p[1] for p in parts])
        order = np.lexsort((cover, flat))
        flat, cover = flat[order], cover[order]
        last = np.r_[flat[1:] != flat[:-1], True]
        flat, cover = flat[last], cover[last]
        assert self.eta is not None  # build_scene paints the groundmass (eta) first
        eta = self.eta.ravel()
        eta[flat] = eta[flat] * (1.0 - cover) + self.mineral_eta("Epoxy") * cover
        self.classes.ravel()[flat[cover >= 0.5]] = self.roles["Epoxy"]
        return len(parts)

    def _crack(self, rng: np.random.Generator, anchor: np.ndarray, length: float, n_vertices: int):
        angle = rng.uniform(0, np.pi)
        direction = np.array((np.sin(angle), np.cos(angle)))
        normal = np.array((-direction[1], direction[0]))
        t = np.linspace(-0.5, 0.5, n_vertices + 1)[:, None] * length
        wiggle = rng.normal(0.0, 0.03 * length, (n_vertices + 1, 1))
        vertices = anchor + t * direction + wiggle * normal
        width = rng.uniform(*self.config.crack_width_um) / self.px
        return line_coverage(vertices, width, self.shape)


def build_scene(
    shape: tuple[int, int],
    pixel_size_um: float,
    config: SynthConfig,
    catalogue: Catalogue,
    rngs: dict[str, np.random.Generator],
) -> Scene:
    """Draw the ground truth of one section.

    Args:
        shape: (height, width) in px.
        pixel_size_um: Pixel size.
        config: Ranges to draw from.
        catalogue: Phases and their eta.
        rngs: Independent generators named 'crystals', 'vesicles', 'groundmass', 'cracks'.
    """
    roles = role_indices(catalogue)
    painter = _Painter(shape, pixel_size_um, config, catalogue, roles)

    def eta_of(role: str, fallback: str = "Groundmass") -> float:
        return catalogue.classes[roles.get(role, roles[fallback])].eta

    plag = catalogue.classes[roles["Plagioclase"]].solid_solution if "Plagioclase" in roles else None
    plag_eta = (
        plag.eta_at(float(rngs["groundmass"].uniform(plag.range[0], 0.5 * sum(plag.range))))
        if plag
        else eta_of("Plagioclase")
    )
    etas = GroundmassEtas(
        eta_of("Groundmass"), plag_eta, eta_of("Clinopyroxene"), eta_of("Fe-Ti oxide"), eta_of("Epoxy")
    )
    painter.eta, realised = paint_groundmass(shape, pixel_size_um, etas, config, rngs["groundmass"])
    painter.add_crystals(rngs["crystals"])
    painter.add_vesicles(rngs["vesicles"])
    realised["cracks"] = float(painter.add_cracks(rngs["cracks"]))
    return Scene(painter.classes, painter.instances, painter.eta, painter.crystals, realised)
