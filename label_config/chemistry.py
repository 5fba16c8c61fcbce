"""Mean atomic number and backscatter coefficient of a phase from its chemistry."""

from __future__ import annotations

from collections.abc import Mapping

import periodictable


def mass_fractions(formula: str | None = None, oxides: Mapping[str, float] | None = None) -> dict[str, float]:
    """Element mass fractions of a phase.

    Args:
        formula: Chemical formula such as ``"Mg1.6Fe0.4SiO4"``.
        oxides: Oxide weight percentages such as ``{"SiO2": 50.0, "MgO": 8.0}``;
            normalised to 100 %.

    Returns:
        Mapping of element symbol to mass fraction (sums to 1).

    Raises:
        ValueError: If neither or both inputs are given, or a formula cannot be parsed.
    """
    if (formula is None) == (oxides is None):
        raise ValueError("give exactly one of 'formula' or 'oxides'")
    shares = {formula: 1.0} if formula is not None else dict(oxides or {})
    total = float(sum(shares.values()))
    if total <= 0:
        raise ValueError(f"oxide weight percentages must sum to more than 0, got {shares}")
    fractions: dict[str, float] = {}
    for compound_name, share in shares.items():
        try:
            compound = periodictable.formula(compound_name)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"cannot parse chemical formula {compound_name!r}: {exc}") from exc
        if not compound.atoms:
            raise ValueError(f"chemical formula {compound_name!r} holds no elements")
        for element, fraction in compound.mass_fraction.items():
            fractions[element.symbol] = fractions.get(element.symbol, 0.0) + share / total * fraction
    return fractions


def mean_atomic_number(fractions: Mapping[str, float]) -> float:
    """Mass-fraction weighted mean atomic number Z of a phase."""
    return float(sum(w * periodictable.elements.symbol(s).number for s, w in fractions.items()))


def backscatter_coefficient(z: float) -> float:
    """Backscatter coefficient eta of a material of (mean) atomic number ``z``.

    Reuter's (1972) polynomial fit, the usual approximation for SEM BSE contrast
    at 10-30 kV: eta = -0.0254 + 0.016 Z - 1.86e-4 Z^2 + 8.3e-7 Z^3.
    """
    return -0.0254 + 0.016 * z - 1.86e-4 * z**2 + 8.3e-7 * z**3
