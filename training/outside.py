"""Brain MRI from collections outside the Kaggle set (../shared/DATA.md, outside/): TCGA-LGG gliomas (pre-contrast T1,
FLAIR and post-contrast T1 of each slice, with the tumour drawn on FLAIR), OASIS-1 and NiChart healthy brains.

Each collection is split by patient or subject, never by slice (neighbouring slices are near-copies), into a train,
a validation and an evaluation part. The split is recorded in training/splits/outside.json (one fact, one place):
training.fit learns from the train parts and chooses on the validation parts; training.evaluate_outside reports on
the evaluation parts. Subjects the record does not name (a newer copy of a collection) belong to no part.
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from brain_tumor.classes import CLASSES
from brain_tumor.errors import UserError
from brain_tumor.preprocess import resize_image
from brain_tumor.volumes import Volume, read_nifti, volume_of_slices
from training import twins
from training.data import RunData, Split, cached_images, load_run_data

SPLIT_FILE = Path(__file__).with_name("splits") / "outside.json"
PARTS = ("train", "val", "eval")
TCGA_SEQUENCES = ("pre", "flair", "post")
NICHART_SEQUENCES = ("T1", "FL")
# A TCGA-LGG slice counts as "no tumour" only this many slices or more away from every slice with tumour in its mask:
# the mask is drawn on FLAIR, and a slice beside the tumour may hold a sliver of it that the mask missed.
TUMOUR_FREE_MARGIN = 2


class OutsideDataError(UserError, RuntimeError):
    """The outside-collections folder is missing or laid out differently."""


@dataclasses.dataclass(frozen=True)
class OutsideSlice:
    """One slice of an outside collection: an image file, or slice `index` of a NIfTI volume (NiChart)."""
    collection: str  # "tcga-lgg", "oasis" or "nichart"
    subject: str
    sequence: str  # TCGA: pre / flair / post; OASIS: T1; NiChart: T1 / FL
    index: int  # the slice's place in its subject's stack (TCGA's <n>, NiChart's slice index; OASIS: its file's order)
    label: str  # a class of CLASSES: glioma where TCGA's mask holds tumour, otherwise notumor
    path: Path
    mask: Path | None = None
    edge: bool = False  # TCGA: an empty-mask slice near the tumour (neither a tumour nor a no-tumour example)

    @property
    def cell(self) -> str:
        """The collection and class: what balanced sampling weighs alike within a class."""
        return f"{self.collection}/{self.label}"


def _require(folder: Path) -> Path:
    if not folder.is_dir():
        raise OutsideDataError(f"{folder} does not exist; pass the outside/ folder of ../shared/data (tcga-lgg/, oasis/, nichart/).")
    return folder


def tcga_slices(root: Path) -> list[OutsideSlice]:
    """Every TCGA-LGG slice in each of its three sequences, labelled by its mask."""
    found = []
    for patient in sorted(p for p in _require(root / "tcga-lgg").iterdir() if p.is_dir()):
        numbers = sorted({int(m.group(1)) for f in patient.iterdir() if (m := re.search(r"_(\d+)_mask\.png$", f.name))})
        tumour = {n for n in numbers if np.asarray(Image.open(patient / f"{patient.name}_{n}_mask.png")).max() > 0}
        for n in numbers:
            near = min((abs(n - t) for t in tumour), default=10**6)
            for sequence in TCGA_SEQUENCES:
                found.append(OutsideSlice("tcga-lgg", patient.name, sequence, n, "glioma" if n in tumour else "notumor",
                                          patient / f"{patient.name}_{n}_{sequence}.jpg", patient / f"{patient.name}_{n}_mask.png",
                                          edge=n not in tumour and near < TUMOUR_FREE_MARGIN))
    return found


def oasis_files(root: Path) -> list[Path]:
    return sorted(p for p in _require(root / "oasis").rglob("*.jpg"))


def oasis_slices(root: Path) -> list[OutsideSlice]:
    """OASIS-1 slices (no tumour), each under its group in outside.json (OASIS names no subject)."""
    groups = _record()["oasis"]["groups"]
    found = []
    for i, path in enumerate(oasis_files(root)):
        key = str(path.relative_to(root / "oasis"))
        found.append(OutsideSlice("oasis", groups.get(key, "unrecorded"), "T1", i, "notumor", path))
    return found


def nichart_volumes(root: Path) -> list[tuple[str, str, Path]]:
    """(subject, sequence, file) of every NiChart volume."""
    found = []
    for path in sorted(_require(root / "nichart").glob("*.nii.gz")):
        m = re.match(r"(Subj\d+)_(T1|FL)\.nii\.gz$", path.name)
        if m:
            found.append((m.group(1), m.group(2), path))
    return found


@lru_cache(maxsize=32)
def read_volume(path: Path) -> Volume:
    return read_nifti(Path(path).read_bytes(), Path(path).name, "axial")


def nichart_slices(root: Path) -> list[OutsideSlice]:
    """The axial slices inside the head of every NiChart volume (no tumour)."""
    found = []
    for subject, sequence, path in nichart_volumes(root):
        volume = read_volume(path)
        found += [OutsideSlice("nichart", subject, sequence, i, "notumor", path)
                  for i, outside in enumerate(volume.outside_head) if not outside]
    return found


def all_slices(root: str | Path) -> list[OutsideSlice]:
    root = Path(root)
    return tcga_slices(root) + oasis_slices(root) + nichart_slices(root)


# ---------------------------------------------------------------- the split by patient or subject

@lru_cache(maxsize=1)
def _record() -> dict:
    return json.loads(SPLIT_FILE.read_text())


def part_of(collection: str, subject: str) -> str | None:
    """"train", "val" or "eval" for a recorded subject; None for one the record does not name."""
    parts = _record()[collection]["parts"]
    return next((part for part in PARTS if subject in parts[part]), None)


def in_part(slices: list[OutsideSlice], part: str) -> list[OutsideSlice]:
    return [s for s in slices if part_of(s.collection, s.subject) == part]


def assign_parts(subjects: list[str], shares: tuple[float, float, float], salt: str) -> dict[str, list[str]]:
    """Subjects in train / val / eval parts of about these shares, by a hash of their name (stable as data grows)."""
    ranked = sorted(subjects, key=lambda s: hashlib.sha256(f"{salt}:{s}".encode()).hexdigest())
    cut1 = round(shares[0] * len(ranked))
    cut2 = cut1 + max(1, round(shares[1] * len(ranked)))
    return {"train": sorted(ranked[:cut1]), "val": sorted(ranked[cut1:cut2]), "eval": sorted(ranked[cut2:])}


# ---------------------------------------------------------------- slices as images

def picture(item: OutsideSlice) -> Image.Image:
    """The slice as the RGB image the classifier reads."""
    if item.collection == "nichart":
        return read_volume(item.path).picture(item.index)
    return Image.open(item.path).convert("RGB")


def tumour_mask(item: OutsideSlice, shape: int | tuple[int, int]) -> np.ndarray:
    """The tumour mask (bool) at side×side or (height, width), for TCGA slices; all False for the others."""
    height, width = (shape, shape) if isinstance(shape, int) else shape
    if item.mask is None:
        return np.zeros((height, width), dtype=bool)
    return np.asarray(Image.open(item.mask).convert("L").resize((width, height), Image.NEAREST)) > 127


def tumour_share(item: OutsideSlice) -> float:
    """The share of the slice its tumour mask covers, at the mask's own size (0 for a slice without a mask)."""
    if item.mask is None:
        return 0.0
    return float((np.asarray(Image.open(item.mask).convert("L")) > 127).mean())


def decode(items: list[OutsideSlice], side: int, clahe: bool = False, cache_dir: Path | None = None, desc: str = "outside") -> torch.Tensor:
    """N×3×side×side uint8 images of the slices (kept under cache_dir, keyed by the slices and size)."""
    def read() -> np.ndarray:
        out = np.empty((len(items), 3, side, side), dtype=np.uint8)
        for i, item in enumerate(tqdm(items, desc=desc, leave=False)):
            out[i] = resize_image(picture(item), side, clahe).transpose(2, 0, 1)
        return out

    return cached_images(read, "\n".join(f"{s.path.resolve()}#{s.index}" for s in items), side, clahe, cache_dir, desc)


def labels_of(items: list[OutsideSlice]) -> np.ndarray:
    return np.array([CLASSES.index(s.label) for s in items], dtype=np.int64)


def tcga_stack(root: Path, patient: str, sequence: str) -> tuple[Volume, list[int]]:
    """A TCGA-LGG patient's slices of one sequence in slice order, as a scan, and the slice numbers <n> in that order."""
    folder = _require(Path(root) / "tcga-lgg") / patient
    numbers = sorted(int(m.group(1)) for f in folder.iterdir() if (m := re.search(rf"_(\d+)_{sequence}\.jpg$", f.name)))
    slices = [np.asarray(Image.open(folder / f"{patient}_{n}_{sequence}.jpg").convert("L")) for n in numbers]
    return volume_of_slices(f"{patient} ({sequence})", "image stack", "axial", slices), numbers


# ---------------------------------------------------------------- a smaller copy for a GPU machine

def pack(root: str | Path, out: str | Path, parts: tuple[str, ...] = ("train", "val"), side: int = 224, quality: int = 80) -> dict:
    """Copy the subjects of `parts` to `out` in the same layout, small enough to carry to a GPU machine: TCGA-LGG's and
    OASIS's slices larger than side (the classifier's input side) JPEG-encoded again at most side px a side and
    `quality` (the others copied as they are); TCGA's masks as they are (they decide each slice's class), but no image of
    a slice beside a tumour (no part trains on it); NiChart's volumes as they are. Returns files and bytes per collection."""
    root, out = Path(root), Path(out)
    if out.exists() and any(out.iterdir()):
        raise OutsideDataError(f"{out} is not empty; pack into a new folder.")
    written: dict[str, dict[str, int]] = collections.defaultdict(lambda: {"files": 0, "bytes": 0})

    def put(collection: str, source: Path, smaller: bool = False) -> None:
        target = out / source.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        image = Image.open(source) if smaller else None
        if image is None or max(image.size) <= side:
            target.write_bytes(source.read_bytes())
        else:
            scale = side / max(image.size)
            size = (round(image.width * scale), round(image.height * scale))
            image.convert("L").resize(size, Image.BICUBIC).save(target, "JPEG", quality=quality)
        written[collection]["files"] += 1
        written[collection]["bytes"] += target.stat().st_size

    kept = [s for s in tcga_slices(root) + oasis_slices(root) if part_of(s.collection, s.subject) in parts]
    for item in tqdm(kept, desc="pack", unit="slice"):
        if item.mask is not None and not (out / item.mask.relative_to(root)).exists():
            put(item.collection, item.mask)
        if not item.edge:
            put(item.collection, item.path, smaller=True)
    for subject, _, path in nichart_volumes(root):
        if part_of("nichart", subject) in parts:
            put("nichart", path)
    return dict(written)


# ---------------------------------------------------------------- outside collections in a training run

def training_slices(root: str | Path, part: str) -> list[OutsideSlice]:
    """The slices of a part that teach a class: every one but TCGA's slices beside a tumour (neither class for sure)."""
    return [s for s in in_part(all_slices(root), part) if not s.edge]


@dataclasses.dataclass
class OutsideRun:
    """What the outside collections added to a run: the cell (collection/class) of every training image, the Kaggle
    images as kaggle/<class>; the tumour masks of the outside training images (the last ones; TCGA's tumour slices
    have one, the no-tumour slices an empty one) for a gated model's box loss; notes for the provenance."""
    cells: list[str]
    masks: torch.Tensor  # len(outside train)×S×S uint8
    has_mask: torch.Tensor  # bool
    notes: dict


def kaggle_cells(labels) -> list[str]:
    """The cell (collection/class) of each Kaggle training image, as training draws balance over them."""
    return [f"kaggle/{CLASSES[c]}" for c in labels]


def add_to_run(data, root: str | Path, side: int, clahe: bool, cache_dir: Path | None) -> OutsideRun:
    """Add the outside collections' train part to a run's training images and their validation part to its validation
    images (training.data.RunData, changed in place)."""
    train, val = training_slices(root, "train"), training_slices(root, "val")
    train_images = decode(train, side, clahe, cache_dir, "outside-train")
    val_images = decode(val, side, clahe, cache_dir, "outside-val")
    cells = kaggle_cells(data.train.labels) + [s.cell for s in train]
    name = lambda s: f"{s.path}#{s.index}" if s.collection == "nichart" else str(s.path)  # noqa: E731
    data.train = Split(data.train.paths + [name(s) for s in train], np.concatenate([data.train.labels, labels_of(train)]))
    data.train_images = torch.cat([data.train_images, train_images])
    data.pool_thumbs = torch.cat([data.pool_thumbs, twins.thumbnails(train_images), twins.thumbnails(val_images)])
    if data.val is not None:
        data.val = Split(data.val.paths + [name(s) for s in val], np.concatenate([data.val.labels, labels_of(val)]))
        data.val_images = torch.cat([data.val_images, val_images])
    count = lambda items: dict(sorted(collections.Counter(f"{s.collection}/{s.sequence}/{s.label}" for s in items).items()))  # noqa: E731
    notes = {"folder": str(root), "split": str(SPLIT_FILE.name), "train": count(train), "val": count(val)}
    masks = torch.from_numpy(np.stack([tumour_mask(s, side) for s in train]).astype(np.uint8)) if train else torch.zeros(0, side, side)
    has = torch.tensor([s.collection == "tcga-lgg" or s.label == "notumor" for s in train], dtype=torch.bool)
    return OutsideRun(cells, masks, has, notes)


def validation_groups(data: RunData, root: str | Path | None) -> tuple[np.ndarray, np.ndarray]:
    """The collection of every validation image, and its subject's fold for two-fold cross-fitting (0 or 1, by a hash
    of the subject; Kaggle's images each their own subject). The outside validation slices follow Kaggle's, in the
    order add_to_run appends them."""
    added = training_slices(root, "val") if root else []
    kaggle = len(data.val) - len(added)
    groups = ["kaggle"] * kaggle + [s.collection for s in added]
    subjects = [str(p) for p in data.val.paths[:kaggle]] + [f"{s.collection}/{s.subject}" for s in added]
    folds = [int(hashlib.sha256(s.encode()).hexdigest(), 16) % 2 for s in subjects]
    return np.array(groups), np.array(folds)


def load_judged_data(recipe, outside_root: str | Path | None, side: int, clahe: bool, cache_dir: Path | None,
                     with_test: bool = True):
    """The images a weights folder was judged on, for the commands that judge it again (training.soup,
    training.calibrate_ood): its run's Kaggle split (training.data.load_run_data) and, when it learnt the outside
    collections from `outside_root`, their train and validation parts added as training.fit added them; with the cell
    (collection/class) of every training image, as training.fit balanced its draws over them."""
    data = load_run_data(recipe, cache_dir, with_test=with_test)
    if not outside_root:
        return data, kaggle_cells(data.train.labels)
    added = add_to_run(data, outside_root, side, clahe, cache_dir)
    data.notes["outside"] = added.notes
    return data, added.cells


def balanced_weights(cells: list[str]) -> torch.Tensor:
    """Sampling weights that give each class the same share, and each collection within a class the same share."""
    by_class: dict[str, set[str]] = {}
    for cell in cells:
        by_class.setdefault(cell.split("/")[1], set()).add(cell)
    sizes = collections.Counter(cells)
    return torch.tensor([1 / (len(by_class) * len(by_class[cell.split("/")[1]]) * sizes[cell]) for cell in cells], dtype=torch.float64)
