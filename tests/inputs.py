"""Every kind of input a user can send, generated on the fly: (name, bytes, expected).

expected is "ok" for files that must be classified, or a fragment of the one-sentence error.
Used by the API, CLI and app tests alike.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from tests.conftest import EXAMPLES
from tests.test_dicom import make_dicom
from tests.test_images import encode, png_header_only


def _slice() -> Image.Image:
    return Image.open(EXAMPLES[0]).convert("RGB")


def _animated_gif() -> bytes:
    frames = [_slice().convert("P"), Image.new("P", (224, 224), 3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    return buffer.getvalue()


def _exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 8
    return encode(_slice().rotate(-90, expand=True), "JPEG", exif=exif.tobytes())


def user_inputs() -> list[tuple[str, bytes, str]]:
    grey = _slice().convert("L")
    png16 = Image.fromarray(np.asarray(grey).astype(np.uint16) * 257)
    return [
        ("not-an-image.jpg", b"%PDF-1.4 a report, not a picture", "not an image"),
        ("empty.png", b"", "empty"),
        ("truncated.jpg", EXAMPLES[0].read_bytes()[:1500], "truncated or corrupt"),
        ("truncated.png", encode(_slice(), "PNG")[:4000], "truncated or corrupt"),
        ("one-pixel.png", encode(Image.new("RGB", (1, 1)), "PNG"), "only 1×1 pixels"),
        ("bomb.png", png_header_only(30000, 30000), "megapixel limit"),
        ("sixteen-bit.png", encode(png16, "PNG"), "ok"),
        ("rgba.png", encode(_slice().convert("RGBA"), "PNG"), "ok"),
        ("palette.png", encode(_slice().convert("P"), "PNG"), "ok"),
        ("cmyk.jpg", encode(_slice().convert("CMYK"), "JPEG"), "ok"),
        ("exif-rotated.jpg", _exif_rotated(), "ok"),
        ("animated.gif", _animated_gif(), "ok"),
        ("slice.webp", encode(_slice(), "WEBP", lossless=True), "ok"),
        ("slice.tiff", encode(_slice(), "TIFF"), "ok"),
        ("slice.bmp", encode(_slice(), "BMP"), "ok"),
        ("jpeg-named.png", EXAMPLES[0].read_bytes(), "ok"),
        ("slice.dcm", make_dicom(np.asarray(grey, np.uint16) * 16), "ok"),
        ("portable-pixmap.ppm", encode(_slice(), "PPM"), "not an image in a supported format"),
    ]
