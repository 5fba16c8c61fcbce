"""The model the backend serves: MLflow champion, else the shipped FCN, else clustering.

The champion alias is polled at most every ``poll_seconds``; when it moves, the new
version is downloaded (safetensors + construction config, never pickle) and swapped
in. Every FCN is named by its weights, ``fcn-`` + 12 hex digits of their SHA-256, wherever
it is served from: the shipped model registered as the first champion keeps its name,
a new champion gets a new one (so Label Studio asks for fresh predictions), and
predictions, ``/status`` and Label Studio's model card all say the same. The registry
version is reported beside it (:attr:`ServedModel.champion`). A registry that cannot be
reached keeps the current model.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from label_config import Catalogue
from ml_backend.fcn import FCNSegmenter, shipped_model_path
from ml_backend.segmenters import Segmenter, create_segmenter

log = logging.getLogger(__name__)


class ServedModel:
    """Callable returning the segmenter to serve now (thread-safe, hot-reloading).

    Args:
        catalogue: The classes served.
        registry: Returns an object with ``champion_version() -> int | None`` and
            ``download_model(version) -> Path`` (``active_learning.registry.ModelRegistry``);
            None: no registry (shipped model or clustering only).
        model_name: Registered model name, used in ``model_version``.
        poll_seconds: Least time between two looks at the champion alias.
        fcn_options: ``device``, ``threads``... for :class:`FCNSegmenter`.
        clock: Monotonic time source (tests).
    """

    def __init__(
        self,
        catalogue: Catalogue,
        registry: Callable[[], Any] | None,
        model_name: str,
        poll_seconds: float = 30.0,
        fcn_options: dict[str, Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.catalogue = catalogue
        self._registry_factory = registry
        self._registry: Any = None
        self.model_name = model_name
        self.poll_seconds = poll_seconds
        self.fcn_options = fcn_options or {}
        self._clock = clock
        self._lock = threading.Lock()
        self._segmenter: Segmenter | None = None
        self._champion: int | None = None
        self._checked_at = -float("inf")

    def __call__(self) -> Segmenter:
        with self._lock:
            if self._segmenter is None or self._clock() - self._checked_at >= self.poll_seconds:
                self._checked_at = self._clock()
                self._refresh()
            assert self._segmenter is not None  # _refresh always leaves a model to serve
            return self._segmenter

    @property
    def champion(self) -> int | None:
        """Registry version being served, or None (shipped model or clustering)."""
        return self._champion

    def _refresh(self) -> None:
        version = self._champion_version()
        if version is not None and version != self._champion:
            try:
                path = self._registry.download_model(version)
                segmenter = FCNSegmenter(self.catalogue, path, **self.fcn_options)
            except (OSError, ValueError, KeyError) as exc:
                if self._segmenter is None:  # nothing served yet: serve the fallback until the champion loads
                    self._segmenter = self._fallback()
                log.warning("cannot load champion v%s (%s); keeping %s", version, exc, self._describe())
                return
            self._segmenter, self._champion = segmenter, version
            log.info("serving %s (%s v%s)", segmenter.version, self.model_name, version)
        elif self._segmenter is None:
            self._segmenter = self._fallback()
            log.info("serving %s (no champion in the registry)", self._segmenter.version)

    def _champion_version(self) -> int | None:
        if self._registry_factory is None:
            return None
        try:
            self._registry = self._registry or self._registry_factory()
            return self._registry.champion_version()
        except Exception as exc:  # MLflow raises many types (MlflowException, requests, sqlalchemy)
            log.warning("model registry unreachable (%s: %s); keeping %s", type(exc).__name__, exc, self._describe())
            return self._champion

    def _fallback(self) -> Segmenter:
        if shipped_model_path(self.catalogue) is not None:
            return FCNSegmenter(self.catalogue, **self.fcn_options)
        return create_segmenter("unsupervised", self.catalogue)

    def _describe(self) -> str:
        return self._segmenter.version if self._segmenter is not None else "the fallback model"
