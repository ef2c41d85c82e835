"""DICOM slices built with pydicom: modality LUT, window, MONOCHROME1, multi-frame, compressed."""
from __future__ import annotations

import io

import numpy as np
import pytest

from brain_tumor import InvalidImageError, load_image

pydicom = pytest.importorskip("pydicom")
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, MRImageStorage, generate_uid  # noqa: E402


def make_dicom(pixels: np.ndarray, photometric="MONOCHROME2", window=None, slope=1.0, intercept=0.0, syntax=ExplicitVRLittleEndian) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = MRImageStorage, meta.MediaStorageSOPInstanceUID, "MR"
    frames = pixels.shape[0] if pixels.ndim == 3 else 1
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.Rows, ds.Columns = pixels.shape[-2:]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    if window:
        ds.WindowCenter, ds.WindowWidth = window
    raw = pixels.astype(np.uint16).tobytes()
    if syntax.is_compressed:
        from pydicom.encaps import encapsulate

        ds.PixelData = encapsulate([raw[:1024]])  # wrapped like a compressed frame, but not a codestream
    else:
        ds.PixelData = raw
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


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


def test_compressed_dicom_without_a_decoder_is_refused_clearly():
    try:
        import pylibjpeg  # noqa: F401
        pytest.skip("pylibjpeg is installed, so JPEG 2000 would decode")
    except ImportError:
        pass
    data = make_dicom(RAMP, syntax=JPEG2000Lossless)  # header says JPEG 2000; the data cannot decode
    with pytest.raises(InvalidImageError, match="transfer syntax"):
        load_image(data)


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
