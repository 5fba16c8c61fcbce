"""The one configuration object of the synthetic thin-section generator.

Every random quantity is drawn, per section, uniformly from a ``(low, high)`` range given
here (sizes log-uniformly). Set ``low == high`` to fix a value. ``SynthConfig.ideal()``
switches the detector model off (no blur, shading or noise) so tests and users can read
the noise-free signal.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

Range = tuple[float, float]


@dataclass(frozen=True)
class SynthConfig:
    """Ranges from which each synthetic section draws its properties.

    Fractions are area (= volume) fractions of the whole section; sizes are equivalent
    diameters (laths: lengths) in micrometres; ``*_weights`` are relative probabilities of
    (normal, reverse, unzoned) zoning.
    """

    # scale
    pixel_size_um: Range = (1.0, 2.0)
    # modal abundances (area fractions of the section)
    olivine_fraction: Range = (0.05, 0.15)
    plagioclase_fraction: Range = (0.04, 0.16)
    clinopyroxene_fraction: Range = (0.02, 0.10)
    oxide_fraction: Range = (0.003, 0.02)
    vesicle_fraction: Range = (0.0, 0.10)
    # crystal sizes (µm); sizes are drawn log-uniformly, so small crystals are the most numerous
    olivine_size_um: Range = (40.0, 700.0)
    olivine_aspect: Range = (1.0, 1.8)
    plagioclase_length_um: Range = (60.0, 600.0)
    plagioclase_aspect: Range = (2.5, 8.0)
    clinopyroxene_size_um: Range = (40.0, 450.0)
    clinopyroxene_aspect: Range = (1.0, 2.2)
    oxide_size_um: Range = (4.0, 60.0)
    vesicle_size_um: Range = (20.0, 350.0)
    max_crystal_fraction_of_field: float = 0.6
    cluster_probability: float = 0.3
    max_overlap: float = 0.08
    oxide_inclusion_probability: float = 0.25
    # populations: equivalent diameter thresholds (µm)
    phenocryst_min_um: float = 300.0
    microphenocryst_min_um: float = 30.0
    # zoning (compositions in mol % of the catalogue's solid-solution variable)
    olivine_zoning_weights: tuple[float, float, float] = (0.55, 0.25, 0.20)
    olivine_core_fo_normal: Range = (80.0, 91.0)
    olivine_core_fo_reverse: Range = (70.0, 80.0)
    olivine_fo_unzoned: Range = (72.0, 90.0)
    olivine_zoning_delta_fo: Range = (5.0, 15.0)
    plagioclase_zoning_weights: tuple[float, float, float] = (0.35, 0.15, 0.50)
    plagioclase_core_an: Range = (55.0, 85.0)
    plagioclase_zoning_delta_an: Range = (5.0, 25.0)
    zoning_width_um: Range = (10.0, 60.0)
    clinopyroxene_eta_jitter: float = 0.01
    # cracks (epoxy-filled)
    olivine_cracks_per_mm: Range = (4.0, 20.0)
    other_cracks_per_mm: Range = (0.0, 2.0)
    section_cracks: Range = (0.0, 3.0)
    crack_width_um: Range = (0.5, 3.0)
    # groundmass texture (fractions of the groundmass area)
    microlite_fraction: Range = (0.15, 0.40)
    microlite_length_um: Range = (8.0, 40.0)
    microlite_aspect: Range = (3.0, 10.0)
    microlite_alignment: Range = (0.0, 4.0)
    pyroxene_speck_fraction: Range = (0.03, 0.12)
    oxide_speck_fraction: Range = (0.0, 0.012)
    speck_size_um: Range = (1.5, 6.0)
    # detector
    blur: bool = True
    shading: bool = True
    noise: bool = True
    blur_sigma_px: Range = (0.5, 1.2)
    shading_multiplicative: Range = (0.0, 0.15)
    shading_additive: Range = (0.0, 0.02)
    dose_electrons: Range = (3000.0, 40000.0)
    read_noise_dn: Range = (20.0, 300.0)
    gain_dn: Range = (150000.0, 260000.0)
    offset_dn: Range = (-9000.0, 2000.0)

    def __post_init__(self) -> None:
        for spec in fields(self):
            value = getattr(self, spec.name)
            if isinstance(value, bool):
                continue
            values = value if isinstance(value, tuple) else (value,)
            if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
                raise ValueError(f"synthetic config: {spec.name} must hold finite numbers, got {value!r}")
            if spec.name not in ("offset_dn",) and any(v < 0 for v in values):
                raise ValueError(f"synthetic config: {spec.name} must not be negative, got {value!r}")
            if spec.name.endswith("_weights"):
                if len(values) != 3 or sum(values) <= 0:
                    raise ValueError(
                        f"synthetic config: {spec.name} needs 3 weights (normal, reverse, unzoned), got {value!r}"
                    )
            elif isinstance(value, tuple) and (len(values) != 2 or values[0] > values[1]):
                raise ValueError(
                    f"synthetic config: {spec.name} must be a (low, high) range with low <= high, got {value!r}"
                )
        for name in ("pixel_size_um", "gain_dn", "dose_electrons"):
            if getattr(self, name)[0] <= 0:
                raise ValueError(f"synthetic config: {name} must be positive, got {getattr(self, name)!r}")
        for name in (
            "cluster_probability",
            "max_overlap",
            "oxide_inclusion_probability",
            "max_crystal_fraction_of_field",
        ):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"synthetic config: {name} must lie in [0, 1], got {getattr(self, name)!r}")
        total = sum(getattr(self, n)[1] for n in _PHASE_FRACTIONS)
        if total >= 1:
            raise ValueError(
                f"synthetic config: the upper phase and vesicle fractions sum to {total:.2f}; keep them below 1"
            )

    @classmethod
    def ideal(cls, **overrides: Any) -> SynthConfig:
        """A configuration without blur, shading or noise: the image is the linear eta signal."""
        return cls(blur=False, shading=False, noise=False, **overrides)

    def replace(self, **changes: Any) -> SynthConfig:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (ranges as lists) for JSON."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> SynthConfig:
        """Build from a mapping of field names to values; unknown keys are refused.

        Raises:
            ValueError: naming the unknown key(s) or the bad value, and the valid keys.
        """
        valid = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - valid)
        if unknown:
            raise ValueError(
                f"{source}: unknown synthetic config key(s) {unknown}; valid keys: {', '.join(sorted(valid))}"
            )
        values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        try:
            return cls(**values)
        except TypeError as exc:
            raise ValueError(f"{source}: {exc}") from None
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from None

    @classmethod
    def from_file(cls, path: str | Path) -> SynthConfig:
        """Read overrides from a ``.toml`` or ``.json`` file (a flat table of field names).

        Raises:
            ValueError: when the file is missing, unparsable, or holds bad keys or values.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"{path}: cannot read synthetic config ({exc.strerror or exc})") from None
        try:
            if path.suffix.lower() == ".toml":
                data = tomllib.loads(text)
            elif path.suffix.lower() == ".json":
                data = json.loads(text)
            else:
                raise ValueError(f"{path}: synthetic config must be a .toml or .json file")
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: not valid {path.suffix.lstrip('.').upper()} ({exc})") from None
        if not isinstance(data, dict):
            raise ValueError(f"{path}: synthetic config must be a table of field names")
        return cls.from_dict(data, source=str(path))


_PHASE_FRACTIONS = (
    "olivine_fraction",
    "plagioclase_fraction",
    "clinopyroxene_fraction",
    "oxide_fraction",
    "vesicle_fraction",
)
