"""The mineral catalogue: one TOML file, loaded into frozen dataclasses."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import periodictable

from label_config.chemistry import backscatter_coefficient, mass_fractions, mean_atomic_number

DEFAULT_CATALOGUE = Path(__file__).with_name("minerals.toml")
IGNORE_INDEX = 255
_HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")


def _key(label: str) -> str:
    """Normalise a label for matching: case, spaces, hyphens and underscores do not count."""
    return re.sub(r"[\s\-_]+", "", label).casefold()


@dataclass(frozen=True)
class SolidSolution:
    """Binary solid solution between two end-members, e.g. olivine Fo-Fa."""

    variable: str
    unit: str
    high: str
    low: str
    range: tuple[float, float]

    def mean_z_at(self, value: float) -> float:
        """Mean atomic number at composition ``value`` (mol % of the ``high`` end-member)."""
        share = min(max(value / 100.0, 0.0), 1.0)
        high, low = mass_fractions(self.high), mass_fractions(self.low)
        mass_high = mass_of(self.high) * share
        mass_low = mass_of(self.low) * (1.0 - share)
        w = mass_high / (mass_high + mass_low)
        mixed = {s: w * high.get(s, 0.0) + (1 - w) * low.get(s, 0.0) for s in set(high) | set(low)}
        return mean_atomic_number(mixed)

    def eta_at(self, value: float) -> float:
        """Backscatter coefficient at composition ``value``."""
        return backscatter_coefficient(self.mean_z_at(value))


def mass_of(formula: str) -> float:
    """Molar mass of a formula in g/mol."""
    return float(periodictable.formula(formula).mass)


@dataclass(frozen=True)
class Mineral:
    """One class of the catalogue."""

    name: str
    color: str
    mean_z: float
    synonyms: tuple[str, ...] = ()
    description: str = ""
    enabled: bool = True
    solid_solution: SolidSolution | None = None

    @property
    def eta(self) -> float:
        """Expected backscatter coefficient (brightness) of the phase."""
        return backscatter_coefficient(self.mean_z)

    @property
    def rgb(self) -> tuple[int, int, int]:
        """Colour as an (r, g, b) tuple of 0-255 ints."""
        return tuple(int(self.color[i : i + 2], 16) for i in (1, 3, 5))  # type: ignore[return-value]


@dataclass(frozen=True)
class Catalogue:
    """Ordered set of enabled minerals; class index = position in ``classes``."""

    name: str
    classes: tuple[Mineral, ...]
    disabled: tuple[Mineral, ...] = ()
    source: Path | None = None
    description: str = field(default="", compare=False)

    @cached_property
    def _lookup(self) -> dict[str, int]:
        table: dict[str, int] = {}
        for index, mineral in enumerate(self.classes):
            for label in (mineral.name, *mineral.synonyms):
                table[_key(label)] = index
        return table

    @property
    def names(self) -> list[str]:
        """Class names in index order."""
        return [m.name for m in self.classes]

    def __len__(self) -> int:
        return len(self.classes)

    def index_of(self, label: str) -> int | None:
        """Class index of a name or synonym (case and punctuation ignored), else ``None``."""
        return self._lookup.get(_key(label))

    def get(self, label: str) -> Mineral:
        """Mineral for a name or synonym.

        Raises:
            KeyError: naming the label and listing the valid class names.
        """
        index = self.index_of(label)
        if index is None:
            raise KeyError(f"unknown mineral {label!r}; catalogue classes are: {', '.join(self.names)}")
        return self.classes[index]

    def brightness_order(self) -> list[int]:
        """Class indices sorted from darkest to brightest expected BSE level."""
        return sorted(range(len(self.classes)), key=lambda i: self.classes[i].mean_z)


def _parse_mineral(raw: dict, source: Path) -> Mineral:
    where = f"{source}: mineral {raw.get('name', '?')!r}"
    unknown = set(raw) - {"name", "synonyms", "color", "formula", "oxides", "description", "enabled", "solid_solution"}
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{source}: every [[mineral]] needs a non-empty 'name'")
    color = raw.get("color", "")
    if not _HEX_COLOUR.match(color):
        raise ValueError(f"{where}: 'color' must look like '#RRGGBB', got {color!r}")
    try:
        fractions = mass_fractions(raw.get("formula"), raw.get("oxides"))
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from exc
    solid = raw.get("solid_solution")
    solid_solution = None
    if solid is not None:
        try:
            low, high = (float(v) for v in solid["range"])  # not a pair: ValueError
            low_high = (low, high)
            solid_solution = SolidSolution(
                solid["variable"], solid.get("unit", "mol %"), solid["high"], solid["low"], low_high
            )
            solid_solution.mean_z_at(low_high[0])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{where}: bad solid_solution ({exc}); needs variable, high, low, range") from exc
    return Mineral(
        name=name.strip(),
        color=color,
        mean_z=mean_atomic_number(fractions),
        synonyms=tuple(raw.get("synonyms", ())),
        description=raw.get("description", ""),
        enabled=bool(raw.get("enabled", True)),
        solid_solution=solid_solution,
    )


def load_catalogue(path: str | Path | None = None) -> Catalogue:
    """Load and validate a catalogue file (the built-in basaltic catalogue by default).

    Raises:
        ValueError: naming the file and the problem (bad TOML, duplicate names, bad colour...).
    """
    source = Path(path) if path is not None else DEFAULT_CATALOGUE
    try:
        data = tomllib.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ValueError(f"catalogue file not found: {source}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{source}: not a valid TOML catalogue ({exc})") from exc
    minerals = [_parse_mineral(raw, source) for raw in data.get("mineral", [])]
    enabled = tuple(m for m in minerals if m.enabled)
    if len(enabled) < 2:
        raise ValueError(f"{source}: a catalogue needs at least 2 enabled minerals, found {len(enabled)}")
    if len(enabled) >= IGNORE_INDEX:
        raise ValueError(f"{source}: at most {IGNORE_INDEX - 1} enabled minerals fit a uint8 mask")
    seen: dict[str, str] = {}
    for position, mineral in enumerate(enabled):
        if any(_key(mineral.name) == _key(other.name) for other in enabled[:position]):
            raise ValueError(f"{source}: mineral name {mineral.name!r} is used twice")
        for key in {_key(label) for label in (mineral.name, *mineral.synonyms)}:
            owner = seen.setdefault(key, mineral.name)
            if owner != mineral.name:
                raise ValueError(f"{source}: label {key!r} is used by both {owner!r} and {mineral.name!r}")
    header = data.get("catalogue", {})
    return Catalogue(
        name=header.get("name", source.stem),
        classes=enabled,
        disabled=tuple(m for m in minerals if not m.enabled),
        source=source,
        description=header.get("description", ""),
    )
