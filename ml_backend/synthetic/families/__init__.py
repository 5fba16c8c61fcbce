"""Thin-section generator families: structurally different ways to draw a BSE field with its truth.

Each family draws the same catalogue phases (Epoxy, Groundmass, Plagioclase, Clinopyroxene,
Olivine, Fe-Ti oxide) with its own crystal shape models, groundmass texture and detector
physics, so a model trained on some families can be measured on one it never saw
(leave-one-family-out, ``scraiber bench domain-shift``).

    from ml_backend.synthetic.families import family_names, generate_field

    section = generate_field("vitrophyric", 512, seed=7)   # a SyntheticSection

Seeds: training draws below :data:`TEST_SEED_START`; benchmarks and tests that report a
figure use seeds from it upwards, so no reported field was ever trained on.
"""

from __future__ import annotations

from label_config.catalogue import Catalogue
from ml_backend.registry import LazyRegistry
from ml_backend.synthetic.section import SyntheticSection

#: Seeds at or above this are never drawn for training (training draws below 2**31).
TEST_SEED_START = 3_000_000_000

FAMILIES = LazyRegistry(
    "generator family",
    {
        "porphyritic": "ml_backend.synthetic.families.porphyritic:generate",
        "vitrophyric": "ml_backend.synthetic.families.vitrophyric:generate",
        "intergranular": "ml_backend.synthetic.families.intergranular:generate",
    },
)


def family_names() -> list[str]:
    """Names of the generator families, sorted."""
    return FAMILIES.names()


def generate_field(
    family: str, size: int | tuple[int, int], seed: int, catalogue: Catalogue | None = None
) -> SyntheticSection:
    """One synthetic BSE field of ``family``; the same (family, size, seed) gives identical arrays.

    Raises:
        ValueError: for an unknown family (listing the valid ones), a bad size or seed.
    """
    return FAMILIES.get(family)(size, seed, catalogue)
