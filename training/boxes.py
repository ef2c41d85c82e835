"""Slices with a tumour box (figshare, Cheng et al. 2017), for judging and teaching where a model looks.

`boxes.csv` holds `path,label,width,height,x_min,y_min,x_max,y_max` in pixels of each slice. File
numbers are figshare's own and a patient's slices have neighbouring numbers, so the split into a
part that training may use and a part kept for evaluation is by number range, with a guard band
of numbers between them that neither side uses.
"""
from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np

from brain_tumor.classes import CLASSES, normalize_class_name
from training.data import DatasetError

BOXES_CSV = "boxes.csv"
# Per class, the first file number of the evaluation part (about the top 36% of the 1,472 boxed slices'
# numbers); the GUARD numbers below it are unused. (Until December 2026, on 765 slices: 1841, 121, 1071.)
EVAL_FROM = {"glioma": 2080, "meningioma": 220, "pituitary": 1200}
GUARD = 20
# Within the train part, the numbers from these on (about its top 28%) are the box validation that training
# selects on; the GUARD numbers below them are unused, and the slices below that teach the gate.
BOX_VAL_FROM = {"glioma": 1940, "meningioma": 145, "pituitary": 1105}
PARTS = ("train", "eval", "all")


@dataclasses.dataclass(frozen=True)
class BoxedSlice:
    path: Path
    label: int  # index into CLASSES
    number: int  # figshare's file number
    size: tuple[int, int]  # width, height of the slice in pixels
    box: tuple[float, float, float, float]  # x_min, y_min, x_max, y_max in pixels of the slice

    @property
    def part(self) -> str:
        """'eval', 'train', or 'guard' (too close to the boundary to use on either side)."""
        first = EVAL_FROM.get(CLASSES[self.label])
        if first is None or self.number >= first:
            return "eval"
        return "train" if self.number < first - GUARD else "guard"

    def box_at(self, side: int) -> tuple[float, float, float, float]:
        """The box in pixels of the slice resized to side×side (as the model sees it)."""
        sx, sy = side / self.size[0], side / self.size[1]
        x0, y0, x1, y1 = self.box
        return x0 * sx, y0 * sy, x1 * sx, y1 * sy


def box_validation_split(slices: list[BoxedSlice]) -> tuple[list[BoxedSlice], list[BoxedSlice]]:
    """The train part's slices as (those to train on, the box validation), by file number with a guard band."""
    fit, val = [], []
    for s in slices:
        first = BOX_VAL_FROM.get(CLASSES[s.label])
        if first is None or s.number >= first:
            val.append(s)
        elif s.number < first - GUARD:
            fit.append(s)
    return fit, val


def box_mask(box: tuple[float, float, float, float], side: int) -> np.ndarray:
    """side×side bool mask of the pixels whose centres lie inside the box."""
    centres = np.arange(side) + 0.5
    x0, y0, x1, y1 = box
    inside_x = (centres >= x0) & (centres <= x1)
    inside_y = (centres >= y0) & (centres <= y1)
    return inside_y[:, None] & inside_x[None, :]


def read_boxes(folder: str | Path, part: str = "all") -> list[BoxedSlice]:
    """The boxed slices under `folder` (which holds boxes.csv), in file order, of one part or all."""
    folder = Path(folder)
    if part not in PARTS:
        raise DatasetError(f"Unknown part {part!r} of the box data; choose one of {', '.join(PARTS)}.")
    if not (folder / BOXES_CSV).is_file():
        raise DatasetError(f"{folder} has no {BOXES_CSV}; pass the folder of the figshare slices with tumour boxes.")
    slices = []
    with open(folder / BOXES_CSV, newline="") as handle:
        for row in csv.DictReader(handle):
            path = folder / row["path"]
            try:
                label = CLASSES.index(normalize_class_name(row["label"]))
                number = int(path.stem)
                box = tuple(float(row[k]) for k in ("x_min", "y_min", "x_max", "y_max"))
                size = (int(row["width"]), int(row["height"]))
            except (KeyError, ValueError) as error:
                raise DatasetError(f"{folder / BOXES_CSV} has a row it cannot read ({error}); expected "
                                   "path,label,width,height,x_min,y_min,x_max,y_max.") from None
            slices.append(BoxedSlice(path, label, number, size, box))
    missing = [s.path for s in slices if not s.path.is_file()]
    if missing:
        raise DatasetError(f"{missing[0]} is listed in {BOXES_CSV} but missing ({len(missing)} files missing in all).")
    chosen = [s for s in slices if part == "all" or s.part == part]
    return sorted(chosen, key=lambda s: (s.label, s.number))
