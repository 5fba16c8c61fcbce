"""Mineral catalogue and the Label Studio configs generated from it."""

from label_config.catalogue import Catalogue, Mineral, SolidSolution, load_catalogue

__all__ = ["Catalogue", "Mineral", "SolidSolution", "load_catalogue"]
