"""DICOM slices to display-ready arrays: modality LUT, VOI window, MONOCHROME1 inversion."""
from __future__ import annotations

import io

import numpy as np

from brain_tumor.images import InvalidImageError


def _percentile_window(array: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(array, (0.5, 99.5))
    if hi <= lo:
        lo, hi = float(array.min()), float(array.max())
    return _stretch(array, lo, hi)


def _first(value) -> float:
    # WindowCenter/Width may be multi-valued; the first pair is the default view.
    try:
        return float(value)
    except TypeError:
        return float(value[0])


def _stretch(array: np.ndarray, lo: float, hi: float) -> np.ndarray:
    if hi <= lo:
        return np.zeros(array.shape, dtype=np.uint8)
    return np.round(np.clip((array - lo) / (hi - lo), 0, 1) * 255).astype(np.uint8)


def _window(array: np.ndarray, center: float, width: float) -> np.ndarray:
    """The DICOM linear window (PS3.3 C.11.2.1.2.1) onto 0..255."""
    width = max(width, 1.0)
    lo = center - 0.5 - (width - 1) / 2
    return _stretch(array, lo, lo + width - 1)


def dicom_to_array(data: bytes, name: str = "the DICOM file") -> np.ndarray:
    """Decode one DICOM image to a uint8 array (H×W grey or H×W×3 colour)."""
    try:
        import pydicom
        from pydicom.pixels import apply_modality_lut, apply_voi_lut
    except ImportError:  # pragma: no cover - pydicom is in requirements.txt
        raise InvalidImageError("Reading DICOM needs pydicom; install it with 'pip install pydicom'.") from None
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
    except Exception as error:  # pydicom raises many types for bad files
        raise InvalidImageError(f"{name} is not a readable DICOM file ({error}).") from None
    if "PixelData" not in ds:
        raise InvalidImageError(f"{name} is a DICOM file without an image in it.")
    try:
        pixels = ds.pixel_array
    except Exception as error:
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        if syntax is not None and getattr(syntax, "is_compressed", False):
            raise InvalidImageError(
                f"{name} uses a transfer syntax ({syntax.name}) that cannot be decoded here; "
                "install pylibjpeg with its plugins or export it uncompressed."
            ) from None
        raise InvalidImageError(f"{name} has pixel data that could not be decoded ({error}).") from None
    frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).upper()
    if frames > 1:
        pixels = pixels[frames // 2]  # the middle slice of a multi-frame series
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        if pixels.ndim == 3 and pixels.shape[-1] == 3:
            if photometric.startswith("YBR"):
                from pydicom.pixels import convert_color_space

                pixels = convert_color_space(pixels, photometric, "RGB")
            return _percentile_window(pixels.astype(np.float64)) if pixels.dtype != np.uint8 else pixels
        raise InvalidImageError(f"{name} has photometric interpretation {photometric}, which is not supported.")
    values = apply_modality_lut(pixels, ds).astype(np.float64)
    if "VOILUTSequence" in ds:
        # The LUT's output spans the entry size its descriptor declares (LUTData may be raw OW bytes).
        bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
        windowed = apply_voi_lut(np.round(values).astype(np.int64), ds, index=0).astype(np.float64)
        out = _stretch(windowed, 0.0, float(2**bits - 1))
    elif "WindowCenter" in ds and "WindowWidth" in ds:
        out = _window(values, _first(ds.WindowCenter), _first(ds.WindowWidth))
    else:
        out = _percentile_window(values)
    if photometric == "MONOCHROME1":
        out = 255 - out
    return out
