"""Finding images and labels in the dataset layouts people actually download, and decoding them once."""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from brain_tumor.classes import CLASSES, normalize_class_name
from brain_tumor.images import load_image
from brain_tumor.preprocess import resize_image

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".dcm"}
KAGGLE_DATASET = "masoudnickparvar/brain-tumor-mri-dataset"
# Folder names of each split across releases (Kaggle: Training/Testing; Roboflow: train/valid/test).
SPLIT_NAMES = {"train": ("training", "train"), "val": ("valid", "validation", "val"), "test": ("testing", "test")}


class DatasetError(RuntimeError):
    """The data folder is missing or laid out in a way we cannot read; one sentence for the user."""


@dataclasses.dataclass
class Split:
    paths: list[Path]
    labels: np.ndarray  # int64 indices into CLASSES

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, index) -> "Split":
        index = np.asarray(index, dtype=np.int64)
        return Split([self.paths[i] for i in index], self.labels[index])

    def counts(self) -> dict[str, int]:
        return {name: int((self.labels == i).sum()) for i, name in enumerate(CLASSES)}


def _images_in(folder: Path) -> list[Path]:
    # Hidden entries (.ipynb_checkpoints/ holds a stray copy in the Kaggle Testing split) are not data.
    return sorted(
        p for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


def _class_folders(folder: Path) -> Split:
    paths, labels = [], []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        if sub.name.startswith("."):
            continue
        try:
            label = CLASSES.index(normalize_class_name(sub.name))
        except ValueError as error:
            raise DatasetError(f"In {folder}: {error}") from None
        images = _images_in(sub)
        paths += images
        labels += [label] * len(images)
    return Split(paths, np.asarray(labels, dtype=np.int64))


def _classes_csv(folder: Path) -> Split:
    """Roboflow's CSV export: images beside `_classes.csv` with one one-hot column per class."""
    paths, labels = [], []
    with open(folder / "_classes.csv", newline="") as handle:
        reader = csv.reader(handle)
        header = [h.strip() for h in next(reader)]
        columns = [CLASSES.index(normalize_class_name(h)) for h in header[1:]]
        for row in reader:
            hot = [i for i, v in enumerate(row[1:]) if v.strip() in ("1", "1.0")]
            if len(hot) != 1:
                continue  # unlabelled or multi-label rows are not classification examples
            paths.append(folder / row[0].strip())
            labels.append(columns[hot[0]])
    return Split(paths, np.asarray(labels, dtype=np.int64))


def read_split(folder: Path) -> Split:
    split = _classes_csv(folder) if (folder / "_classes.csv").is_file() else _class_folders(folder)
    if not len(split):
        raise DatasetError(f"{folder} holds no labelled images; expected one sub-folder of images per class.")
    return split


def _find_child(root: Path, names: tuple[str, ...]) -> Path | None:
    for child in root.iterdir():
        if child.is_dir() and child.name.lower() in names:
            return child
    return None


def download_kaggle() -> Path:
    try:
        import kagglehub
    except ImportError:
        raise DatasetError("--data kaggle needs kagglehub ('pip install kagglehub'), or pass a local folder.") from None
    try:
        return Path(kagglehub.dataset_download(KAGGLE_DATASET))
    except Exception as error:
        raise DatasetError(
            f"Could not download {KAGGLE_DATASET} from Kaggle ({type(error).__name__}); download it by hand "
            "and pass its folder (the one holding Training/ and Testing/) as --data."
        ) from None


def discover(root: str | os.PathLike) -> dict[str, Split]:
    """Splits found under `root`: always 'train', and 'val'/'test' when the layout has them.

    Layouts: Kaggle (Training/, Testing/), Roboflow (train/, valid/, test/, class folders or
    _classes.csv), or one folder of class folders (all of it is 'train').
    """
    root = download_kaggle() if str(root) == "kaggle" else Path(root)
    if not root.is_dir():
        raise DatasetError(f"Data folder {root} does not exist; pass the folder holding Training/ and Testing/, or --data kaggle.")
    found = {key: _find_child(root, names) for key, names in SPLIT_NAMES.items()}
    if found["train"] is None:
        nested = [c for c in root.iterdir() if c.is_dir() and _find_child(c, SPLIT_NAMES["train"])]
        if len(nested) == 1:  # kagglehub puts the splits one level down
            return discover(nested[0])
        return {"train": read_split(root)}
    return {key: read_split(folder) for key, folder in found.items() if folder is not None}


def _decode_one(args: tuple[str, int, bool]) -> np.ndarray:
    path, size, clahe = args
    return resize_image(load_image(path), size, clahe)


def decode_images(paths: list[Path], size: int, clahe: bool = False, workers: int = 0, cache_dir: Path | None = None, desc: str = "decode") -> torch.Tensor:
    """Decode and resize every image once, in parallel: an N×3×size×size uint8 tensor.

    With cache_dir, the result is kept as a .npy keyed by the file list and size.
    """
    cache_file = None
    if cache_dir is not None:
        key = hashlib.sha256(("\n".join(str(Path(p).resolve()) for p in paths) + f"|{size}|{clahe}").encode()).hexdigest()[:16]
        cache_file = Path(cache_dir) / f"{desc}-{size}-{key}.npy"
        if cache_file.is_file():
            return torch.from_numpy(np.load(cache_file))
    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    jobs = [(str(p), size, clahe) for p in paths]
    workers = workers or min(16, os.cpu_count() or 1)
    if workers > 1 and len(paths) > 64:
        with ProcessPoolExecutor(workers) as pool:
            for i, image in enumerate(tqdm(pool.map(_decode_one, jobs, chunksize=32), total=len(jobs), desc=desc, leave=False)):
                out[i] = image
    else:
        for i, job in enumerate(tqdm(jobs, desc=desc, leave=False)):
            out[i] = _decode_one(job)
    out = np.ascontiguousarray(out.transpose(0, 3, 1, 2))
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        partial = cache_file.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(partial, out)
        partial.replace(cache_file)  # atomic: a concurrent reader never sees half a file
    return torch.from_numpy(out)
