"""The construction config saved beside an FCN's weights: enough to rebuild and run any version.

Like smp's ``hub_mixin``, the config names the smp architecture, encoder and options
themselves (not only the registry name), plus what inference needs: the class names in
output order, the grey-level normalisation and the tiling.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
import torch

from ml_backend.fcn.architectures import create_network, get_architecture
from ml_backend.normalise import IntensityRange, percentile_range

FORMAT = "scraiber-fcn"
FORMAT_VERSION = 1
INPUT_CENTRE = 0.5  # the network sees (grey in [0, 1] - centre) / scale
INPUT_SCALE = 0.25


@dataclass(frozen=True)
class FCNConfig:
    """How to build and run one FCN.

    Attributes:
        arch: Registry name the network was built from (informative once saved).
        smp_arch, encoder, options: What ``create_network`` is called with.
        classes: Class names, index order = output channel order.
        percentiles: Grey-level percentiles of the whole image mapped to 0 and 1.
        tile, overlap, halo: Inference tiling (pixels).
        training: Provenance (steps, validation IoU, data fingerprint, command); not used to run.
    """

    arch: str
    smp_arch: str
    encoder: str
    classes: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)
    percentiles: tuple[float, float] = (0.5, 99.5)
    tile: int = 1024
    overlap: int = 64
    halo: int = 0
    training: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.classes:
            raise ValueError("an FCN config needs at least one class name")
        if not 0 <= self.percentiles[0] < self.percentiles[1] <= 100:
            raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {self.percentiles}")
        if self.tile < 32 or self.tile % 32 or not 0 <= self.overlap < self.tile or self.halo < 0:
            raise ValueError(
                f"need a tile that is a multiple of 32 (>= 32), 0 <= overlap < tile and halo >= 0; "
                f"got tile {self.tile}, overlap {self.overlap}, halo {self.halo}"
            )

    @classmethod
    def for_architecture(cls, arch: str, classes: tuple[str, ...] | list[str], **changes: Any) -> FCNConfig:
        """The config of registry architecture ``arch`` for ``classes`` (other fields from ``changes``).

        Raises:
            ValueError: for an unknown architecture, listing the valid ones.
        """
        spec = get_architecture(arch)
        return cls(arch, spec.smp_arch, spec.encoder, tuple(classes), dict(spec.options), **changes)

    def build(self) -> torch.nn.Module:
        """A new randomly initialised network of this config."""
        return create_network(self.smp_arch, self.encoder, len(self.classes), self.options)

    def intensity(self, image: np.ndarray) -> IntensityRange:
        """The grey-level range of a whole image, computed once and applied to every tile."""
        return percentile_range(image, *self.percentiles)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict, with the format name and version."""
        data = asdict(self)
        data["classes"] = list(self.classes)
        data["percentiles"] = list(self.percentiles)
        return {"format": FORMAT, "format_version": FORMAT_VERSION, **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "model config") -> FCNConfig:
        """Read a dict written by :meth:`to_dict`.

        Raises:
            ValueError: naming ``source`` when the format, a key or a value is wrong.
        """
        if data.get("format") != FORMAT:
            raise ValueError(
                f"{source}: not a scrAiber FCN config (format {data.get('format')!r}, expected {FORMAT!r})"
            )
        if data.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{source}: FCN config format version {data.get('format_version')!r} is not {FORMAT_VERSION}"
            )
        valid = {f.name for f in fields(cls)}
        body = {key: value for key, value in data.items() if key not in ("format", "format_version")}
        unknown = sorted(set(body) - valid)
        if unknown:
            raise ValueError(f"{source}: unknown FCN config key(s) {unknown}; valid keys: {', '.join(sorted(valid))}")
        try:
            body["classes"] = tuple(body["classes"])
            body["percentiles"] = tuple(body.get("percentiles", (0.5, 99.5)))
            return cls(**body)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{source}: incomplete or malformed FCN config ({exc})") from None
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from None


def network_input(tile: np.ndarray, intensity: IntensityRange) -> np.ndarray:
    """float32 network input of raw grey pixels: the image range to [0, 1], then centred and scaled."""
    x = intensity.apply(tile)
    x -= np.float32(INPUT_CENTRE)
    x *= np.float32(1.0 / INPUT_SCALE)
    return x
