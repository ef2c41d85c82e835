"""Finding images and labels in the dataset layouts people actually download, decoding them once,
and the one definition of a run's train / validation / test split."""
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
from brain_tumor.config import CACHE_ROOT
from brain_tumor.errors import UserError
from brain_tumor.images import IMAGE_SUFFIXES, load_image
from brain_tumor.preprocess import resize_image
from training import twins

KAGGLE_DATASET = "masoudnickparvar/brain-tumor-mri-dataset"
# Decoded, resized images are kept here between runs (decode_images' cache_dir).
DEFAULT_CACHE = CACHE_ROOT
# Folder names of each split across releases (Kaggle: Training/Testing; Roboflow: train/valid/test).
SPLIT_NAMES = {"train": ("training", "train"), "val": ("valid", "validation", "val"), "test": ("testing", "test")}


def cache_folder(value: str) -> Path | None:
    """A command's --cache-dir: the folder, or None (no caching) for ''."""
    return Path(value) if value else None


class DatasetError(UserError, RuntimeError):
    """The data folder is missing or laid out in a way we cannot read."""


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
    def decode() -> np.ndarray:
        out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
        jobs = [(str(p), size, clahe) for p in paths]
        pool_size = workers or min(16, os.cpu_count() or 1)
        if pool_size > 1 and len(paths) > 64:
            with ProcessPoolExecutor(pool_size) as pool:
                for i, image in enumerate(tqdm(pool.map(_decode_one, jobs, chunksize=32), total=len(jobs), desc=desc, leave=False)):
                    out[i] = image
        else:
            for i, job in enumerate(tqdm(jobs, desc=desc, leave=False)):
                out[i] = _decode_one(job)
        return np.ascontiguousarray(out.transpose(0, 3, 1, 2))

    return cached_images(decode, "\n".join(str(Path(p).resolve()) for p in paths), size, clahe, cache_dir, desc)


def cached_images(decode, sources: str, size: int, clahe: bool, cache_dir: Path | None, desc: str) -> torch.Tensor:
    """decode()'s N×3×size×size uint8 array as a tensor, kept under cache_dir as a .npy keyed by `sources` (one line per
    image), the size and CLAHE, so a later run with the same images reads it instead."""
    cache_file = None
    if cache_dir is not None:
        key = hashlib.sha256((sources + f"|{size}|{clahe}").encode()).hexdigest()[:16]
        cache_file = Path(cache_dir) / f"{desc}-{size}-{key}.npy"
        if cache_file.is_file():
            return torch.from_numpy(np.load(cache_file))
    out = decode()
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        partial = cache_file.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(partial, out)
        partial.replace(cache_file)  # atomic: a concurrent reader never sees half a file
    return torch.from_numpy(out)


# ---------------------------------------------------------------- the splits of a run

@dataclasses.dataclass(frozen=True)
class SplitRecipe:
    """The facts that decide which images a run trains, validates and is tested on. training.fit
    records them in the weights' provenance, so any later command rebuilds the very same split."""
    data: str
    image_size: int
    clahe: bool = False
    val_fraction: float = 0.1
    val_data: str | None = None
    max_per_class: int | None = None
    seed: int = 0
    twin_threshold: float = 0.99

    @classmethod
    def from_mapping(cls, values: dict) -> "SplitRecipe":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def split_recipe_of(config, data: str | None = None) -> SplitRecipe:
    """The split a weights folder was trained with (its recorded recipe), optionally on data found elsewhere now."""
    recipe = dict(config.provenance.get("recipe") or {})
    recipe.update(image_size=config.image_size, clahe=config.clahe, **({"data": data} if data else {}))
    if not recipe.get("data"):
        raise DatasetError("These weights record no training data; pass --data with the dataset they were trained on.")
    return SplitRecipe.from_mapping(recipe)


@dataclasses.dataclass
class RunData:
    train: Split
    val: Split | None
    test: Split | None
    pool: Split  # everything the model may learn from (train + val drawn from Training), for twin checks
    train_images: torch.Tensor
    val_images: torch.Tensor | None
    test_images: torch.Tensor | None
    pool_thumbs: torch.Tensor
    notes: dict


def cap(split: Split, per_class: int | None, seed: int) -> Split:
    """At most `per_class` images of each class, drawn at random with `seed` (quick runs)."""
    if not per_class:
        return split
    rng = np.random.default_rng(seed)
    keep = []
    for c in range(len(CLASSES)):
        idx = np.flatnonzero(split.labels == c)
        keep.extend(sorted(rng.choice(idx, size=min(per_class, len(idx)), replace=False).tolist()))
    return split.subset(sorted(keep))


def load_run_data(recipe: SplitRecipe, cache_dir: Path | None, workers: int = 0, with_test: bool = True,
                  rank: int = 0, barrier=lambda: None) -> RunData:
    """Decode the run's images and make its one validation split: a share of Training in which no
    group of near-duplicate images straddles train and validation, or a separate validation folder.

    Under several processes, `barrier` waits for all of them: the first process (rank 0) decodes and
    fills the cache while the others wait, then they read it.
    """
    splits = discover(recipe.data)
    pool = cap(splits["train"], recipe.max_per_class, recipe.seed)
    test = cap(splits["test"], recipe.max_per_class, recipe.seed) if "test" in splits and with_test else None
    explicit_val = discover(recipe.val_data)["train"] if recipe.val_data else splits.get("val")
    explicit_val = cap(explicit_val, recipe.max_per_class, recipe.seed) if explicit_val is not None else None

    def decode(split: Split, name: str) -> torch.Tensor:
        return decode_images(split.paths, recipe.image_size, recipe.clahe, workers, cache_dir, desc=name)

    if rank != 0:
        barrier()
    pool_images = decode(pool, "train")
    val_images = decode(explicit_val, "val") if explicit_val is not None else None
    test_images = decode(test, "test") if test is not None else None
    if rank == 0:
        barrier()

    pool_thumbs = twins.thumbnails(pool_images)
    train_idx, val_idx, within = twins.twin_aware_split(pool.labels, pool_thumbs, recipe.val_fraction, recipe.seed, recipe.twin_threshold)
    notes = {"twin_pairs_within_training": len(within)}
    if explicit_val is not None:
        train, val, train_images = pool, explicit_val, pool_images
    elif recipe.val_fraction > 0:
        train, val = pool.subset(train_idx), pool.subset(val_idx)
        train_images, val_images = pool_images[train_idx], pool_images[val_idx]
        # Proof that no twin straddles the split: the best train match of each val image.
        clean = twins.clean_mask(twins.thumbnails(val_images), twins.thumbnails(train_images), recipe.twin_threshold)
        notes["val_twins_in_train"] = int((~clean).sum())
    else:
        train, val, train_images = pool, None, pool_images
    return RunData(train, val, test, pool, train_images, val_images, test_images, pool_thumbs, notes)
