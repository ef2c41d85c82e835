"""DICOM slices built with pydicom: modality LUT, window, MONOCHROME1, multi-frame, compressed."""
from __future__ import annotations

import io

import numpy as np
import pytest

from brain_tumor import InvalidImageError, load_image

pydicom = pytest.importorskip("pydicom")
from pydicom.dataset import Dataset  # noqa: E402
from pydicom.uid import JPEG2000Lossless  # noqa: E402

from tests.helpers import make_dicom  # noqa: E402

RAMP = np.tile(np.linspace(0, 4000, 64).astype(np.uint16), (48, 1))  # dark left, bright right


def grey(data: bytes) -> np.ndarray:
    return np.asarray(load_image(data))[..., 0].astype(int)


def test_plain_dicom_is_read_with_a_percentile_window():
    out = grey(make_dicom(RAMP))
    assert out.shape == (48, 64)
    assert out[:, 0].mean() < 10 and out[:, -1].mean() > 245


def test_window_center_and_width_are_applied():
    # Window 1000 ± 200 (after the modality LUT): everything right of ~1/3 saturates white.
    out = grey(make_dicom(RAMP, window=(1000, 400)))
    assert (out[:, 24:] == 255).all() and (out[:, :10] == 0).all()
    assert 0 < out[0, 16] < 255


def test_modality_lut_comes_before_the_window():
    # Stored values x2 through the rescale slope: the same window now saturates earlier.
    plain = grey(make_dicom(RAMP, window=(1000, 400)))
    scaled = grey(make_dicom(RAMP, window=(1000, 400), slope=2.0))
    assert (scaled >= plain).all() and (scaled > plain).any()


def test_monochrome1_is_inverted():
    normal = grey(make_dicom(RAMP, window=(2000, 4000)))
    inverted = grey(make_dicom(RAMP, photometric="MONOCHROME1", window=(2000, 4000)))
    np.testing.assert_array_equal(inverted, 255 - normal)


def test_multiframe_gives_the_middle_frame():
    frames = np.stack([np.full((32, 32), v, np.uint16) for v in (0, 0, 4000, 0, 0)])
    frames[:, 0, 0] = 0
    frames[:, -1, -1] = 4000  # every frame spans the range, so the percentile window is stable
    out = grey(make_dicom(frames))
    assert out[10:20, 10:20].mean() > 245


def test_damaged_compressed_pixel_data_is_refused():
    data = make_dicom(RAMP, syntax=JPEG2000Lossless)  # the header says JPEG 2000; the data is not a codestream
    with pytest.raises(InvalidImageError, match="could not be decoded"):
        load_image(data)


def test_a_syntax_without_a_decoder_says_which_extra_to_install(monkeypatch):
    import brain_tumor.dicom

    monkeypatch.setattr(brain_tumor.dicom, "_can_decode", lambda syntax: False)
    with pytest.raises(InvalidImageError, match=r"cannot be decoded here; install the DICOM decoders"):
        load_image(make_dicom(RAMP, syntax=JPEG2000Lossless))


def compressed(data: bytes, syntax) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.compress(syntax)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@pytest.mark.parametrize("syntax_name", ["JPEGLSLossless", "RLELossless", "JPEG2000Lossless"])
def test_losslessly_compressed_dicom_decodes_like_the_uncompressed_file(syntax_name):
    pytest.importorskip("jpeg_ls" if syntax_name == "JPEGLSLossless" else "pydicom")
    import pydicom.uid

    plain = make_dicom(RAMP, window=(2000, 4000))
    np.testing.assert_array_equal(grey(compressed(plain, getattr(pydicom.uid, syntax_name))), grey(plain))


def colour_dicom(rgb: np.ndarray, photometric: str) -> bytes:
    from pydicom.pixels import convert_color_space

    data = make_dicom(RAMP)
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, photometric, 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.Rows, ds.Columns = rgb.shape[:2]
    stored = convert_color_space(rgb, "RGB", photometric) if photometric != "RGB" else rgb
    ds.PixelData = stored.astype(np.uint8).tobytes()
    for tag in ("RescaleSlope", "RescaleIntercept"):
        del ds[tag]
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@pytest.mark.parametrize("photometric", ["RGB", "YBR_FULL"])
def test_colour_dicom_keeps_its_colours(photometric):
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[:] = (200, 40, 10)
    out = np.asarray(load_image(colour_dicom(rgb, photometric))).astype(int)
    assert np.abs(out - [200, 40, 10]).max() <= 2, out[0, 0]


@pytest.mark.parametrize("function", ["LINEAR_EXACT", "SIGMOID"])
def test_the_voi_lut_function_is_honoured(function):
    data = make_dicom(RAMP, window=(2000, 1000))
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.VOILUTFunction = function
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    linear, other = grey(data)[0], grey(buffer.getvalue())[0]
    assert np.all(np.diff(other) >= 0)  # still a rising ramp
    if function == "SIGMOID":  # a soft curve: at the window's lower edge the linear window is black, the sigmoid is not
        edge = int(np.argmin(np.abs(RAMP[0].astype(int) - 1500)))
        assert linear[edge] <= 10 and other[edge] >= 20, (linear[edge], other[edge])
    else:
        assert np.abs(other - linear).max() <= 1


def test_dicom_without_pixels_is_refused():
    ds_bytes = make_dicom(RAMP)
    ds = pydicom.dcmread(io.BytesIO(ds_bytes))
    del ds.PixelData
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    with pytest.raises(InvalidImageError, match="without an image"):
        load_image(buffer.getvalue())


def test_voi_lut_sequence_is_applied():
    from pydicom.sequence import Sequence

    data = make_dicom(RAMP)
    ds = pydicom.dcmread(io.BytesIO(data))
    item = Dataset()
    # A LUT that maps stored values 0..2047 onto a rising ramp and everything above to its top.
    item.LUTDescriptor = [2048, 0, 16]
    item.LUTData = np.linspace(0, 65535, 2048).astype("<u2").tobytes()
    ds.VOILUTSequence = Sequence([item])
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    out = grey(buffer.getvalue())
    assert (out[:, RAMP[0] >= 2047] == 255).all()  # beyond the LUT: its last entry
    assert out[0, 10] < out[0, 20] < 255  # inside: the LUT's ramp


def test_damaged_uncompressed_pixel_data_is_refused():
    ds = pydicom.dcmread(io.BytesIO(make_dicom(RAMP)))
    ds.PixelData = ds.PixelData[:100]  # far fewer bytes than Rows × Columns × 2
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    with pytest.raises(InvalidImageError, match="pixel data that could not be decoded"):
        load_image(buffer.getvalue())
