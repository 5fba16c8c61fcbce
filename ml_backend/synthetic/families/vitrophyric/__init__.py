"""Family ``vitrophyric``: quenched, glassy basalt with a scanned, charging, non-linear detector.

How it differs from ``porphyritic`` (not only in ranges):

- crystals (:mod:`.habits`, :mod:`.interior`): skeletal and hopper olivine, swallowtail and
  hollow plagioclase, embayed / resorbed / sieve-textured phenocrysts whose glass is
  groundmass, glomerocrysts of touching grains, plagioclase twin lamellae (faint
  channelling contrast), sector-zoned clinopyroxene, oscillatory zoning;
- groundmass (:mod:`.groundmass`, :mod:`.vesicles`): glass from featureless to quench
  textures (dendritic and skeletal microlites, feathery spherulites, variolitic fans), fine
  vesicles; its brightness is drawn around the field's clinopyroxene, sometimes equal to it,
  and every phase's eta is perturbed per field (:mod:`.field`);
- detector (:mod:`.detector`): probe blur sized in µm, charging streaks, beam drift, shot
  and scan-line noise, gamma or random monotone response, 8-bit output (JPEG in part of the
  fields) or 16-bit;
- scale: 0.1-1.5 µm/px (log-uniform), field kinds from glass-dominated to olivine- or
  oxide-rich.

Random streams (field, groundmass, crystals, vesicles, detector, noise) are spawned from the
seed, so the same seed gives identical arrays.
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np

from label_config.catalogue import Catalogue
from ml_backend.synthetic.families.vitrophyric.canvas import Canvas
from ml_backend.synthetic.families.vitrophyric.crystals import add_crystals
from ml_backend.synthetic.families.vitrophyric.detector import detector_params, render
from ml_backend.synthetic.families.vitrophyric.field import Field, draw_field
from ml_backend.synthetic.families.vitrophyric.groundmass import QuenchEtas, paint_groundmass
from ml_backend.synthetic.families.vitrophyric.interior import solution_eta
from ml_backend.synthetic.families.vitrophyric.vesicles import add_vesicles
from ml_backend.synthetic.scene import role_indices
from ml_backend.synthetic.section import SyntheticSection, _default_catalogue, _shape_of, crystal_table

__all__ = ["generate"]

_STREAMS = ("field", "groundmass", "crystals", "vesicles", "detector", "noise")
_QUENCH_COMPOSITION = {"Plagioclase": (45.0, 65.0), "Olivine": (70.0, 85.0)}


def _quench_etas(fld: Field, catalogue: Catalogue, roles: dict[str, int], rng: np.random.Generator) -> QuenchEtas:
    """Eta of the glass and of the (more evolved) phases quenched from it."""
    glass = fld.eta["Groundmass"]
    etas = {}
    for role in ("Plagioclase", "Clinopyroxene", "Olivine", "Fe-Ti oxide"):
        solution = catalogue.classes[roles[role]].solid_solution if role in roles else None
        if solution is not None and role in _QUENCH_COMPOSITION:
            etas[role] = float(solution_eta(solution, rng.uniform(*_QUENCH_COMPOSITION[role]))) * fld.eta_scale[role]
        else:
            etas[role] = fld.eta.get(role, glass)
    return QuenchEtas(glass, etas["Plagioclase"], etas["Clinopyroxene"], etas["Olivine"], etas["Fe-Ti oxide"])


def generate(size: int | tuple[int, int], seed: int, catalogue: Catalogue | None = None) -> SyntheticSection:
    """One vitrophyric field with its ground truth; the same seed gives identical arrays.

    Args:
        size: Side length in px, or (height, width).
        seed: Non-negative integer seed.
        catalogue: Mineral catalogue (the built-in basaltic one by default).

    Returns:
        The section: ``image`` uint8 (8-bit fields) or uint16, ``classes`` uint8, ``instances``
        int32 (phenocrysts, microphenocrysts and oxides; 0 for groundmass with its microlites,
        spherulites and melt inclusions, and for epoxy), the crystal table, noise-free ``eta``
        and every drawn parameter in ``params``.

    Raises:
        ValueError: for a bad size or seed, or a catalogue without Epoxy/Groundmass.
    """
    shape = _shape_of(size)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    catalogue = catalogue or _default_catalogue()
    roles = role_indices(catalogue)
    rngs = dict(
        zip(_STREAMS, (np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(len(_STREAMS))))
    )
    fld = draw_field(rngs["field"], roles, catalogue)
    px = fld.pixel_size_um
    etas = _quench_etas(fld, catalogue, roles, rngs["field"])
    eta, glass, groundmass = paint_groundmass(shape, px, fld.texture, etas, rngs["groundmass"])
    canvas = Canvas(np.full(shape, roles["Groundmass"], np.uint8), np.zeros(shape, np.int32), eta, glass)
    crystals = add_crystals(canvas, fld, catalogue, roles, rngs["crystals"])
    vesicles = add_vesicles(canvas, fld.vesicle_fraction, px, roles, fld.eta["Epoxy"], rngs["vesicles"])
    glass_eta = fld.eta["Groundmass"]
    silicates = [fld.eta[r] for r in ("Plagioclase", "Clinopyroxene", "Olivine", "Groundmass") if r in fld.eta]
    levels = (
        fld.eta["Epoxy"],
        min(silicates),
        glass_eta,
        max(silicates),
        fld.eta.get("Fe-Ti oxide", 1.5 * max(silicates)),
    )
    detector = detector_params(rngs["detector"], px, levels)
    image = render(canvas.eta, canvas.classes == roles["Epoxy"], detector, rngs["noise"])
    instances, table = crystal_table(canvas.instances, canvas.crystals, catalogue, px)
    params = {
        "family": "vitrophyric", **fld.to_params(), "quench_eta": asdict(etas),
        "groundmass": groundmass, "crystals": crystals, "vesicles": vesicles, "detector": detector,
    }  # fmt: skip
    return SyntheticSection(
        image, canvas.classes, instances, table, px, int(seed), canvas.eta, params, None, catalogue.names
    )
