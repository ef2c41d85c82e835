"""Leakage audit: `python -m training.audit --data DIR [--threshold 0.99] [--out twins.csv]`.

Finds near-duplicate images (Pearson r of 32×32 grey thumbnails ≥ threshold) within each split
and across splits, prints counts per split and class, and writes every pair to a CSV file.
"""
from __future__ import annotations

import argparse
import csv
import sys

import numpy as np

from brain_tumor.classes import CLASSES
from brain_tumor.errors import exit_status
from training import twins
from training.data import DEFAULT_CACHE, cache_folder, decode_images, discover


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="dataset root (Kaggle, Roboflow) or one folder of class folders")
    p.add_argument("--threshold", type=float, default=twins.DEFAULT_THRESHOLD, help="Pearson r that makes two images twins (default 0.99)")
    p.add_argument("--out", default="twins.csv", help="CSV of every twin pair")
    p.add_argument("--cache-dir", default=str(DEFAULT_CACHE), help="decoded-image cache ('' to disable)")
    return p


def audit(args: argparse.Namespace) -> dict:
    splits = discover(args.data)
    cache = cache_folder(args.cache_dir)
    thumbs = {name: twins.thumbnails(decode_images(split.paths, twins.DECODE_SIZE, cache_dir=cache, desc=name)) for name, split in splits.items()}
    rows, report = [], {}

    def record(name_a, name_b, found):
        a, b = splits[name_a], splits[name_b]
        for i, j, r in found:
            rows.append([name_a, str(a.paths[i]), CLASSES[a.labels[i]], name_b, str(b.paths[j]), CLASSES[b.labels[j]], f"{r:.5f}"])
        return sum(a.labels[i] != b.labels[j] for i, j, _ in found)

    for name, split in splits.items():
        found = twins.pairs(thumbs[name], threshold=args.threshold)
        conflicts = record(name, name, found)
        involved = np.unique([i for i, _, _ in found] + [j for _, j, _ in found]).astype(int)
        report[f"{name} within"] = {"pairs": len(found), "images_in_a_pair": len(involved), "conflicting_labels": int(conflicts),
                                    "per_class": split.subset(involved).counts() if len(involved) else {c: 0 for c in CLASSES}}
    for name in [n for n in splits if n != "train"]:
        found = twins.pairs(thumbs[name], thumbs["train"], threshold=args.threshold)
        conflicts = record(name, "train", found)
        leaked = ~twins.clean_mask(thumbs[name], thumbs["train"], args.threshold)
        report[f"{name} vs train"] = {"pairs": len(found), "images_with_a_train_twin": int(leaked.sum()), "of": len(splits[name]),
                                      "conflicting_labels": int(conflicts), "per_class": splits[name].subset(np.flatnonzero(leaked)).counts()}

    with open(args.out, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["split_a", "path_a", "label_a", "split_b", "path_b", "label_b", "pearson_r"])
        writer.writerows(rows)

    print(f"Near-duplicates in {args.data} (Pearson r ≥ {args.threshold} on 32×32 grey thumbnails)")
    print("split sizes: " + ", ".join(f"{n} {len(s)} {s.counts()}" for n, s in splits.items()))
    for key, value in report.items():
        if "within" in key:
            print(f"  {key}: {value['pairs']} pairs over {value['images_in_a_pair']} images, per class {value['per_class']}, "
                  f"{value['conflicting_labels']} with conflicting labels")
        else:
            share = value["images_with_a_train_twin"] / max(1, value["of"])
            print(f"  {key}: {value['images_with_a_train_twin']} of {value['of']} images ({share:.0%}) have a twin in train, "
                  f"per class {value['per_class']}, {value['conflicting_labels']} pairs with conflicting labels")
    print(f"pairs written to {args.out}")
    return report


def main(argv: list[str] | None = None) -> int:
    return exit_status(lambda: audit(get_args_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
