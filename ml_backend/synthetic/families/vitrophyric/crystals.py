"""Crystals: a modal plan, placement (free, or as glomerocrysts of touching grains), painting.

Crystals are drawn largest first. A crystal only takes pixels no earlier crystal claimed,
so a glomerocryst member placed overlapping its neighbours ends exactly at their faces:
touching grains, no groundmass gap, one instance id each. Glass inside a crystal's outline
(hollow cores, notches, embayments, sieve blobs) is groundmass: class Groundmass,
instance 0, the eta of the plain glass. Oxides may sit inside olivine or clinopyroxene
(``host_id``). Sizes are in micrometres, so a 0.1 µm/px field shows a piece of one crystal
in glass and a 1.5 µm/px field shows many.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw
from scipy.ndimage import distance_transform_edt, label

from label_config.catalogue import Catalogue, SolidSolution
from ml_backend.synthetic.config import SynthConfig
from ml_backend.synthetic.families.vitrophyric import habits
from ml_backend.synthetic.families.vitrophyric.canvas import Canvas, Placed, fill, window
from ml_backend.synthetic.families.vitrophyric.field import CRYSTAL_ROLES, Field
from ml_backend.synthetic.families.vitrophyric.habits import Habit
from ml_backend.synthetic.families.vitrophyric.interior import (
    COMPOSITION_ROLES,
    Interior,
    composition,
    draw_interior,
    interior_eta,
)
from ml_backend.synthetic.groundmass import log_uniform
from ml_backend.synthetic.scene import Crystal

#: Equivalent-diameter range per role, µm (silicates from the microphenocryst threshold up).
SIZES_UM = {
    "Olivine": (30.0, 1200.0),
    "Plagioclase": (30.0, 900.0),
    "Clinopyroxene": (30.0, 800.0),
    "Fe-Ti oxide": (3.0, 120.0),
}
MIN_GROUNDMASS = 0.2  # share of the field crystals leave to groundmass (vesicles take part of it)
_MAX_CRYSTALS = 800
_ATTEMPTS = 8
_MAX_OVERLAP = 0.12  # of a free crystal's visible outline
_DEPTH_MARGIN = 96  # px beyond the canvas over which zoning depth is measured
_INCLUSION_PROBABILITY = 0.2
_MAX_SKELETAL_OXIDE_UM = 50.0


@dataclass
class _Item:
    role: str
    diameter_um: float
    clustered: bool = False  # a grain of a glomerocryst
    inclusion: bool = False


class _Painter:
    """Places and paints the crystals of one field."""

    def __init__(self, canvas: Canvas, fld: Field, catalogue: Catalogue, roles: dict[str, int]) -> None:
        self.canvas = canvas
        self.field = fld
        self.catalogue = catalogue
        self.roles = roles
        h, w = canvas.shape
        self.targets = {role: fld.fractions[role] * h * w for role in CRYSTAL_ROLES if role in roles}
        self.max_claimed = (1.0 - MIN_GROUNDMASS) * h * w
        self.n_claimed = 0
        self.glomerocrysts = 0

    def plan(self, rng: np.random.Generator, top_up: bool) -> list[list[_Item]]:
        """Crystals to draw, as groups (a glomerocryst or a single crystal), largest first.

        The first plan may hold crystals far larger than the field (a piece of one shows);
        a top-up plan fills what placement left short with crystals that fit what is missing.
        """
        h, w = self.canvas.shape
        px = self.field.pixel_size_um
        items: list[_Item] = []
        for role, target in self.targets.items():
            missing = target - self.canvas.painted[role]
            if top_up and missing < 0.2 * target:
                continue
            lo, hi = SIZES_UM[role]
            hi = min(hi, 1.5 * min(h, w) * px, np.sqrt(8.0 * missing / np.pi) * px if top_up else np.inf)
            if hi < lo:  # smaller crystals would be groundmass microlites, not instances
                continue
            total = 0.0
            while total < 1.2 * missing and len(items) < _MAX_CRYSTALS:
                d_um = float(log_uniform(rng, (lo, hi)))
                total += min(np.pi / 4 * (d_um / px) ** 2, 0.5 * h * w)
                inclusion = role == "Fe-Ti oxide" and bool(rng.random() < _INCLUSION_PROBABILITY)
                items.append(_Item(role, d_um, inclusion=inclusion))
        groups = []
        for item in items:
            cluster = not top_up and item.role != "Fe-Ti oxide" and rng.random() < self.field.glomerocryst_share
            groups.append(self._glomerocryst(rng, item) if cluster else [item])
        order = sorted(groups, key=lambda g: (all(i.role == "Fe-Ti oxide" for i in g), -max(i.diameter_um for i in g)))
        return [sorted(g, key=lambda i: -i.diameter_um) for g in order]

    def _glomerocryst(self, rng: np.random.Generator, item: _Item) -> list[_Item]:
        """3-7 smaller grains of the field's silicates sharing the planned crystal's area (drawn
        euhedral: a clot of grains grown together, not quench crystals)."""
        silicates = [r for r in ("Olivine", "Plagioclase", "Clinopyroxene") if self.targets.get(r, 0) > 0]
        weights = np.array([self.targets[r] for r in silicates])
        n = int(rng.integers(3, 8))
        roles = rng.choice(silicates, n, p=weights / weights.sum())
        sizes = np.maximum(item.diameter_um / np.sqrt(n) * rng.uniform(0.6, 1.4, n), SIZES_UM[item.role][0])
        return sorted(
            (_Item(str(r), float(d), clustered=True) for r, d in zip(roles, sizes)), key=lambda i: -i.diameter_um
        )

    def habit(self, rng: np.random.Generator, item: _Item) -> Habit:
        """Shape of one planned crystal."""
        d_px = item.diameter_um / self.field.pixel_size_um
        quench, resorption = (0.0, 0.0) if item.clustered else (self.field.quench, self.field.resorption)
        if item.role == "Olivine":
            return habits.olivine_habit(rng, d_px, quench, resorption)
        if item.role == "Plagioclase":
            return habits.plagioclase_habit(rng, d_px, quench, resorption)
        if item.role == "Clinopyroxene":
            return habits.pyroxene_habit(rng, d_px, quench, resorption)
        return habits.oxide_habit(rng, d_px, quench if item.diameter_um <= _MAX_SKELETAL_OXIDE_UM else 0.0)

    def place_group(self, rng: np.random.Generator, group: list[_Item]) -> None:
        """Place a single crystal, an oxide inclusion, or a glomerocryst grain by grain."""
        members: list[int] = []
        for item in group:
            if item.inclusion and self._place_inclusion(rng, item):
                continue
            habit = self.habit(rng, item)
            interior = draw_interior(rng, item.role, self._solution(item.role))
            for _ in range(_ATTEMPTS):
                centre = self._candidate(rng, habit, members)
                crystal_id = self._paint(rng, item, habit, interior, centre, touching=bool(members))
                if crystal_id:
                    members.append(crystal_id)
                    break
            if item.clustered and not members:
                return
        self.glomerocrysts += len(members) >= 2

    def _solution(self, role: str) -> SolidSolution | None:
        """The solid solution a crystal of ``role`` zones in, if it zones in composition."""
        return self.catalogue.classes[self.roles[role]].solid_solution if role in COMPOSITION_ROLES else None

    def _candidate(self, rng: np.random.Generator, habit: Habit, members: list[int]) -> np.ndarray:
        radius = np.sqrt(habits.polygon_area(habit.outline) / np.pi)
        if members:
            anchor = self.canvas.placed[int(rng.choice(members))]
            angle = rng.uniform(0, 2 * np.pi)
            return anchor.centre + (anchor.radius + radius) * rng.uniform(0.5, 0.85) * np.array(
                (np.sin(angle), np.cos(angle))
            )
        h, w = self.canvas.shape
        return rng.uniform((-0.3 * radius, -0.3 * radius), (h + 0.3 * radius, w + 0.3 * radius))

    def _place_inclusion(self, rng: np.random.Generator, item: _Item) -> bool:
        d_px = item.diameter_um / self.field.pixel_size_um
        placed = self.canvas.placed
        hosts = [c.id for c in self.canvas.crystals if c.role in ("Olivine", "Clinopyroxene") and c.host_id == 0
                 and placed[c.id].area >= 4 * d_px * d_px]  # fmt: skip
        if not hosts:
            return False
        host = hosts[int(rng.integers(len(hosts)))]
        r0, c0, r1, c1 = placed[host].box
        rows, cols = np.nonzero(self.canvas.instances[r0:r1, c0:c1] == host)
        k = int(rng.integers(len(rows)))
        habit = self.habit(rng, item)
        return bool(self._paint(rng, item, habit, Interior(), np.array((rows[k] + r0, cols[k] + c0), float), host=host))

    def _paint(self, rng: np.random.Generator, item: _Item, habit: Habit, interior: Interior, centre: np.ndarray,
               touching: bool = False, host: int = 0) -> int:  # fmt: skip
        """Paint one crystal if it fits; returns its id, or 0 when it was rejected."""
        box = window(habit, centre, self.canvas.shape, 0)
        if box is None:
            return 0
        view = (slice(box[0], box[2]), slice(box[1], box[3]))
        outline = fill([habit.outline], centre, box)
        free = self._free(item, habit, outline, view, touching, host)
        if free is None:
            return 0
        glass = fill(habit.holes, centre, box) if habit.holes else np.zeros_like(outline)
        depth = None
        if interior.needs_depth or habit.sieve is not None:
            depth = self._depth(habit, centre, box)
            if habit.sieve is not None:
                glass |= self._sieve(rng, habit, depth, outline)
        crystal = free & ~glass
        if not crystal.any():
            return 0
        c = self.canvas
        crystal_id = len(c.crystals) + 1
        rows, cols = np.nonzero(crystal)
        offsets = np.column_stack((rows + box[0] - centre[0], cols + box[1] - centre[1]))
        depth_um = None if depth is None else (depth[rows, cols] - 0.5) * self.field.pixel_size_um
        solution = self._solution(item.role)
        base, scale = self.field.eta[item.role], self.field.eta_scale[item.role]
        c.eta[view][crystal] = interior_eta(interior, habit, offsets, depth_um, base, solution, scale)
        c.classes[view][crystal] = self.roles[item.role]
        c.instances[view][crystal] = crystal_id
        if host == 0:  # glass inside the outline: plain glass (inside a host, a hollow stays host)
            inclusions = free & glass
            c.eta[view][inclusions] = c.glass[view][inclusions]
            c.claimed[view] |= free
            self.n_claimed += int(free.sum())
        else:
            c.painted[c.crystals[host - 1].role] -= len(rows)
        c.painted[item.role] += len(rows)
        c.models[habit.model] += 1
        c.placed[crystal_id] = Placed(
            centre, float(np.sqrt(habits.polygon_area(habit.outline) / np.pi)), box, len(rows)
        )
        c.crystals.append(self._record(crystal_id, item, interior, depth_um, solution, host))
        return crystal_id

    def _free(self, item: _Item, habit: Habit, outline: np.ndarray, view: tuple[slice, slice], touching: bool,
              host: int) -> np.ndarray | None:  # fmt: skip
        """The outline's pixels this crystal may take, or None when it does not fit: too little
        of it in the field, too much overlap (a glomerocryst grain must overlap its cluster, so
        it ends at its neighbours' faces), cut in two by a neighbour, or the phase's or the
        field's crystal budget exceeded."""
        c = self.canvas
        n_outline = int(outline.sum())
        if n_outline == 0 or n_outline < min(25.0, 0.5 * habits.polygon_area(habit.outline)):
            return None
        free = outline & (c.instances[view] == host if host else ~c.claimed[view])
        if host:
            return free
        n_free = int(free.sum())
        overlap = n_outline - n_free
        if (touching and overlap == 0) or overlap > (0.6 if touching else _MAX_OVERLAP) * n_outline:
            return None
        target = self.targets[item.role]
        if self.n_claimed + n_free > self.max_claimed or c.painted[item.role] + n_free > max(
            1.5 * target, target + 0.01 * c.classes.size
        ):
            return None
        if overlap:  # truncated by its neighbours: it must stay in one piece
            pieces, n = label(free)
            if n > 1 and np.sort(np.bincount(pieces.ravel())[1:])[-2] >= 0.05 * n_free:
                return None
        return free

    def _record(self, crystal_id: int, item: _Item, interior: Interior, depth_um: np.ndarray | None,
                solution: SolidSolution | None, host: int) -> Crystal:  # fmt: skip
        """The crystal's ground-truth row (realised core = composition at its deepest visible pixel)."""
        population = (
            "phenocryst" if item.diameter_um >= SynthConfig.phenocryst_min_um
            else "microphenocryst" if item.diameter_um >= SynthConfig.microphenocryst_min_um else "microlite"
        )  # fmt: skip
        variable, core, rim = "", np.nan, np.nan
        if solution is not None:
            variable = solution.variable
            rim = interior.rim
            core = (
                interior.core
                if depth_um is None
                else float(composition(interior, np.array([depth_um.max()]), solution.range)[0])
            )
        return Crystal(crystal_id, self.roles[item.role], item.role, interior.zoning, variable, core, rim,
                       item.diameter_um, population, host)  # fmt: skip

    def _depth(self, habit: Habit, centre: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
        """Distance (px) below the outline for the pixels of ``box``, measured in a window grown
        by up to ``_DEPTH_MARGIN`` px beyond the canvas (deeper than that it saturates)."""
        grown = window(habit, centre, self.canvas.shape, _DEPTH_MARGIN)
        assert grown is not None  # it contains the (non-empty) margin-0 window ``box``
        outline = fill([habit.outline], centre, grown)
        depth = distance_transform_edt(outline)
        return depth[box[0] - grown[0] : box[2] - grown[0], box[1] - grown[1] : box[3] - grown[1]]

    @staticmethod
    def _sieve(rng: np.random.Generator, habit: Habit, depth: np.ndarray, outline: np.ndarray) -> np.ndarray:
        """Glass blobs centred in the sieve band of depths."""
        sieve = habit.sieve
        assert sieve is not None  # _paint calls this only for habits with a sieve
        deepest = max(float(depth.max()), 1.0)
        band = np.flatnonzero(outline & (depth >= sieve.inner * deepest) & (depth <= sieve.outer * deepest))
        image = Image.new("1", outline.shape[::-1], 0)
        pen = ImageDraw.Draw(image)
        r = sieve.blob_px / 2
        for k in rng.choice(band, min(sieve.count, len(band)), replace=False) if len(band) else ():
            row, col = divmod(int(k), outline.shape[1])
            stretch = rng.uniform(0.6, 1.4)
            pen.ellipse([col - r * stretch, row - r / stretch, col + r * stretch, row + r / stretch], fill=1)
        return np.array(image, dtype=bool)


def add_crystals(
    canvas: Canvas, fld: Field, catalogue: Catalogue, roles: dict[str, int], rng: np.random.Generator
) -> dict:
    """Plan, place and paint the field's crystals onto ``canvas``.

    Returns:
        Realised parameters: painted share per role, crystal and glomerocryst counts, shape models.
    """
    painter = _Painter(canvas, fld, catalogue, roles)
    groups = []
    for top_up in (False, True, True):
        plan = painter.plan(rng, top_up)
        for group in plan:
            painter.place_group(rng, group)
        groups += plan
    area = float(canvas.classes.size)
    return {
        "crystal_share": {role: canvas.painted[role] / area for role in painter.targets},
        "crystals_planned": sum(len(g) for g in groups),
        "crystals_painted": len(canvas.crystals),
        "glomerocrysts_planned": sum(1 for g in groups if len(g) > 1),
        "glomerocrysts_painted": painter.glomerocrysts,
        "crystal_models": dict(sorted(canvas.models.items())),
    }
