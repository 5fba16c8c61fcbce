"""Family ``porphyritic``: the original generator (:mod:`ml_backend.synthetic`) with its defaults.

Polygonal phenocrysts with concentric zoning in glass carrying plagioclase microlites and
pyroxene / oxide specks; a linear detector (Gaussian PSF, smooth shading, Poisson-Gaussian
noise, 16-bit).
"""

from __future__ import annotations

from label_config.catalogue import Catalogue
from ml_backend.synthetic.section import SyntheticSection, generate_section


def generate(size: int | tuple[int, int], seed: int, catalogue: Catalogue | None = None) -> SyntheticSection:
    """One field of the original generator with its realistic default ranges."""
    return generate_section(size, seed, None, catalogue)
