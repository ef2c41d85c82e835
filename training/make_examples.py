"""Rebuild examples/: two Testing images per class that have no near-identical training twin.

`python -m training.make_examples --data ../shared/data/brain-tumor-mri --out examples`
The choice is by file name order among clean images; no model is consulted.
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np

from brain_tumor.classes import CLASSES
from training import twins
from training.datasets import decode_images, discover

LICENCE = "CC0 1.0 (as listed on Kaggle)"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="../shared/data/brain-tumor-mri")
    p.add_argument("--out", default="examples")
    p.add_argument("--per-class", type=int, default=2)
    args = p.parse_args(argv)
    splits = discover(args.data)
    train, test = splits["train"], splits["test"]
    clean = twins.clean_mask(twins.thumbnails(decode_images(test.paths, 224)), twins.thumbnails(decode_images(train.paths, 224)))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for c, name in enumerate(CLASSES):
        chosen = [i for i in np.flatnonzero((test.labels == c) & clean)][: args.per_class]
        for k, i in enumerate(chosen, 1):
            source = test.paths[i]
            target = out / f"{name}_{k}{source.suffix.lower()}"
            shutil.copyfile(source, target)
            rows.append(f"| `{target.name}` | {name} | Testing/{source.parent.name}/{source.name} |")
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
    print(readme)


if __name__ == "__main__":
    main()
