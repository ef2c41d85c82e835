"""Whole scans read into ordered slices: a NIfTI volume (nibabel) or a DICOM series (pydicom).

A NIfTI file is turned to the closest canonical (RAS) orientation and cut along one plane; a DICOM series is
ordered by ImagePositionPatient along the slice normal (InstanceNumber when positions are missing). Every
slice is shown as radiologists view it (anterior or superior at the top, the patient's right on the left),
scaled to square pixels, and windowed by one pair of robust percentiles for the whole volume. Slices
outside the head (almost empty) are marked, not scored. What was assumed or repaired is said in `notes`.
"""
from __future__ import annotations

import dataclasses
import functools
import gzip
import io
import zlib
from typing import Iterable

import numpy as np

from brain_tumor.dicom import stretch
from brain_tumor.errors import InvalidImageError
from brain_tumor.images import is_dicom

MAX_VOXELS = 512 * 512 * 1000  # a volume (one of a 4D file's) may hold this many voxels
MAX_SLICES = 1000
PLANES = {"sagittal": 0, "coronal": 1, "axial": 2}  # the RAS axis each plane's slices step along
WINDOW_PERCENTILES = (0.5, 99.5)  # of the voxels above the volume's minimum
HEAD_LEVEL, HEAD_SHARE = 0.1, 0.03  # a slice with under 3% of its pixels above 10% of the window is outside the head
NIFTI_SUFFIXES = (".nii", ".nii.gz")


@dataclasses.dataclass
class Volume:
    """A scan as slices (uint8 H×W each, in order along the plane), which of them lie outside the head, and notes."""
    name: str
    kind: str  # "NIfTI volume" or "DICOM series"
    plane: str
    slices: list[np.ndarray]
    outside_head: list[bool]
    notes: list[str] = dataclasses.field(default_factory=list)

    def __len__(self) -> int:
        return len(self.slices)

    def describe(self) -> str:
        return f"{self.name}: a {self.kind} of {len(self)} {self.plane} slices"

    @property
    def head_area(self) -> list[float]:
        """Each slice's share of pixels inside the head (above the head level): small at the vertex and the skull base."""
        return [float((s > 255 * HEAD_LEVEL).mean()) for s in self.slices]

    @functools.cached_property
    def repeats(self) -> list[bool]:
        """Whether each slice is an exact copy of the one before: a thick acquisition resampled to a finer grid repeats
        each acquired slice, and a copy adds no evidence of its own. Worked out once: a volume's slices never change."""
        return [i > 0 and np.array_equal(s, self.slices[i - 1]) for i, s in enumerate(self.slices)]

    def picture(self, index: int):
        """Slice `index` as the RGB PIL image the classifier reads."""
        from PIL import Image

        return Image.fromarray(self.slices[index]).convert("RGB")


def is_nifti_name(name: str) -> bool:
    return str(name).lower().endswith(NIFTI_SUFFIXES)


def robust_window(sample: np.ndarray) -> tuple[float, float]:
    """(low, high): robust percentiles of the voxels above the minimum (the background), so a few hot voxels do not
    darken the rest."""
    sample = sample[np.isfinite(sample)]
    if not sample.size:
        raise InvalidImageError("The scan holds no finite voxel values.")
    foreground = sample[sample > sample.min()]
    if foreground.size < 100:
        return float(sample.min()), float(sample.max())
    lo, hi = np.percentile(foreground, WINDOW_PERCENTILES)
    return (float(lo), float(hi)) if hi > lo else (float(sample.min()), float(sample.max()))


def _square_pixels(image: np.ndarray, row_mm: float, col_mm: float) -> np.ndarray:
    """Resample so a pixel is as tall as it is wide (an anisotropic volume's coronal cut would look squashed)."""
    if not row_mm or not col_mm or abs(row_mm / col_mm - 1) < 0.05:
        return image
    import cv2

    finest = min(row_mm, col_mm)
    height, width = image.shape
    size = (max(1, round(width * col_mm / finest)), max(1, round(height * row_mm / finest)))
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


def _outside_head(image: np.ndarray) -> bool:
    return float((image > 255 * HEAD_LEVEL).mean()) < HEAD_SHARE


def volume_of_slices(name: str, kind: str, plane: str, slices: list[np.ndarray], notes: list[str] | None = None) -> Volume:
    """Ordered uint8 slices as a Volume, with those outside the head marked; an error when every one is."""
    outside = [_outside_head(s) for s in slices]
    if all(outside):
        raise InvalidImageError(f"{name} looks empty: none of its {len(slices)} slices shows a head.")
    volume = Volume(name, kind, plane, slices, outside, list(notes or []))
    copies = sum(copy and not out for copy, out in zip(volume.repeats, outside))
    if copies:
        volume.notes.append(f"{copies} of its {len(slices) - sum(outside)} slices inside the head repeat the slice before them "
                            "(a thicker acquisition resampled); each is scored once, and a run of tumour-like slices counts it once.")
    return volume


# ---- NIfTI


def _nifti_header(first: bytes, name: str):
    import nibabel as nib

    for klass in (nib.Nifti1Header, nib.Nifti2Header):
        size = klass.sizeof_hdr
        if len(first) < size:
            continue
        for order in ("<", ">"):
            if int(np.frombuffer(first[:4], dtype=f"{order}i4")[0]) == size:
                try:
                    return klass.from_fileobj(io.BytesIO(first[:size]), check=False)
                except Exception as error:
                    raise InvalidImageError(f"{name} has a NIfTI header that could not be read ({error}).") from None
    raise InvalidImageError(f"{name} is not a NIfTI file (no NIfTI-1 or NIfTI-2 header at its start).")


def _opened(data: bytes):
    return gzip.GzipFile(fileobj=io.BytesIO(data)) if data[:2] == b"\x1f\x8b" else io.BytesIO(data)


def read_nifti(data: bytes, name: str = "the NIfTI file", plane: str = "axial") -> Volume:
    """A NIfTI-1 or NIfTI-2 file (gzipped or not) as slices along `plane`. A 4D file gives its first volume. Only the
    bytes the header promises are ever inflated, so a gzip bomb costs no more than a volume of the stated limit."""
    import nibabel as nib

    if plane not in PLANES:
        raise InvalidImageError(f"{plane!r} is not a plane; choose axial, coronal or sagittal.")
    notes: list[str] = []
    try:
        stream = _opened(data)
        first = stream.read(540)
        header = _nifti_header(first, name)
        shape = tuple(int(n) for n in header.get_data_shape())
        if len(shape) < 3 or min(shape[:3]) < 2:
            raise InvalidImageError(f"{name} is a 2D NIfTI image ({'×'.join(map(str, shape))}), not a volume; "
                                    "save the slice as PNG and use the One slice tab.")
        if len(shape) > 3 and int(np.prod(shape[3:])) > 1:
            notes.append(f"The file is {len(shape)}D ({'×'.join(map(str, shape))}); its first volume was read.")
        voxels = int(np.prod(shape[:3]))
        if voxels > MAX_VOXELS:
            raise InvalidImageError(f"{name} holds {'×'.join(map(str, shape[:3]))} voxels, over the limit of 512×512×1,000; "
                                    "crop or downsample it first.")
        dtype = header.get_data_dtype()
        if dtype.fields is not None or dtype.kind not in "uif":
            raise InvalidImageError(f"{name} stores {dtype} voxels; only grey-level (integer or float) volumes are read.")
        offset = max(int(header.get_data_offset()), header.sizeof_hdr + 4)  # the header, then 4 bytes of extension flags
        wanted = offset + voxels * dtype.itemsize
        body = first + stream.read(wanted - len(first))
    except InvalidImageError:
        raise
    except (OSError, EOFError, zlib.error) as error:
        raise InvalidImageError(f"{name} could not be read; it looks truncated or corrupt ({error}).") from None
    if len(body) < wanted:
        raise InvalidImageError(f"{name} is truncated: its header promises {wanted:,} bytes and the file holds {len(body):,}.")
    array = np.frombuffer(body, dtype=dtype, count=voxels, offset=offset).reshape(shape[:3], order="F").astype(np.float32)
    slope, inter = header.get_slope_inter()
    if slope not in (None, 0) and np.isfinite(slope):
        array = array * np.float32(slope) + np.float32(inter or 0)
    affine = header.get_best_affine()
    image = nib.as_closest_canonical(nib.Nifti1Image(array, affine))
    if nib.aff2axcodes(affine) != ("R", "A", "S"):
        notes.append(f"Reoriented from {''.join(nib.aff2axcodes(affine))} to RAS.")
    values = np.asarray(image.dataobj, dtype=np.float32)
    zooms = [float(z) for z in image.header.get_zooms()[:3]]
    lo, hi = robust_window(values[::2, ::2, ::2].ravel())
    axis = PLANES[plane]
    across = [a for a in range(3) if a != axis]  # columns, then rows, of each cut (before it is turned upright)
    # One uint8 copy with the plane's axis first; each cut then turned upright: superior (or anterior) at the top,
    # the patient's right on the left.
    stack = np.ascontiguousarray(np.moveaxis(stretch(values, lo, hi), axis, 0).transpose(0, 2, 1)[:, ::-1, ::-1])
    slices = [_square_pixels(cut, zooms[across[1]], zooms[across[0]]) for cut in stack]
    return volume_of_slices(name, "NIfTI volume", plane, slices, notes)


# ---- DICOM series


@dataclasses.dataclass
class _Frame:
    values: np.ndarray
    position: float | None
    instance: int | None
    spacing: tuple[float, float]


def _normal(orientation) -> np.ndarray | None:
    try:
        row, col = np.array(orientation[:3], dtype=float), np.array(orientation[3:6], dtype=float)
    except (TypeError, ValueError):
        return None
    normal = np.cross(row, col)
    return normal if np.linalg.norm(normal) > 0.5 else None


def _along(position, normal) -> float | None:
    if position is None or normal is None:
        return None
    try:
        return float(np.dot(np.array(position[:3], dtype=float), normal))
    except (TypeError, ValueError):
        return None


def _frames(ds, name: str) -> list[_Frame]:
    """Every frame of a DICOM image, with its position along the slice normal where the file gives one."""
    from pydicom.pixels import apply_modality_lut, pixel_array

    try:
        pixels = pixel_array(ds)
    except Exception as error:
        raise InvalidImageError(f"{name} has pixel data that could not be decoded ({error}).") from None
    if str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper() not in ("MONOCHROME1", "MONOCHROME2"):
        raise InvalidImageError(f"{name} is a colour image, not an MR series slice.")
    count = int(ds.get("NumberOfFrames", 1) or 1)
    pixels = pixels.reshape(count, *pixels.shape[-2:])
    values = apply_modality_lut(pixels, ds).astype(np.float32)
    if str(ds.PhotometricInterpretation).upper() == "MONOCHROME1":
        values = values.max() - values
    shared = (ds.get("SharedFunctionalGroupsSequence") or [None])[0]
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    orientation = ds.get("ImageOrientationPatient")
    spacing = ds.get("PixelSpacing")
    if shared is not None:
        orientation = orientation or _nested(shared, "PlaneOrientationSequence", "ImageOrientationPatient")
        spacing = spacing or _nested(shared, "PixelMeasuresSequence", "PixelSpacing")
    normal = _normal(orientation) if orientation is not None else None
    frames = []
    for i in range(count):
        position = ds.get("ImagePositionPatient") if count == 1 else None
        if i < len(per_frame):
            position = _nested(per_frame[i], "PlanePositionSequence", "ImagePositionPatient") or position
            frame_orientation = _nested(per_frame[i], "PlaneOrientationSequence", "ImageOrientationPatient")
            normal = _normal(frame_orientation) if frame_orientation is not None else normal
        instance = ds.get("InstanceNumber")
        rows_mm, cols_mm = (float(spacing[0]), float(spacing[1])) if spacing is not None and len(spacing) == 2 else (0.0, 0.0)
        frames.append(_Frame(values[i], _along(position, normal), int(instance) * 10_000 + i if instance is not None else None,
                             (rows_mm, cols_mm)))
    return frames


def _nested(item, sequence: str, keyword: str):
    inner = item.get(sequence) if item is not None else None
    return inner[0].get(keyword) if inner else None


def _order(frames: list[_Frame], notes: list[str]) -> list[_Frame]:
    """Frames sorted along the normal, one per position; gaps and duplicates said in `notes`."""
    if all(f.position is not None for f in frames):
        frames = sorted(frames, key=lambda f: f.position)
        steps = np.diff([f.position for f in frames])
        positive = steps[steps > 1e-3]
        step = float(np.median(positive)) if positive.size else 0.0
        kept = [frames[0]] + [f for f, d in zip(frames[1:], steps) if d > max(1e-3, 0.01 * step)]
        if len(kept) < len(frames):
            notes.append(f"{len(frames) - len(kept)} slices repeat a position already present; one slice per position was scored.")
        gaps = [d for d in np.diff([f.position for f in kept]) if step and d > 1.5 * step]
        if gaps:
            missing = int(round(sum(d / step - 1 for d in gaps)))
            notes.append(f"About {missing} slices are missing from the series ({len(gaps)} gaps in the positions); "
                         "the slices present were scored.")
        return kept
    if all(f.instance is not None for f in frames):
        notes.append("The series has no slice positions (ImagePositionPatient); slices were ordered by InstanceNumber.")
        frames = sorted(frames, key=lambda f: f.instance)
        numbers = [f.instance for f in frames]
        if len(set(numbers)) < len(numbers):
            notes.append(f"{len(numbers) - len(set(numbers))} slices repeat an InstanceNumber; their order among themselves is a guess.")
        return frames
    notes.append("The series has neither slice positions nor instance numbers; slices were kept in the order given.")
    return frames


NON_IMAGE_KINDS = {"1.2.840.10008.5.1.4.1.1.88": "a structured report", "1.2.840.10008.5.1.4.1.1.11": "a presentation state",
                   "1.2.840.10008.5.1.4.1.1.104": "an encapsulated document", "1.2.840.10008.5.1.4.1.1.481": "a radiotherapy object"}


def _kind_of(ds) -> str:
    uid = str(ds.get("SOPClassUID", ""))
    for prefix, kind in NON_IMAGE_KINDS.items():
        if uid.startswith(prefix):
            return kind
    return "a DICOM object without an image"


def read_dicom_series(files: Iterable[tuple[str, bytes]], name: str = "the upload", min_slices: int = 2) -> tuple[list[Volume], dict]:
    """The DICOM files among `files` grouped by SeriesInstanceUID into volumes (series of fewer than `min_slices`
    images, and single-frame files without a series, are left over), and what else was found:
    {"left_over": [(name, bytes)], "not_dicom": [names], "non_image": [(name, kind)]}."""
    import pydicom

    groups: dict[str, list[tuple[str, bytes, object]]] = {}
    found = {"left_over": [], "not_dicom": [], "non_image": []}
    for file_name, data in files:
        if not is_dicom(data):
            found["not_dicom"].append(file_name)
            continue
        try:
            ds = pydicom.dcmread(io.BytesIO(data))
        except Exception:
            found["not_dicom"].append(file_name)
            continue
        if "PixelData" not in ds:
            found["non_image"].append((file_name, _kind_of(ds)))
            continue
        uid = str(ds.get("SeriesInstanceUID", "") or "")
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        if not uid and frames < min_slices:
            found["left_over"].append((file_name, data))
            continue
        groups.setdefault(uid or f"file:{file_name}", []).append((file_name, data, ds))
    volumes = []
    for members in groups.values():
        frame_count = sum(int(ds.get("NumberOfFrames", 1) or 1) for _, _, ds in members)
        if frame_count < min_slices:
            found["left_over"] += [(n, d) for n, d, _ in members]
            continue
        volumes.append(_series_volume(members, name))
    return volumes, found


def _series_volume(members: list, upload: str) -> Volume:
    notes: list[str] = []
    frames: list[_Frame] = []
    for file_name, _, ds in members:
        frames += _frames(ds, file_name)
    if len(frames) > MAX_SLICES:
        raise InvalidImageError(f"A series in {upload} has {len(frames)} slices, over the limit of {MAX_SLICES:,}; split it first.")
    frames = _order(frames, notes)
    if sum(f.values.size for f in frames) > MAX_VOXELS:
        raise InvalidImageError(f"A series in {upload} holds more than 512×512×1,000 voxels; split or downsample it first.")
    shapes = {f.values.shape for f in frames}
    if len(shapes) > 1:
        notes.append(f"Its slices come in {len(shapes)} sizes; each was scored at its own size.")
    lo, hi = robust_window(np.concatenate([f.values[::4, ::4].ravel() for f in frames]))
    slices = [_square_pixels(stretch(f.values, lo, hi), *f.spacing) for f in frames]
    first = members[0][2]
    description = str(first.get("SeriesDescription", "") or "").strip()
    number = first.get("SeriesNumber")
    label = f"series {number}" if number is not None else "series"
    label += f" ({description})" if description else ""
    return volume_of_slices(f"{upload}: {label}", "DICOM series", "acquired", slices, notes)
