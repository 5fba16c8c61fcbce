"""Registry of the fully convolutional networks scrAiber can train: name -> smp architecture + encoder.

Every network takes one grey channel and has one output channel per catalogue class; it is
always built with random weights (``encoder_weights=None``: nothing is downloaded).
The smp architecture, encoder and options are copied into each model's construction
config, so a saved model rebuilds even if an entry here changes later.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class Architecture:
    """One registered network.

    Attributes:
        smp_arch: ``segmentation_models_pytorch.create_model`` architecture name.
        encoder: smp encoder name.
        options: Further keyword arguments of the smp architecture (decoder widths, ...).
        description: One line for listings.
    """

    smp_arch: str
    encoder: str
    options: dict[str, Any] = field(default_factory=dict)
    description: str = ""


_NARROW_UNET = {"decoder_channels": [128, 64, 32, 16, 16]}

_ARCHITECTURES: dict[str, Architecture] = {
    "unet-resnet18": Architecture("Unet", "resnet18", {}, "U-Net, ResNet-18 encoder (14.3 M parameters)"),
    "unet-resnet18-narrow": Architecture(
        "Unet", "resnet18", _NARROW_UNET, "U-Net, ResNet-18 encoder, half-width decoder (12.5 M)"
    ),
    "unet-mobilenet_v2": Architecture(
        "Unet", "mobilenet_v2", _NARROW_UNET, "U-Net, MobileNetV2 encoder, half-width decoder (4.1 M)"
    ),
    "deeplabv3plus-resnet18": Architecture("DeepLabV3Plus", "resnet18", {}, "DeepLabV3+, ResNet-18 encoder (12.3 M)"),
    "fpn-resnet18": Architecture("FPN", "resnet18", {}, "FPN, ResNet-18 encoder (13.0 M)"),
    "fpn-mobilenet_v2": Architecture(
        "FPN",
        "mobilenet_v2",
        {"decoder_pyramid_channels": 128, "decoder_segmentation_channels": 64},
        "FPN, MobileNetV2 encoder, narrow decoder (2.8 M)",
    ),
}


def architecture_names() -> list[str]:
    """Names of the registered networks, sorted."""
    return sorted(_ARCHITECTURES)


def get_architecture(name: str) -> Architecture:
    """The registered network ``name``.

    Raises:
        ValueError: for an unknown name, listing the valid ones.
    """
    try:
        return _ARCHITECTURES[name]
    except KeyError:
        raise ValueError(
            f"unknown FCN architecture {name!r}; valid architectures: {', '.join(architecture_names())}"
        ) from None


def create_network(
    smp_arch: str, encoder: str, n_classes: int, options: dict[str, Any] | None = None
) -> torch.nn.Module:
    """A randomly initialised smp network with 1 input channel and ``n_classes`` outputs.

    Raises:
        ValueError: if smp does not know the architecture, encoder or an option.
    """
    import segmentation_models_pytorch as smp  # heavy (timm): only when a network is built

    options = {key: tuple(value) if isinstance(value, list) else value for key, value in (options or {}).items()}
    try:
        with warnings.catch_warnings():  # smp warns that random init was asked for: it was
            warnings.simplefilter("ignore")
            return smp.create_model(
                smp_arch, encoder_name=encoder, encoder_weights=None, in_channels=1, classes=n_classes, **options
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"cannot build smp {smp_arch} with encoder {encoder!r} and options {options}: {exc}") from None
