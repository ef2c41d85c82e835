"""What several test files share: paths, generated images, datasets and models, and running commands.

Test files import from here, never from each other.
"""
from __future__ import annotations

import csv
import io
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.jpg"))
SMALL_SCAN = ROOT / "examples" / "mni152_2mm.nii.gz"  # 99×117×95 voxels of 2 mm
SHIPPED_RESNET = ROOT / "weights" / "resnet50"
SHIPPED_BASELINE = ROOT / "weights" / "baseline"
SHIPPED_GATED = ROOT / "weights" / "resnet50_gated"  # the ResNet-50 whose attention pool was taught where tumours are
PYTHON = sys.executable
SERIES_SLICES = sorted((ROOT / "tests" / "data" / "figshare-series").glob("*.png"))  # one glioma patient's neighbouring slices

# Folder names as other releases of the data spell them: the loaders must normalise these.
FOLDER_NAMES = {"glioma": "glioma_tumor", "meningioma": "meningioma_tumor", "notumor": "no_tumor", "pituitary": "pituitary_tumor"}
# Where the synthetic slices put each class's bright blob (row, column as shares of the side); no tumour: none.
BLOB_CENTRES = [(0.3, 0.3), (0.3, 0.7), None, (0.7, 0.5)]


# ---------------------------------------------------------------- commands

def run_module(module: str, *args, expect: int | None = 0, env: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """`python -m module args...` in the project root; asserts the exit status when `expect` is given."""
    result = subprocess.run([PYTHON, "-m", module, *map(str, args)], capture_output=True, text=True, cwd=ROOT,
                            timeout=timeout, env={**os.environ, **(env or {})})
    if expect is not None:
        assert result.returncode == expect, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def one_sentence(message: str) -> bool:
    return message.endswith(".") and "\n" not in message and message.count(". ") == 0


# ---------------------------------------------------------------- images

def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width×height but holds almost no data: a decompression bomb's shape."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")


def colour_photo(seed: int = 0) -> Image.Image:
    """A smooth, saturated colour picture, unlike any MRI slice."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:240, :320] / 240.0
    rgb = np.stack([np.sin(3 * xx + rng.uniform(0, 3)), np.cos(2 * yy), np.sin(xx * yy * 5)], axis=-1)
    return Image.fromarray(((rgb + 1) * 127.5).astype(np.uint8))


def synthetic_slice(label: int, seed: int, size: int = 48) -> Image.Image:
    """A dark disc ("skull") with a bright blob whose place depends on the class."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    image = np.where((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size * 0.42) ** 2, 60.0, 0.0)
    if BLOB_CENTRES[label] is not None:
        cy, cx = BLOB_CENTRES[label]
        image += 150 * np.exp(-((yy - cy * size) ** 2 + (xx - cx * size) ** 2) / (2 * (size * 0.08) ** 2))
    image += rng.normal(0, 12, image.shape)
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).convert("RGB")


def make_dicom(pixels: np.ndarray, photometric="MONOCHROME2", window=None, slope=1.0, intercept=0.0, syntax=None) -> bytes:
    """A DICOM MR file holding `pixels` (H×W, or frames×H×W), 12 bits stored in 16."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    syntax = syntax or ExplicitVRLittleEndian
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


def make_series(pictures: list[Path], spacing: float = 5.0, positions: list[float] | None = None, numbers: list[int] | None = None,
                uid: str | None = None, with_positions: bool = True) -> list[tuple[str, bytes]]:
    """A DICOM MR series (name, bytes) of grey slices: one SeriesInstanceUID, axial orientation, ImagePositionPatient
    `positions` (default: `spacing` mm apart), InstanceNumbers `numbers` (default 1..n), files named in shuffled order."""
    from pydicom import dcmread
    from pydicom.uid import generate_uid

    uid = uid or generate_uid()
    positions = positions if positions is not None else [i * spacing for i in range(len(pictures))]
    numbers = numbers or list(range(1, len(pictures) + 1))
    files = []
    for k, (path, z, number) in enumerate(zip(pictures, positions, numbers)):
        pixels = np.asarray(Image.open(path).convert("L"), dtype=np.uint16) * 16
        ds = dcmread(io.BytesIO(make_dicom(pixels)))
        ds.SeriesInstanceUID, ds.SeriesNumber, ds.SeriesDescription = uid, 3, "T1 post-contrast"
        ds.InstanceNumber, ds.PixelSpacing = number, [0.9, 0.9]
        if with_positions:
            ds.ImageOrientationPatient, ds.ImagePositionPatient = [1, 0, 0, 0, 1, 0], [-115.0, -115.0, float(z)]
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        files.append((f"IM{(5 * k + 3) % len(pictures):04d}", buffer.getvalue()))
    return files


def make_enhanced(pictures: list[Path], spacing: float = 5.0) -> bytes:
    """One Enhanced MR file holding the slices as frames, each with its PlanePositionSequence (in reverse order)."""
    from pydicom import dcmread
    from pydicom.dataset import Dataset
    from pydicom.uid import EnhancedMRImageStorage, generate_uid

    pixels = np.stack([np.asarray(Image.open(p).convert("L"), dtype=np.uint16) * 16 for p in pictures])
    ds = dcmread(io.BytesIO(make_dicom(pixels[::-1])))
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = EnhancedMRImageStorage
    ds.SeriesInstanceUID = generate_uid()
    shared, orientation, measures = Dataset(), Dataset(), Dataset()
    orientation.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    measures.PixelSpacing, measures.SliceThickness = [0.9, 0.9], spacing
    shared.PlaneOrientationSequence, shared.PixelMeasuresSequence = [orientation], [measures]
    ds.SharedFunctionalGroupsSequence = [shared]
    frames = []
    for k in range(len(pictures))[::-1]:
        frame, position = Dataset(), Dataset()
        position.ImagePositionPatient = [-115.0, -115.0, k * spacing]
        frame.PlanePositionSequence = [position]
        frames.append(frame)
    ds.PerFrameFunctionalGroupsSequence = frames
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def non_image_dicom() -> bytes:
    """A DICOM Basic Text structured report: a valid DICOM object with no image."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import BasicTextSRStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = BasicTextSRStorage, generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = BasicTextSRStorage, meta.MediaStorageSOPInstanceUID, "SR"
    ds.SeriesInstanceUID = generate_uid()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def mni_template() -> Path:
    """The MNI152 T1 template nilearn's wheel ships (benchmarks.scan finds it)."""
    from benchmarks.scan import mni_template as find

    path = find()
    assert path is not None, "nilearn (a dev dependency) ships the MNI152 template the scan tests read"
    return path


def nifti_bytes(array: np.ndarray, zooms=(1.0, 1.0, 1.0), gz: bool = True, shape: tuple | None = None) -> bytes:
    """A NIfTI-1 file of `array` (RAS, `zooms` mm), gzipped or not; `shape` overrides the header's shape (a lie)."""
    import gzip

    import nibabel as nib

    image = nib.Nifti1Image(array, np.diag([*zooms[:3], 1.0]))
    if shape is not None:
        image.header.set_data_shape(shape)
    data = image.header.binaryblock + b"\0" * 4 + array.tobytes(order="F")
    return gzip.compress(data, compresslevel=1) if gz else data


def bad_scans() -> list[tuple[str, list[tuple[str, bytes]], str]]:
    """Whole-scan inputs a user can send that cannot be answered: (case, files, a fragment of the one sentence).
    Shared by the API, CLI and library tests."""
    import gzip
    import zipfile

    mni = mni_template().read_bytes()
    flat = np.zeros((64, 64), dtype=np.uint8)
    huge_header = nifti_bytes(np.zeros((4, 4, 4), dtype=np.uint8), gz=False, shape=(1024, 1024, 1024))[:352]
    bomb = gzip.compress(huge_header + b"\0" * (64 << 20), compresslevel=9)  # 64 MB of zeros in about 64 KB
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("notes.txt", "a letter, not a scan")
        handle.write(EXAMPLES[0], "slice.jpg")
    return [
        ("truncated", [("cut.nii.gz", mni[: len(mni) // 3])], "truncated"),
        ("corrupt", [("noise.nii.gz", b"\x1f\x8b\x08\x00" + bytes(range(256)) * 8)], "truncated or corrupt"),
        ("not NIfTI", [("letter.nii", b"Dear colleague, " * 64)], "not a NIfTI file"),
        ("gzip bomb", [("bomb.nii.gz", bomb)], "over the limit of 512×512×1,000"),
        ("too large", [("big.nii", nifti_bytes(np.zeros((4, 4, 4), dtype=np.int16), gz=False, shape=(600, 600, 1000))[:2000])],
         "over the limit of 512×512×1,000"),
        ("2D NIfTI", [("flat.nii.gz", nifti_bytes(flat[:, :, None]))], "2D NIfTI image"),
        ("empty volume", [("black.nii.gz", nifti_bytes(np.zeros((32, 32, 32), dtype=np.uint8)))], "none of its 32 slices shows a head"),
        ("structured report", [("report.dcm", non_image_dicom())], "is a structured report, not an image"),
        ("no DICOM in the archive", [("letters.zip", archive.getvalue())], "No whole scan"),
    ]


def example_slice() -> Image.Image:
    return Image.open(EXAMPLES[0]).convert("RGB")


def user_inputs() -> list[tuple[str, bytes, str]]:
    """Every kind of input a user can send: (name, bytes, expected), expected "ok" or a fragment of the
    one-sentence error. Used by the API, CLI and app tests alike."""
    picture = example_slice()
    grey = picture.convert("L")
    frames = [picture.convert("P"), Image.new("P", (224, 224), 3)]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:])
    exif = Image.Exif()
    exif[0x0112] = 8
    return [
        ("not-an-image.jpg", b"%PDF-1.4 a report, not a picture", "not an image"),
        ("empty.png", b"", "empty"),
        ("truncated.jpg", EXAMPLES[0].read_bytes()[:1500], "truncated or corrupt"),
        ("truncated.png", encode(picture, "PNG")[:4000], "truncated or corrupt"),
        ("one-pixel.png", encode(Image.new("RGB", (1, 1)), "PNG"), "only 1×1 pixels"),
        ("bomb.png", png_header_only(30000, 30000), "megapixel limit"),
        ("sixteen-bit.png", encode(Image.fromarray(np.asarray(grey).astype(np.uint16) * 257), "PNG"), "ok"),
        ("rgba.png", encode(picture.convert("RGBA"), "PNG"), "ok"),
        ("palette.png", encode(picture.convert("P"), "PNG"), "ok"),
        ("cmyk.jpg", encode(picture.convert("CMYK"), "JPEG"), "ok"),
        ("exif-rotated.jpg", encode(picture.rotate(-90, expand=True), "JPEG", exif=exif.tobytes()), "ok"),
        ("animated.gif", gif.getvalue(), "ok"),
        ("slice.webp", encode(picture, "WEBP", lossless=True), "ok"),
        ("slice.tiff", encode(picture, "TIFF"), "ok"),
        ("slice.bmp", encode(picture, "BMP"), "ok"),
        ("jpeg-named.png", EXAMPLES[0].read_bytes(), "ok"),
        ("slice.dcm", make_dicom(np.asarray(grey, np.uint16) * 16), "ok"),
        ("portable-pixmap.ppm", encode(picture, "PPM"), "not an image in a supported format"),
    ]


# ---------------------------------------------------------------- datasets and models

def make_kaggle_dataset(root: Path, train_per_class: int = 10, test_per_class: int = 4, leaked: int = 2) -> Path:
    """Training/ and Testing/ with class folders; the first `leaked` test images are copies of
    training images (planted twins), and one training image appears twice in Training."""
    classes = list(FOLDER_NAMES)
    for split, n in (("Training", train_per_class), ("Testing", test_per_class)):
        for c, name in enumerate(classes):
            folder = root / split / FOLDER_NAMES[name]
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                seed = (0 if split == "Training" else 10_000) + 100 * c + i
                synthetic_slice(c, seed).save(folder / f"{split[:2]}-{c}-{i:03d}.png")
    train_glioma = root / "Training" / FOLDER_NAMES["glioma"]
    for i in range(leaked):
        shutil.copyfile(train_glioma / f"Tr-0-{i:03d}.png", root / "Testing" / FOLDER_NAMES["glioma"] / f"Te-leak-{i}.png")
    shutil.copyfile(train_glioma / "Tr-0-005.png", train_glioma / "Tr-0-dup.png")
    return root


def make_boxes_folder(root: Path, per_class: int = 6, size: int = 96) -> Path:
    """A figshare-like folder: synthetic tumour slices numbered per class in both parts (training.boxes),
    with boxes.csv boxing each blob."""
    from training.boxes import EVAL_FROM, GUARD

    rows = []
    for c, name in ((0, "glioma"), (1, "meningioma"), (3, "pituitary")):
        (root / name).mkdir(parents=True, exist_ok=True)
        numbers = [EVAL_FROM[name] - GUARD - 1 - i for i in range(per_class // 2)] + [EVAL_FROM[name] + i for i in range(per_class - per_class // 2)]
        cy, cx = BLOB_CENTRES[c]
        half = 0.12 * size
        for k, number in enumerate(numbers):
            synthetic_slice(c, 500 + 10 * c + k, size).save(root / name / f"{number}.jpg")
            rows.append([f"{name}/{number}.jpg", name, size, size, round(cx * size - half), round(cy * size - half),
                         round(cx * size + half), round(cy * size + half)])
    with open(root / "boxes.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "width", "height", "x_min", "y_min", "x_max", "y_max"])
        writer.writerows(rows)
    return root


def save_tiny_model(folder: Path, architecture: str = "baseline", image_size: int = 32, seed: int = 0) -> Path:
    """An untrained model at a small input size, saved as a weights folder."""
    import torch

    from brain_tumor import Classifier, create_model, model_config

    torch.manual_seed(seed)
    model = create_model(architecture, image_size=image_size)
    Classifier(model, model_config(architecture, image_size=image_size)).save_pretrained(folder)
    return folder
