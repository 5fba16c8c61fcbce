"""Name -> implementation registries, imported lazily, whose errors list the valid names.

Entries are ``"module:attribute"`` strings, so a heavy implementation (torch, scikit-learn)
costs nothing until it is asked for.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any


class LazyRegistry:
    """A registry of ``name -> "module:attribute"``.

    Args:
        kind: What the entries are, for error messages ("generator family", ...).
        entries: The registered names and where their implementations live.
    """

    def __init__(self, kind: str, entries: dict[str, str]) -> None:
        self.kind = kind
        self._entries = dict(entries)

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def get(self, name: str) -> Any:
        """The implementation registered as ``name``.

        Raises:
            ValueError: for an unknown name, listing the valid ones.
        """
        try:
            module, _, attribute = self._entries[name].partition(":")
        except (KeyError, TypeError):
            raise ValueError(f"unknown {self.kind} {name!r}; valid: {', '.join(self.names())}") from None
        return getattr(import_module(module), attribute)
