"""Per-field draws: scale, kind of field (modal composition), phase brightness and texture degrees.

A field's phase brightness is not the catalogue's: each phase's eta is perturbed by a few %
(compositional variation from flow to flow), and the glass is drawn relative to the
field's clinopyroxene, sometimes exactly equal to it (the hard case). Epoxy stays the
darkest phase and Fe-Ti oxide the brightest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from label_config.catalogue import Catalogue
from ml_backend.synthetic.groundmass import log_uniform

PIXEL_SIZE_UM = (0.1, 1.5)
CRYSTAL_ROLES = ("Olivine", "Plagioclase", "Clinopyroxene", "Fe-Ti oxide")
TEXTURES = ("smooth", "quench", "spherulitic", "variolitic")
_TEXTURE_WEIGHTS = (0.3, 0.3, 0.2, 0.2)
#: kind -> modal area fractions of the field for (olivine, plagioclase, clinopyroxene, oxide).
MODES = {
    "glassy": ((0.0, 0.05), (0.0, 0.04), (0.0, 0.02), (0.0, 0.004)),
    "porphyritic": ((0.03, 0.15), (0.04, 0.15), (0.02, 0.10), (0.003, 0.02)),
    "olivine-rich": ((0.20, 0.45), (0.0, 0.06), (0.0, 0.05), (0.002, 0.02)),
    "plagioclase-rich": ((0.0, 0.06), (0.15, 0.40), (0.02, 0.10), (0.002, 0.015)),
    "oxide-rich": ((0.0, 0.08), (0.02, 0.10), (0.02, 0.08), (0.03, 0.10)),
}
_KIND_WEIGHTS = (0.25, 0.3, 0.15, 0.15, 0.15)
_ETA_JITTER = 0.015  # sd of the per-field relative eta perturbation of a phase
_GLASS_OFFSET = 0.035  # sd of the glass eta relative to clinopyroxene's
_GLASS_EQUAL_PROBABILITY = 0.25


@dataclass
class Field:
    """What one field is made of; every drawn value is kept for ``params``.

    Attributes:
        pixel_size_um: Pixel size.
        kind: Key of :data:`MODES`.
        fractions: Target area fraction of the field per crystal role.
        vesicle_fraction: Target area fraction of epoxy-filled vesicles.
        eta: Backscatter coefficient per role in this field (Groundmass: the glass). For
            Plagioclase and Olivine it is the catalogue value times ``eta_scale``; their
            crystals take the eta of their composition times ``eta_scale``.
        eta_scale: Relative perturbation per role.
        texture: Groundmass texture, one of :data:`TEXTURES`.
        quench: 0 (slow, euhedral) to 1 (fast: skeletal, hopper, swallowtail habits).
        resorption: Probability that a phenocryst is embayed / resorbed / sieve-textured.
        glomerocryst_share: Share of the silicate crystals drawn in touching clusters.
        extras: How the glass eta was drawn (offset from clinopyroxene, or equal to it).
    """

    pixel_size_um: float
    kind: str
    fractions: dict[str, float]
    vesicle_fraction: float
    eta: dict[str, float]
    eta_scale: dict[str, float]
    texture: str
    quench: float
    resorption: float
    glomerocryst_share: float
    extras: dict[str, Any] = field(default_factory=dict)

    def to_params(self) -> dict[str, Any]:
        """JSON-able copy of the drawn values."""
        return {
            "pixel_size_um": self.pixel_size_um, "kind": self.kind, "modal_fractions": dict(self.fractions),
            "vesicle_fraction": self.vesicle_fraction, "phase_eta": dict(self.eta), "phase_eta_scale": dict(self.eta_scale),
            "groundmass_texture": self.texture, "quench": self.quench, "resorption": self.resorption,
            "glomerocryst_share": self.glomerocryst_share, **self.extras,
        }  # fmt: skip


def draw_field(rng: np.random.Generator, roles: dict[str, int], catalogue: Catalogue) -> Field:
    """Draw scale, modal composition, phase etas and texture degrees of one field.

    Args:
        rng: The field's random stream.
        roles: Catalogue index per role present (from ``role_indices``).
        catalogue: Phases and their catalogue eta.
    """
    pixel_size = float(log_uniform(rng, PIXEL_SIZE_UM))
    kind = str(rng.choice(list(MODES), p=_KIND_WEIGHTS))
    fractions = {
        role: float(rng.uniform(*bounds)) if role in roles else 0.0 for role, bounds in zip(CRYSTAL_ROLES, MODES[kind])
    }
    vesicle_fraction = float(0.15 * rng.uniform() ** 2)
    base = {role: catalogue.classes[index].eta for role, index in roles.items()}
    scale = {role: float(1.0 + np.clip(rng.normal(0.0, _ETA_JITTER), -0.04, 0.04)) for role in base}
    eta = {role: base[role] * scale[role] for role in base}
    reference = eta.get("Clinopyroxene", base["Groundmass"])
    equal = bool(rng.random() < _GLASS_EQUAL_PROBABILITY)
    offset = 0.0 if equal else float(np.clip(rng.normal(0.0, _GLASS_OFFSET), -0.08, 0.08))
    silicates = [eta[r] for r in ("Plagioclase", "Clinopyroxene", "Olivine") if r in eta]
    eta["Groundmass"] = reference * (1.0 + offset)
    eta["Epoxy"] = min(eta["Epoxy"], 0.8 * min(silicates + [eta["Groundmass"]]))
    if "Fe-Ti oxide" in eta:
        eta["Fe-Ti oxide"] = max(eta["Fe-Ti oxide"], 1.2 * max(silicates + [eta["Groundmass"]]))
    texture = str(rng.choice(TEXTURES, p=_TEXTURE_WEIGHTS))
    quench = float(rng.uniform(0.0, 0.4) if texture == "smooth" else rng.uniform(0.3, 1.0))
    return Field(
        pixel_size, kind, fractions, vesicle_fraction, eta, scale, texture, quench,
        resorption=float(rng.uniform(0.0, 0.6)), glomerocryst_share=float(rng.uniform(0.0, 0.6)),
        extras={"glass_offset_from_clinopyroxene": offset, "glass_equals_clinopyroxene": equal},
    )  # fmt: skip
