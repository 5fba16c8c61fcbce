"""Segmenters by name: ``create_segmenter("unsupervised", catalogue, n_clusters=5)``.

To add one, implement :class:`~ml_backend.segmenters.base.Segmenter` in its own module
and add a ``name: "module:Class"`` line to ``_REGISTRY``; classes are imported only when
asked for, so a heavy one (torch) costs nothing until used.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from importlib import import_module
from typing import Any

from label_config.catalogue import Catalogue
from ml_backend.segmenters.base import Segmenter

_REGISTRY: dict[str, str] = {
    "unsupervised": "ml_backend.segmenters.unsupervised:UnsupervisedSegmenter",
    "fcn": "ml_backend.fcn.segmenter:FCNSegmenter",
}

__all__ = ["Segmenter", "create_segmenter", "get_segmenter_class", "segmenter_names"]


def segmenter_names() -> list[str]:
    """Names of the registered segmenters, sorted."""
    return sorted(_REGISTRY)


def get_segmenter_class(name: str) -> type[Segmenter]:
    """The segmenter class registered as ``name``.

    Raises:
        ValueError: for an unknown name, listing the valid ones.
    """
    try:
        module, _, attribute = _REGISTRY[name].partition(":")
    except KeyError:
        raise ValueError(
            f"unknown segmentation method {name!r}; valid methods: {', '.join(segmenter_names())}"
        ) from None
    return getattr(import_module(module), attribute)


def create_segmenter(name: str, catalogue: Catalogue, **options: Any) -> Segmenter:
    """Build the segmenter ``name`` for ``catalogue`` with keyword ``options``.

    Raises:
        ValueError: for an unknown name or an option that segmenter does not take.
    """
    # Concrete segmenters take the catalogue first; the abstract base declares no constructor.
    cls: Callable[..., Segmenter] = get_segmenter_class(name)
    try:
        inspect.signature(cls).bind(catalogue, **options)
    except TypeError as exc:
        raise ValueError(f"segmentation method {name!r} does not accept these options ({exc})") from None
    return cls(catalogue, **options)
