"""Rebuild examples/: two Testing images per class that have no near-identical training twin.

`python -m training.make_examples --data ../shared/data/brain-tumor-mri --out examples`
The choice is by file name order among clean images; no model is consulted. examples.csv lists each
file's true class and source; its `plane` column (axial, coronal, sagittal) is a person's reading of
the image, kept across rebuilds.
"""
from __future__ import annotations

import argparse
import csv
import shutil
import sys
from pathlib import Path

import numpy as np

from brain_tumor.classes import CLASSES
from brain_tumor.errors import exit_status
from training import twins
from training.data import DEFAULT_CACHE, cache_folder, decode_images, discover

LICENCE = "CC0 1.0 (as listed on Kaggle)"


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data/brain-tumor-mri", help="the Kaggle dataset root (Training/ and Testing/)")
    p.add_argument("--out", default="examples")
    p.add_argument("--per-class", type=int, default=2)
    p.add_argument("--cache-dir", default=str(DEFAULT_CACHE), help="decoded-image cache ('' to disable)")
    return p


def make_examples(args: argparse.Namespace) -> None:
    out = Path(args.out)
    planes = {}
    if (out / "examples.csv").is_file():
        planes = {r["source"]: r["plane"] for r in csv.DictReader(open(out / "examples.csv", newline=""))}
    splits = discover(args.data)
    train, test = splits["train"], splits["test"]
    cache = cache_folder(args.cache_dir)
    test_thumbs = twins.thumbnails(decode_images(test.paths, twins.DECODE_SIZE, cache_dir=cache, desc="test"))
    clean = twins.clean_mask(test_thumbs, twins.thumbnails(decode_images(train.paths, twins.DECODE_SIZE, cache_dir=cache, desc="train")))
    out.mkdir(parents=True, exist_ok=True)
    rows, table = [], []
    for c, name in enumerate(CLASSES):
        chosen = [i for i in np.flatnonzero((test.labels == c) & clean)][: args.per_class]
        for k, i in enumerate(chosen, 1):
            source = test.paths[i]
            target = out / f"{name}_{k}{source.suffix.lower()}"
            shutil.copyfile(source, target)
            where = f"Testing/{source.parent.name}/{source.name}"
            rows.append(f"| `{target.name}` | {name} | {where} |")
            table.append({"file": target.name, "true_class": name, "plane": planes.get(where, ""), "source": where})
    readme = f"""# Example images

Two slices per class from the `Testing` split of the Kaggle "Brain Tumor MRI Dataset"
(masoudnickparvar/brain-tumor-mri-dataset; licence: {LICENCE}), each chosen among the test images
that have **no** near-identical image in `Training` (Pearson r < 0.99 on 32×32 grey thumbnails), so
the gallery does not show the model pictures it has effectively seen. Rebuilt by
`python -m training.make_examples`.

| file | true class | source in the dataset |
| --- | --- | --- |
""" + "\n".join(rows) + "\n"
    (out / "README.md").write_text(readme)
    with open(out / "examples.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["file", "true_class", "plane", "source"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(table)
    print(readme)


def main(argv: list[str] | None = None) -> int:
    return exit_status(lambda: make_examples(get_args_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
