"""Synthetic BSE images of basaltic thin sections with pixel-exact ground truth.

Public API::

    from ml_backend.synthetic import SynthConfig, SyntheticSection, generate_section, write_section

    section = generate_section(512, seed=7)                        # realistic acquisition
    ideal = generate_section(512, seed=7, config=SynthConfig.ideal())  # noise-free, linear in eta

Groundmass microlites are texture, not instances: they carry instance id 0 and class
Groundmass. Every other crystal (phenocryst, microphenocryst, oxide, including oxide
inclusions) has its own id.
"""

from ml_backend.synthetic.config import SynthConfig
from ml_backend.synthetic.section import CRYSTAL_COLUMNS, SyntheticSection, generate_section
from ml_backend.synthetic.writer import write_section

__all__ = ["CRYSTAL_COLUMNS", "SynthConfig", "SyntheticSection", "generate_section", "write_section"]
