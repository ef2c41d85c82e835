"""load_image: every source type and pixel format becomes the same RGB picture; bad input, one sentence."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from brain_tumor import InvalidImageError, load_image
from tests.helpers import EXAMPLES, encode, one_sentence, png_header_only


@pytest.fixture(scope="module")
def grey() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(40, 60), dtype=np.uint8)


def test_every_source_type_gives_the_same_rgb(tmp_path, grey):
    path = tmp_path / "slice.png"
    Image.fromarray(grey).save(path)
    sources = [path, str(path), path.read_bytes(), open(path, "rb"), Image.open(path), grey, grey[..., None]]
    results = [np.asarray(load_image(s)) for s in sources]
    for result in results:
        assert result.shape == (40, 60, 3) and result.dtype == np.uint8
        np.testing.assert_array_equal(result, results[0])
    np.testing.assert_array_equal(results[0][..., 0], grey)  # grey becomes R = G = B


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "CMYK", "LA", "I;16"])
def test_pixel_modes_become_rgb(mode, grey):
    image = Image.fromarray(grey).convert("RGB").convert(mode) if mode != "I;16" else Image.fromarray(grey.astype(np.uint16) * 16)
    fmt = "JPEG" if mode == "CMYK" else "PNG" if mode != "LA" else "PNG"
    loaded = load_image(encode(image, fmt))
    assert loaded.mode == "RGB" and loaded.size == (60, 40)
    array = np.asarray(loaded).astype(int)
    # The picture survives: strongly correlated with the original grey levels.
    assert np.corrcoef(array.mean(axis=2).ravel(), grey.ravel())[0, 1] > 0.9


def test_sixteen_bit_png_uses_its_full_range():
    ramp = (np.linspace(0, 4095, 64 * 32).reshape(32, 64)).astype(np.uint16)  # 12-bit MRI values
    loaded = np.asarray(load_image(encode(Image.fromarray(ramp), "PNG")))
    assert loaded.min() == 0 and loaded.max() == 255


def test_transparent_regions_become_black():
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[..., :3] = 255  # white, but fully transparent
    loaded = np.asarray(load_image(encode(Image.fromarray(rgba, "RGBA"), "PNG")))
    assert loaded.max() == 0


def test_exif_rotation_is_applied():
    image = Image.new("RGB", (40, 20), "white")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    loaded = load_image(encode(image, "JPEG", exif=exif.tobytes()))
    assert loaded.size == (20, 40)


@pytest.mark.parametrize("fmt", ["BMP", "TIFF", "WEBP", "GIF"])
def test_other_formats(fmt, grey):
    assert load_image(encode(Image.fromarray(grey).convert("RGB"), fmt)).size == (60, 40)


def test_animated_gif_gives_its_first_frame():
    frames = [Image.new("L", (30, 30), value).convert("P") for value in (10, 200, 90)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    assert np.asarray(load_image(buffer.getvalue())).mean() < 50


def test_wrong_extension_is_fine(tmp_path):
    path = tmp_path / "scan.png"
    path.write_bytes(EXAMPLES[0].read_bytes())  # a JPEG named .png
    assert load_image(path).size == load_image(EXAMPLES[0]).size




@pytest.mark.parametrize(
    "data, fragment",
    [
        (b"", "is empty"),
        (b"this is plain text, not a picture", "not an image in a supported format"),
        (EXAMPLES[0].read_bytes()[:2000], "truncated or corrupt"),
        (png_header_only(30000, 30000), "megapixel limit"),
        (png_header_only(9000, 7000), "megapixel limit"),  # between Pillow's warning and error levels
        (encode(Image.new("RGB", (1, 1)), "PNG"), "only 1×1 pixels"),
    ],
    ids=["empty", "text", "truncated-jpeg", "bomb", "over-limit", "one-pixel"],
)
def test_bad_input_is_one_clear_sentence(data, fragment):
    with pytest.raises(InvalidImageError) as caught:
        load_image(data)
    assert fragment in str(caught.value)
    assert one_sentence(str(caught.value)), str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_truncated_png_is_refused():
    data = encode(Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)), "PNG")
    with pytest.raises(InvalidImageError, match="truncated or corrupt"):
        load_image(data[: len(data) // 2])


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(InvalidImageError, match="does not exist"):
        load_image(tmp_path / "nope.jpg")

