"""Write the outside collections' split by patient or subject (training/splits/outside.json):
`python -m training.outside_split --data ../shared/data/outside`.

TCGA-LGG patients and NiChart subjects are assigned to train / validation / evaluation by a hash of their name, TCGA
within each contributing institution (the TCGA_<site>_ prefix). OASIS names no subject, and its slices cannot be grouped by
likeness (neighbouring files correlate as much as any two skull-stripped brains), so its evaluation part is its
distributor's own test folder (test_* files) and its train files are split into train and validation in blocks of
consecutive numbers; the record says how many evaluation slices have a near-copy in the train part. Run once; the file is the record every later command reads.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from brain_tumor.errors import exit_status
from training import outside, twins
from training.data import decode_images

SHARES = {"tcga-lgg": (0.6, 0.1, 0.3), "nichart": (0.45, 0.15, 0.4)}
OASIS_BLOCK = 32  # train files per block (OASIS-1 gives a brain about 30 axial slices here)
OASIS_VAL = 0.15
NEAR_COPY = 0.97  # DATA.md's near-copy level for the outside collections  # share of the train blocks held for validation


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", default="../shared/data/outside", help="the outside/ folder")
    p.add_argument("--out", default=str(outside.SPLIT_FILE), help="where to write the record")
    return p


def oasis_groups(root: Path) -> dict[str, str]:
    """OASIS's slices under a group each: its distributor's test folder (test_*) as one group per class, and its train
    files (train_<class><k>) in blocks of OASIS_BLOCK consecutive numbers."""
    groups = {}
    for f in outside.oasis_files(root):
        number = re.search(r"^train_[A-Za-z]+?(\d+)\.jpg$", f.name)
        block = f"train-{int(number.group(1)) // OASIS_BLOCK:03d}" if number else "test"
        groups[str(f.relative_to(root / "oasis"))] = f"{f.parent.name}/{block}"
    return groups


def near_copies(root: Path, groups: dict[str, str], parts: dict[str, list[str]]) -> int:
    """How many OASIS evaluation slices have a near-copy (r ≥ NEAR_COPY) among its train part's."""
    def images(part):
        files = [root / "oasis" / k for k, g in groups.items() if g in parts[part]]
        return twins.thumbnails(decode_images(files, twins.DECODE_SIZE, desc=f"oasis-{part}"))
    return int((~twins.clean_mask(images("eval"), images("train"), NEAR_COPY)).sum())


def main(args: argparse.Namespace) -> int:
    root = Path(args.data)
    tcga = sorted(p.name for p in (root / "tcga-lgg").iterdir() if p.is_dir())
    sites = sorted({p.split("_")[1] for p in tcga})
    tcga_parts = {part: [] for part in outside.PARTS}
    for site in sites:
        for part, names in outside.assign_parts([p for p in tcga if p.split("_")[1] == site], SHARES["tcga-lgg"], "tcga").items():
            tcga_parts[part] += names
    groups = oasis_groups(root)
    blocks = sorted({g for g in groups.values() if not g.endswith("/test")})
    oasis_parts = outside.assign_parts(blocks, (1 - OASIS_VAL, OASIS_VAL, 0.0), "oasis")
    oasis_parts["eval"] = sorted({g for g in groups.values() if g.endswith("/test")})
    near = near_copies(root, groups, oasis_parts)
    nichart = sorted({subject for subject, _, _ in outside.nichart_volumes(root)})
    record = {
        "about": "Outside collections split by patient or subject (python -m training.outside_split); training.fit learns "
                 "from train, chooses on val; training.evaluate_outside reports eval.",
        "tcga-lgg": {"parts": {k: sorted(v) for k, v in tcga_parts.items()}},
        "oasis": {"parts": oasis_parts, "groups": groups,
                  "grouping": f"eval: the distributor's test folder; train and val: blocks of {OASIS_BLOCK} consecutive train "
                              f"files; {near} eval slices have a near-copy (r >= {NEAR_COPY}) in the train part"},
        "nichart": {"parts": outside.assign_parts(nichart, SHARES["nichart"], "nichart")},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    sizes = {c: {k: len(v) for k, v in record[c]["parts"].items()} for c in ("tcga-lgg", "oasis", "nichart")}
    print(f"wrote {args.out}: {json.dumps(sizes)}; OASIS evaluation slices with a near-copy in its train part: {near}")
    return 0


if __name__ == "__main__":
    sys.exit(exit_status(lambda: main(get_args_parser().parse_args())))
