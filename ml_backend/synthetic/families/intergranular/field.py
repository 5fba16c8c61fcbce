"""``generate``: one intergranular field with its ground truth, stage by stage.

fabric (grains) -> growth tessellation (who owns each pixel) -> groundmass texture under the
crystals -> crystal zoning -> plucking (truth changes) -> relief and scratches -> detector.
Each stage draws from its own random stream spawned from the seed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from label_config.catalogue import Catalogue
from ml_backend.synthetic.families.intergranular.composition import PHASES, crystal_etas, draw_etas
from ml_backend.synthetic.families.intergranular.detector import draw_detector, render
from ml_backend.synthetic.families.intergranular.fabric import ROLES, draw_fabric
from ml_backend.synthetic.families.intergranular.groundmass import paint_groundmass
from ml_backend.synthetic.families.intergranular.preparation import pluck, surface
from ml_backend.synthetic.families.intergranular.tessellation import grow
from ml_backend.synthetic.groundmass import log_uniform
from ml_backend.synthetic.scene import role_indices
from ml_backend.synthetic.section import SyntheticSection, _default_catalogue, _shape_of, crystal_table

FAMILY = "intergranular"
PIXEL_SIZE_UM = (1.0, 5.0)
_STREAMS = ("scale", "composition", "fabric", "groundmass", "zoning", "preparation", "detector", "noise")


def _roles(catalogue: Catalogue) -> dict[str, int]:
    roles = role_indices(catalogue)
    missing = [phase for phase in PHASES if phase not in roles]
    if missing:
        raise ValueError(
            f"catalogue {catalogue.name!r} lacks {', '.join(missing)}; the {FAMILY} family draws all of {PHASES}"
        )
    return roles


def _validate_shape(size: int | tuple[int, int]) -> tuple[int, int]:
    if not isinstance(size, (int, np.integer, tuple, list)):
        raise ValueError(f"size must be an int or (height, width) of ints, got {size!r}")
    return _shape_of(size)


def _validate_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def generate(size: int | tuple[int, int], seed: int, catalogue: Catalogue | None = None) -> SyntheticSection:
    """One intergranular / doleritic BSE field with its truth; the same seed gives identical arrays.

    Args:
        size: Side length in px, or (height, width).
        seed: Non-negative integer seed.
        catalogue: Mineral catalogue with the six phases (the built-in one by default).

    Raises:
        ValueError: for a bad size or seed, or a catalogue lacking one of the six phases.
    """
    shape = _validate_shape(size)
    seed = _validate_seed(seed)
    catalogue = catalogue or _default_catalogue()
    roles = _roles(catalogue)
    rngs = dict(zip(_STREAMS, (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(_STREAMS)))))
    px = float(log_uniform(rngs["scale"], PIXEL_SIZE_UM))
    etas = draw_etas(catalogue, roles, rngs["composition"])
    fabric, fabric_params = draw_fabric(shape, px, rngs["fabric"])
    tessellation = grow(fabric.grains, shape)
    eta, groundmass_params = paint_groundmass(shape, px, etas, rngs["groundmass"])
    flat, values, crystals, zoning_params = crystal_etas(tessellation, fabric, etas, px, rngs["zoning"])
    eta.ravel()[flat] = values
    classes = np.full(shape, roles["Groundmass"], np.uint8)
    role_class = np.array([roles[role] for role in ROLES], np.uint8)
    instances = tessellation.labels
    classes.ravel()[flat] = role_class[fabric.roles[instances.ravel()[flat] - 1]]
    rng = rngs["preparation"]
    pluck_share = float(rng.uniform(0.005, 0.05)) if rng.random() < 0.7 else 0.0
    plucked = pluck(classes, instances, eta, roles, etas.of("Epoxy"), pluck_share, rng)
    polished, surface_params = surface(classes, roles, rng)
    detector = draw_detector(rngs["detector"])
    image = render(eta, polished, detector, rngs["noise"])
    instances, table = crystal_table(instances, crystals, catalogue, px)
    params: dict[str, Any] = {
        "family": FAMILY,
        "pixel_size_um": px,
        "phase_eta_factors": etas.factors,
        "fabric": fabric_params,
        "groundmass": groundmass_params,
        "zoning": zoning_params,
        "preparation": {"pluck_share": pluck_share, **plucked, **surface_params},
        "detector": detector,
        "class_fractions": {
            name: float(share)
            for name, share in zip(
                catalogue.names, np.bincount(classes.ravel(), minlength=len(catalogue)) / classes.size
            )
        },
    }
    return SyntheticSection(image, classes, instances, table, px, seed, eta, params, None, catalogue.names)
