"""Reading a photo the one safe way: an allow-list of formats, a pixel limit checked before decoding, the EXIF
orientation applied, RGB out.

The site, the API, ``analyze_image`` and ``preprocess_images`` all decode through :func:`read_image`, so a
decompression bomb is refused everywhere with the same message, and a phone photo taken upright is upright for the
detector and the network whichever tool reads it.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .defaults import DEFAULT_MAX_PIXELS, IMAGE_FORMATS, IMAGE_SUFFIXES
from .errors import EmptyImageFile, ImageNotFound, ImageTooLarge, ImageTooSmall, NotAnImage

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_FORMATS",
    "IMAGE_SUFFIXES",
    "ImageInfo",
    "inspect_image",
    "is_image_name",
    "read_image",
]

MIN_SIDE = 32  # smaller than the smallest face the detectors look for


@dataclass(frozen=True)
class ImageInfo:
    """What a photo is, as results show it (the counterpart of a video's probe)."""

    width: int
    height: int
    format: str
    rotated: bool  # the EXIF orientation turned or flipped it
    size_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "image",
            "width": self.width,
            "height": self.height,
            "format": self.format,
            "exif_rotated": self.rotated,
            "size_bytes": self.size_bytes,
        }


def is_image_name(name: str) -> bool:
    """Whether a file name ends like a photo this project reads."""
    return Path(name).suffix.lower() in IMAGE_SUFFIXES


def _open_checked(path: Path, max_pixels: int) -> Image.Image:
    """Open (headers only) and check format and size before a single pixel is decoded."""
    try:
        # Pillow's own bomb guard warns at its limit and raises at twice it; ours is checked explicitly below.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path, formats=list(IMAGE_FORMATS))
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(_too_large(path.name, None, max_pixels)) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise NotAnImage(
            f"'{path.name}' is not a photo this app can read: only JPEG, PNG and WebP files are accepted "
            "(a renamed or damaged file?)."
        ) from exc
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise ImageTooLarge(_too_large(path.name, (width, height), max_pixels))
    return image


def _too_large(name: str, size: tuple[int, int] | None, max_pixels: int) -> str:
    dimensions = f" ({size[0]} x {size[1]} = {size[0] * size[1] / 1e6:.0f} megapixels)" if size else ""
    return (
        f"'{name}' is too large{dimensions}: photos of up to {max_pixels / 1e6:.0f} megapixels are accepted. "
        "Scale it down and upload it again."
    )


def _existing(path: Path) -> int:
    """The file's size; ImageNotFound or EmptyImageFile when there is nothing to read."""
    if not path.is_file():
        raise ImageNotFound(f"Photo '{path}' does not exist.")
    size_bytes = path.stat().st_size
    if size_bytes == 0:
        raise EmptyImageFile(f"'{path.name}' is empty (0 bytes).")
    return size_bytes


def _too_small(name: str, width: int, height: int) -> ImageTooSmall:
    return ImageTooSmall(
        f"'{name}' is {width} x {height} pixels: too small to hold a face (at least {MIN_SIDE} px a side)."
    )


def inspect_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """What a photo is, from its headers alone (format, size, EXIF orientation): the cheap check an upload gets in
    the web request and the command line before the network loads. Damaged pixel data is found by ``read_image``."""
    path = Path(path)
    size_bytes = _existing(path)
    with _open_checked(path, max_pixels) as image:
        orientation = image.getexif().get(0x0112, 1)
        width, height = image.size
        fmt = str(image.format)
    if orientation in (5, 6, 7, 8):  # turned by a quarter: upright, width and height swap
        width, height = height, width
    if min(width, height) < MIN_SIDE:
        raise _too_small(path.name, width, height)
    return ImageInfo(width, height, fmt, orientation not in (0, 1), size_bytes)


def read_image(path: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, ImageInfo]:
    """The photo as an upright ``(H, W, 3)`` uint8 RGB array, and its description; an ImageError says what is wrong."""
    path = Path(path)
    size_bytes = _existing(path)
    # Pillow's own default, restored on every call: face_recognition sets this flag when it is imported, and with it
    # a truncated photo decodes into grey instead of being refused as damaged.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    image = _open_checked(path, max_pixels)
    try:
        with image:
            orientation = image.getexif().get(0x0112, 1)
            fmt = str(image.format)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                upright = ImageOps.exif_transpose(image)
                rgb = np.asarray(upright.convert("RGB"))
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(_too_large(path.name, image.size, max_pixels)) from exc
    except (OSError, ValueError, SyntaxError) as exc:  # truncated data: the header was fine, the pixels are not
        raise NotAnImage(f"'{path.name}' is damaged: its pixels do not decode ({exc}).") from exc
    height, width = rgb.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise _too_small(path.name, width, height)
    return np.ascontiguousarray(rgb), ImageInfo(width, height, fmt, orientation not in (0, 1), size_bytes)
