"""The segmenter extension point: raw BSE image in, per-pixel class probabilities out."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from label_config.catalogue import Catalogue


class Segmenter(ABC):
    """Pixelwise mineral segmentation over all classes of a catalogue.

    Attributes:
        catalogue: The classes; output channel ``i`` is ``catalogue.classes[i]``.
        version: ``model_version`` string that changes whenever results may change.
    """

    catalogue: Catalogue
    version: str

    @abstractmethod
    def predict_proba(self, image: np.ndarray, progress: bool = False) -> np.ndarray:
        """Per-pixel class probabilities of a raw grey BSE image.

        Args:
            image: 2-D grey image of any numeric dtype, as read (normalised internally).
            progress: Show a progress bar on stderr for large images.

        Returns:
            float32 ``(C, H, W)`` with ``C = len(self.catalogue)``, summing to 1 over ``C``.
        """

    def segment(self, image: np.ndarray, progress: bool = False) -> np.ndarray:
        """uint8 ``(H, W)`` class indices: the most probable class of each pixel."""
        return np.argmax(self.predict_proba(image, progress=progress), axis=0).astype(np.uint8)

    @staticmethod
    def _validate_inputs(image: np.ndarray) -> None:
        """Raise ``ValueError`` naming the shape or dtype of an image a segmenter cannot use."""
        if not isinstance(image, np.ndarray):
            raise ValueError(f"expected a numpy array, got {type(image).__name__}")
        if image.ndim != 2:
            raise ValueError(f"expected a 2-D grey image, got shape {image.shape}")
        if 0 in image.shape:
            raise ValueError(f"image is empty (shape {image.shape})")
        if image.dtype.kind not in "uif" or image.dtype == np.float16:
            raise ValueError(f"expected an integer or float32/float64 image, got dtype {image.dtype}")
        if image.dtype.kind == "f" and not np.isfinite(image).all():
            raise ValueError("image holds NaN or infinite values")
