"""Reading user images of any common kind into one canonical RGB picture."""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from brain_tumor.errors import InvalidImageError

# Anything above this many pixels is refused before it is decoded (a 50 MP slice does not
# exist; a decompression bomb does).
MAX_PIXELS = 50_000_000
MIN_SIDE = 16
# Only decoders we mean to support are ever asked to open a file.
SUPPORTED_FORMATS = ("JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP")
# File name endings of the images (and DICOM files) the loader reads.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".dcm", ".dicom"})

ImageSource = Union[str, os.PathLike, bytes, bytearray, BinaryIO, Image.Image, np.ndarray]


def _read_bytes(source) -> tuple[bytes, str]:
    """Return the raw bytes of a path, bytes object or file object, and a name for messages."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "the uploaded data"
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise InvalidImageError(f"{path} does not exist or is not a file.")
        return path.read_bytes(), path.name
    if hasattr(source, "read"):
        data = source.read()
        if isinstance(data, str):
            raise InvalidImageError("The file was opened in text mode; open it with 'rb'.")
        return data, getattr(source, "name", "the uploaded file")
    raise InvalidImageError(
        f"Cannot read an image from a {type(source).__name__}; pass a path, bytes, "
        "a file object, a PIL image or a numpy array."
    )


def is_dicom(data: bytes) -> bool:
    return len(data) >= 132 and data[128:132] == b"DICM"


def _scale_to_uint8(array: np.ndarray) -> np.ndarray:
    """Stretch a numeric array of any range onto 0..255."""
    array = array.astype(np.float64)
    lo, hi = np.nanmin(array), np.nanmax(array)
    if not np.isfinite(lo) or not np.isfinite(hi):
        raise InvalidImageError("The image contains no finite pixel values.")
    if hi <= lo:
        return np.zeros(array.shape, dtype=np.uint8)
    return np.round((array - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def _array_to_rgb(array: np.ndarray) -> Image.Image:
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise InvalidImageError(
            f"An array of shape {array.shape} is not an image; expected H×W, H×W×3 or H×W×4."
        )
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    elif array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.floating) and np.nanmin(array) >= 0 and np.nanmax(array) <= 1:
            array = np.round(array * 255).astype(np.uint8)
        elif np.issubdtype(array.dtype, np.number):
            array = _scale_to_uint8(array)
        else:
            raise InvalidImageError(f"An array of dtype {array.dtype} is not an image.")
    if array.ndim == 3 and array.shape[2] == 4:
        return _flatten_alpha(Image.fromarray(array, "RGBA"))
    return Image.fromarray(array).convert("RGB")


def _flatten_alpha(image: Image.Image) -> Image.Image:
    # MRI backgrounds are black, so transparent regions become black too.
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _pil_to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return _array_to_rgb(_scale_to_uint8(np.asarray(image)))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        return _flatten_alpha(image)
    return image.convert("RGB")


def _check_size(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise InvalidImageError(
            f"The image is {width}×{height} pixels, over the {MAX_PIXELS // 1_000_000} megapixel "
            "limit; downscale it before uploading."
        )
    if min(width, height) < MIN_SIDE:
        raise InvalidImageError(
            f"The image is only {width}×{height} pixels; an MRI slice needs at least "
            f"{MIN_SIDE} pixels on each side."
        )


def _decode(data: bytes, name: str) -> Image.Image:
    if not data:
        raise InvalidImageError(f"{name} is empty.")
    if is_dicom(data):
        from brain_tumor.dicom import dicom_to_array

        array = dicom_to_array(data, name)
        _check_size(array.shape[1], array.shape[0])
        return _array_to_rgb(array)
    try:
        with warnings.catch_warnings():
            # Pillow only warns between 1x and 2x its own pixel limit; we refuse outright.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=SUPPORTED_FORMATS)
            _check_size(*image.size)
            image.seek(0)  # first frame of an animation
            image.load()
    except InvalidImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise InvalidImageError(
            f"{name} declares more pixels than the {MAX_PIXELS // 1_000_000} megapixel limit; "
            "downscale it before uploading."
        ) from None
    except UnidentifiedImageError:
        raise InvalidImageError(
            f"{name} is not an image in a supported format "
            "(JPEG, PNG, GIF, BMP, TIFF, WebP or DICOM)."
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise InvalidImageError(
            f"{name} could not be decoded; it looks truncated or corrupt ({error})."
        ) from None
    image = ImageOps.exif_transpose(image)
    return _pil_to_rgb(image)


def load_image(source: ImageSource) -> Image.Image:
    """Read `source` into an 8-bit RGB PIL image, upright, first frame, alpha flattened.

    `source` may be a path, bytes, a binary file object, a PIL image or a numpy array.
    Raises InvalidImageError, a ValueError with a one-sentence message, when it cannot.
    """
    if isinstance(source, Image.Image):
        _check_size(*source.size)
        try:
            source.load()
        except OSError as error:
            raise InvalidImageError(f"The image could not be decoded ({error}).") from None
        return _pil_to_rgb(ImageOps.exif_transpose(source))
    if isinstance(source, np.ndarray):
        if source.ndim >= 2:
            _check_size(source.shape[1], source.shape[0])
        return _array_to_rgb(source)
    data, name = _read_bytes(source)
    return _decode(data, name)

