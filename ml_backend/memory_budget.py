"""The memory a prediction may take, decided from the image header before anything is decoded.

A 30000 x 30000 px PNG is 875 KB on disk and passes any pixel limit meant against
decompression bombs, but its class probabilities alone are 20 GiB. So every image a
prediction reads is first sized from its header (:func:`~ml_backend.bse_io.probe_bse`):
its cost is the decoding (:attr:`~ml_backend.bse_io.ImageHeader.decode_bytes`) plus
``bytes_per_pixel`` for the prediction itself, measured on this code (peak RSS above the
process's resident set, 2048-4096 px, six classes; ``docs/security.md``):

* FCN or unsupervised clustering: 82-116 B/px; :data:`SEGMENTER_BYTES_PER_PIXEL` = 128;
* with a project's fast learner on top (its FCN features): about 300 B/px;
  :data:`FAST_LEARNER_BYTES_PER_PIXEL` = 384.

An image that costs more than the whole budget is refused (that task gets an error naming
its size and what to do); smaller ones reserve their cost while they are predicted, and a
prediction that does not fit beside the running ones waits for them (at most
``wait_seconds``, then that task fails as "busy"). The budget is per process; the web
workers share the machine's budget (:func:`default_budget_bytes`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from ml_backend.bse_io import ImageHeader

SEGMENTER_BYTES_PER_PIXEL = 128
FAST_LEARNER_BYTES_PER_PIXEL = 384
_GIB = 2**30


class ImageTooLargeError(ValueError):
    """An image would need more memory to predict than the backend's whole budget."""


class BudgetBusyError(ValueError):
    """Predictions already running left no room for this one within the wait."""


def memory_limit_bytes() -> int:
    """The memory this process may use: the cgroup limit (containers) or the machine's RAM."""
    total = psutil.virtual_memory().total
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            value = Path(path).read_text().strip()
        except OSError:
            continue
        if value.isdigit() and 0 < int(value) < total:
            return int(value)
    return total


def default_budget_bytes(processes: int) -> int:
    """Each of ``processes`` web workers' share of half the memory limit (the rest: models, OS, worker)."""
    return memory_limit_bytes() // 2 // max(1, processes)


class MemoryBudget:
    """A per-process budget of bytes that predictions reserve before they decode their image.

    Args:
        total_bytes: The budget of this process.
        bytes_per_pixel: Cost of predicting one pixel (beyond decoding it).
        wait_seconds: Longest wait for room beside running predictions.
    """

    def __init__(self, total_bytes: int, bytes_per_pixel: float, wait_seconds: float = 60.0) -> None:
        if total_bytes <= 0 or bytes_per_pixel <= 0 or wait_seconds < 0:
            raise ValueError(
                f"memory budget needs total_bytes > 0, bytes_per_pixel > 0, wait_seconds >= 0; "
                f"got {total_bytes}, {bytes_per_pixel}, {wait_seconds}"
            )
        self.total_bytes = int(total_bytes)
        self.bytes_per_pixel = float(bytes_per_pixel)
        self.wait_seconds = wait_seconds
        self._used = 0
        self._room = threading.Condition()

    @property
    def max_pixels(self) -> int:
        """The largest 16-bit grey image that fits the budget alone."""
        return int(self.total_bytes // (self.bytes_per_pixel + ImageHeader(1, 1, 1, 2).decode_bytes))

    @property
    def used_bytes(self) -> int:
        """Bytes reserved by running predictions now."""
        return self._used

    def cost(self, header: ImageHeader) -> int:
        """Bytes that decoding and predicting this image take at peak."""
        return header.decode_bytes + int(header.pixels * self.bytes_per_pixel)

    @contextmanager
    def reserve(self, header: ImageHeader, name: str) -> Iterator[int]:
        """Hold this image's cost while it is decoded and predicted; yields the bytes reserved.

        Raises:
            ImageTooLargeError: the image costs more than the whole budget (the message names
                its size and the way out: tiles or the streaming ``scraiber segment``).
            BudgetBusyError: no room came free within ``wait_seconds``.
        """
        cost = self.cost(header)
        if cost > self.total_bytes:
            raise ImageTooLargeError(
                f"{name}: {header.width} x {header.height} px ({header.pixels / 1e6:.0f} MPix) needs about "
                f"{cost / _GIB:.1f} GiB to predict, more than this backend's {self.total_bytes / _GIB:.1f} GiB "
                f"per web worker (SCRAIBER_PREDICT_MEMORY_MB; at most {self.max_pixels / 1e6:.0f} MPix per image); "
                "import it as tiles (scraiber ingest) or segment it with scraiber segment (streamed)"
            )
        deadline = time.monotonic() + self.wait_seconds
        with self._room:
            while self._used + cost > self.total_bytes:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BudgetBusyError(
                        f"{name}: the backend is busy with other predictions ({self._used / _GIB:.1f} of "
                        f"{self.total_bytes / _GIB:.1f} GiB in use); ask again later"
                    )
                self._room.wait(left)
            self._used += cost
        try:
            yield cost
        finally:
            with self._room:
                self._used -= cost
                self._room.notify_all()


def budget_from_mb(megabytes: int | None, processes: int, bytes_per_pixel: float) -> MemoryBudget:
    """The budget of one web worker: ``megabytes`` (the whole backend's) or the default, shared by ``processes``."""
    total = megabytes * 2**20 // max(1, processes) if megabytes else default_budget_bytes(processes)
    return MemoryBudget(total, bytes_per_pixel)
