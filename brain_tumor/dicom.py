"""DICOM slices to display-ready arrays, by pydicom: modality LUT, then the VOI LUT or window as the
file asks (LINEAR, LINEAR_EXACT or SIGMOID), MONOCHROME1 inverted; colour returned as RGB.

Only the middle frame of a multi-frame file is decoded. Compressed files (JPEG, JPEG-LS, JPEG 2000)
need the decoders of the `dicom` extra (pylibjpeg with its plugins).
"""
from __future__ import annotations

import io

import numpy as np

from brain_tumor.errors import InvalidImageError


def stretch(array: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Values from lo to hi onto 0..255 (clipped outside), as uint8; zeros when the range is empty."""
    if hi <= lo:
        return np.zeros(array.shape, dtype=np.uint8)
    return np.round(np.clip((array - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)


def _percentile_window(array: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(array, (0.5, 99.5))
    if hi <= lo:
        lo, hi = float(array.min()), float(array.max())
    return stretch(array, lo, hi)


def _voi_output_range(ds) -> tuple[float, float]:
    """The range pydicom's VOI LUT or windowing maps onto (PS3.3 C.11.2.1.2): the LUT's entry size, or the
    stored values' range carried through the rescale."""
    if "VOILUTSequence" in ds:
        return 0.0, float(2 ** int(ds.VOILUTSequence[0].LUTDescriptor[2]) - 1)
    if ds.get("ModalityLUTSequence"):
        return 0.0, float(2 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1)
    bits = int(ds.BitsStored)
    lo, hi = (0, 2**bits - 1) if ds.PixelRepresentation == 0 else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    slope, intercept = float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
    return lo * slope + intercept, hi * slope + intercept


def _can_decode(syntax) -> bool:
    from pydicom.pixels import get_decoder

    try:
        return get_decoder(syntax).is_available
    except NotImplementedError:  # no decoder exists for this syntax at all
        return False


def dicom_to_array(data: bytes, name: str = "the DICOM file") -> np.ndarray:
    """Decode one DICOM image (the middle frame of several) to a uint8 array: H×W grey or H×W×3 RGB."""
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut, pixel_array

    try:
        ds = pydicom.dcmread(io.BytesIO(data))
    except Exception as error:  # pydicom raises many types for bad files
        raise InvalidImageError(f"{name} is not a readable DICOM file ({error}).") from None
    if "PixelData" not in ds:
        raise InvalidImageError(f"{name} is a DICOM file without an image in it.")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    try:
        # pydicom returns YBR colour already converted to RGB; a frame index decodes that frame alone.
        pixels = pixel_array(ds, index=frames // 2 if frames > 1 else None)
    except Exception as error:
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        if syntax is not None and getattr(syntax, "is_compressed", False):
            if not _can_decode(syntax):
                raise InvalidImageError(
                    f"{name} uses a transfer syntax ({syntax.name}) that cannot be decoded here; "
                    "install the DICOM decoders ('pip install brain-tumor-mri[dicom]') or export it uncompressed."
                ) from None
            raise InvalidImageError(f"{name} has {syntax.name} pixel data that could not be decoded; it looks damaged ({error}).") from None
        raise InvalidImageError(f"{name} has pixel data that could not be decoded ({error}).") from None
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        if pixels.ndim == 3 and pixels.shape[-1] == 3:
            return pixels if pixels.dtype == np.uint8 else _percentile_window(pixels.astype(np.float64))
        raise InvalidImageError(f"{name} has photometric interpretation {photometric}, which is not supported.")
    values = apply_modality_lut(pixels, ds).astype(np.float64)
    if "VOILUTSequence" in ds or ("WindowCenter" in ds and "WindowWidth" in ds):
        lo, hi = _voi_output_range(ds)
        # A VOI LUT is indexed by stored value, so it takes integers; a window takes the rescaled values as they are.
        source = np.round(values).astype(np.int64) if "VOILUTSequence" in ds else values
        out = stretch(apply_voi_lut(source, ds, index=0).astype(np.float64), lo, hi)
    else:
        out = _percentile_window(values)
    if photometric == "MONOCHROME1":
        out = 255 - out
    return out
