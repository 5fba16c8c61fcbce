"""Reading BSE images (TIFF, BigTIFF, tiled TIFF, PNG) with their pixel size."""

from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import imagecodecs
import numpy as np
import tifffile

log = logging.getLogger(__name__)

PixelSizeSource = Literal["fei", "zeiss", "user", "unknown"]
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_UNITS_TO_UM = {"pm": 1e-6, "nm": 1e-3, "um": 1.0, "µm": 1.0, "μm": 1.0, "mm": 1e3, "m": 1e6}


class BSEReadError(ValueError):
    """An image could not be used; the message names the file and the problem."""


class RGBConversionWarning(UserWarning):
    """An RGB(A) export of a BSE image was converted to grey."""


@dataclass(frozen=True)
class BSEImage:
    """A grey BSE image and what is known of its scale.

    Attributes:
        pixels: 2-D array, uint8 or uint16 as stored (other dtypes as float32).
        pixel_size_um: Pixel size in micrometres, or ``None`` when unknown.
        pixel_size_source: Where the pixel size came from.
        path: The file read.
    """

    pixels: np.ndarray
    pixel_size_um: float | None
    pixel_size_source: PixelSizeSource
    path: Path

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        return self.pixels.shape  # type: ignore[return-value]


@dataclass(frozen=True)
class ImageHeader:
    """What an image file's header says, read before any pixel is decoded.

    Attributes:
        height: Rows.
        width: Columns.
        channels: Samples per pixel as stored (1 grey, 2 grey + alpha, 3 RGB, 4 RGBA).
        itemsize: Bytes per sample as decoded (1, 2, 4 or 8).
    """

    height: int
    width: int
    channels: int
    itemsize: int

    @property
    def pixels(self) -> int:
        """Pixels of the image."""
        return self.height * self.width

    @property
    def decode_bytes(self) -> int:
        """Peak bytes of decoding into a grey array (RGB(A) is averaged in float32)."""
        grey = 4 * self.channels + 4 if self.channels >= 3 else 0  # float32 copy of RGB and its mean
        return self.pixels * (self.channels * self.itemsize + grey + 4)  # + a float32 copy at most


def probe_bse(data: bytes, name: str) -> ImageHeader:
    """The size of the image held in ``data`` from its header alone (nothing is decoded).

    Raises:
        BSEReadError: the bytes are not a TIFF or PNG image, or the header is unreadable.
    """
    path = Path(name)
    head = data[:8]
    if not head:
        raise BSEReadError(f"{path}: file is empty")
    if head[:4] in _TIFF_MAGIC:
        try:
            with tifffile.TiffFile(io.BytesIO(data)) as tif:
                if not tif.series:
                    raise BSEReadError(f"{path}: TIFF holds no image")
                series = tif.series[0]
                shape = _tiff_plane_shape(series.shape, tif.pages.first.shape)
                return ImageHeader(shape[0], shape[1], shape[2] if len(shape) > 2 else 1, series.dtype.itemsize)
        except BSEReadError:
            raise
        except Exception as exc:  # tifffile raises many types on a broken header
            raise BSEReadError(f"{path}: unreadable or truncated TIFF ({type(exc).__name__})") from None
    if head == _PNG_MAGIC:
        return _png_header(path, data)
    raise BSEReadError(f"{path}: not a TIFF or PNG image")


def _tiff_plane_shape(shape: tuple[int, ...], first_page: tuple[int, ...]) -> tuple[int, ...]:
    """The shape :func:`_read_tiff` decodes: the series, or its first plane when it has more dimensions."""
    return first_page if len(shape) > 2 and shape[-1] not in (3, 4) else shape


def _png_header(path: Path, data: bytes) -> ImageHeader:
    if len(data) < 33:
        raise BSEReadError(f"{path}: truncated PNG (only {len(data)} bytes)")
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    depth, colour = data[24], data[25]
    channels = {0: 1, 2: 3, 3: 4, 4: 2, 6: 4}.get(colour, 4)  # a palette decodes to RGB(A)
    return ImageHeader(height, width, channels, 2 if depth == 16 else 1)


def read_bse(path: str | Path, pixel_size_um: float | None = None, max_pixels: int = 2**30) -> BSEImage:
    """Read a BSE image and its pixel size.

    The pixel size comes from the SEM metadata the file carries (Thermo Fisher/FEI or
    Zeiss TIFF tags), else from ``pixel_size_um``, else it is recorded as unknown.

    Args:
        path: TIFF (classic, BigTIFF, tiled, compressed) or PNG file.
        pixel_size_um: Pixel size given by the user, used when the file has none.
        max_pixels: Decompression-bomb limit; larger images are refused before decoding.

    Raises:
        BSEReadError: naming the file and the problem (missing, empty, truncated,
            not an image, too large, unsupported layout).
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            head = handle.read(8)
    except FileNotFoundError:
        raise BSEReadError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise BSEReadError(f"{path}: is a directory, not an image file") from None
    except OSError as exc:
        raise BSEReadError(f"{path}: cannot open ({exc.strerror or exc})") from None
    return _decode(path, head, lambda: path, lambda: path.read_bytes(), pixel_size_um, max_pixels)


def decode_bse(data: bytes, name: str, pixel_size_um: float | None = None, max_pixels: int = 2**30) -> BSEImage:
    """Decode a BSE image held in memory (e.g. downloaded from Label Studio or S3).

    Same behaviour and errors as :func:`read_bse`; ``name`` is used in messages.
    """
    return _decode(Path(name), data[:8], lambda: io.BytesIO(data), lambda: data, pixel_size_um, max_pixels)


def _decode(path, head, tiff_source, png_bytes, pixel_size_um, max_pixels) -> BSEImage:
    if pixel_size_um is not None and not (np.isfinite(pixel_size_um) and pixel_size_um > 0):
        raise BSEReadError(f"{path}: pixel size must be a positive number of micrometres, got {pixel_size_um}")
    if not head:
        raise BSEReadError(f"{path}: file is empty")
    if head[:4] in _TIFF_MAGIC:
        pixels, meta_size, source = _read_tiff(path, tiff_source(), max_pixels)
    elif head == _PNG_MAGIC:
        pixels, meta_size, source = _read_png(path, png_bytes(), max_pixels), None, "unknown"
    else:
        raise BSEReadError(f"{path}: not a TIFF or PNG image")  # never echo the bytes: they may be a secret
    if meta_size is None and pixel_size_um is not None:
        meta_size, source = float(pixel_size_um), "user"
    elif meta_size is not None and pixel_size_um is not None and not np.isclose(meta_size, pixel_size_um, rtol=0.01):
        log.warning("%s: metadata pixel size %.4g um overrides the given %.4g um", path, meta_size, pixel_size_um)
    return BSEImage(_to_grey(pixels, path), meta_size, source if meta_size is not None else "unknown", path)


def _check_size(path: Path, shape: tuple[int, ...], max_pixels: int) -> None:
    pixels = int(np.prod(shape[:2], dtype=np.int64))
    if pixels == 0:
        raise BSEReadError(f"{path}: image has no pixels (shape {shape})")
    if pixels > max_pixels:
        raise BSEReadError(
            f"{path}: image of {shape[1]} x {shape[0]} px ({pixels / 1e6:.0f} MPix) exceeds the limit of "
            f"{max_pixels / 1e6:.0f} MPix (SCRAIBER_MAX_IMAGE_PIXELS); raise it if the file is genuine"
        )


def _read_tiff(path: Path, source, max_pixels: int) -> tuple[np.ndarray, float | None, PixelSizeSource]:
    try:
        with tifffile.TiffFile(source) as tif:
            if not tif.series:
                raise BSEReadError(f"{path}: TIFF holds no image")
            series = tif.series[0]
            shape = series.shape
            if len(shape) > 2 and shape[-1] not in (3, 4):
                warnings.warn(f"{path}: {len(shape)}-D TIFF {shape}; reading its first plane only", stacklevel=3)
                page = series.pages[0] if series.pages else tif.pages.first
                if page is None:
                    raise BSEReadError(f"{path}: TIFF holds no image")
                shape = _tiff_plane_shape(shape, page.shape)
                _check_size(path, shape, max_pixels)
                pixels = page.asarray()
            else:
                _check_size(path, shape, max_pixels)
                pixels = series.asarray()
            size, source = tiff_pixel_size_um(tif)
    except BSEReadError:
        raise
    except (
        tifffile.TiffFileError,
        ValueError,
        OSError,
        EOFError,
        IndexError,
        KeyError,
        imagecodecs.DelayedImportError,
    ) as exc:
        raise BSEReadError(f"{path}: unreadable or truncated TIFF ({exc})") from None
    except Exception as exc:  # codec errors have many types (imagecodecs.*Error)
        raise BSEReadError(f"{path}: cannot decode TIFF data ({type(exc).__name__}: {exc})") from None
    return pixels, size, source


def tiff_pixel_size_um(tif: tifffile.TiffFile) -> tuple[float | None, PixelSizeSource]:
    """Pixel size in micrometres from Thermo Fisher/FEI or Zeiss SEM tags, if present."""
    fei = tif.fei_metadata
    if fei:
        for section in ("Scan", "EScan", "Image"):
            width = fei.get(section, {}).get("PixelWidth")
            if isinstance(width, (int, float)) and width > 0:
                return float(width) * 1e6, "fei"
    sem = tif.sem_metadata
    if sem:
        entry = sem.get("ap_pixel_size") or sem.get("ap_image_pixel_size")
        if isinstance(entry, tuple) and len(entry) == 3 and isinstance(entry[1], (int, float)) and entry[1] > 0:
            factor = _UNITS_TO_UM.get(str(entry[2]).strip())
            if factor is not None:
                return float(entry[1]) * factor, "zeiss"
    return None, "unknown"


def _read_png(path: Path, data: bytes, max_pixels: int) -> np.ndarray:
    header = _png_header(path, data)
    _check_size(path, (header.height, header.width), max_pixels)
    try:
        return imagecodecs.png_decode(data)
    except Exception as exc:  # imagecodecs.PngError and friends
        raise BSEReadError(f"{path}: unreadable or truncated PNG ({exc})") from None


def _to_grey(pixels: np.ndarray, path: Path) -> np.ndarray:
    if pixels.ndim == 3 and pixels.shape[-1] in (3, 4):
        rgb = pixels[..., :3]
        warnings.warn(
            f"{path}: RGB{'A' if pixels.shape[-1] == 4 else ''} image converted to grey (mean of R, G, B); "
            "export BSE images as grey TIFF to keep full precision",
            RGBConversionWarning,
            stacklevel=3,
        )
        grey = rgb.astype(np.float32).mean(axis=-1)
        pixels = np.rint(grey).astype(pixels.dtype) if pixels.dtype in (np.uint8, np.uint16) else grey
    elif pixels.ndim == 3 and pixels.shape[-1] in (1, 2):  # grey (+ alpha)
        pixels = pixels[..., 0]
    if pixels.ndim != 2:
        raise BSEReadError(f"{path}: expected a 2-D grey image, got an array of shape {pixels.shape}")
    if pixels.dtype in (np.uint8, np.uint16):
        return pixels
    if pixels.dtype.kind in "iuf":
        return pixels.astype(np.float32)
    raise BSEReadError(f"{path}: unsupported pixel type {pixels.dtype}")
