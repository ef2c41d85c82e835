"""Pack the outside collections' train and validation parts small enough to carry to a GPU machine (a device call carries
64 MiB): `python -m training.pack_outside --data ../shared/data/outside --out .data/outside-packed`.

The copy keeps the folder layout, so `training.fit --outside` reads it as it reads the original; only the recorded parts
asked for are copied (the evaluation part stays here, where it is measured), slices are encoded again at the classifier's
input side, and TCGA-LGG's masks are kept as they are.
"""
from __future__ import annotations

import argparse
import json
import sys

from brain_tumor.errors import exit_status
from training import outside


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", default="../shared/data/outside", help="the outside/ folder")
    p.add_argument("--out", required=True, help="a new folder for the copy")
    p.add_argument("--parts", nargs="+", choices=outside.PARTS, default=["train", "val"], help="the recorded parts to copy")
    p.add_argument("--side", type=int, default=224, help="slices larger than this are resized to at most this many pixels a side")
    p.add_argument("--quality", type=int, default=80, help="JPEG quality of the resized slices")
    return p


def main(args: argparse.Namespace) -> None:
    written = outside.pack(args.data, args.out, tuple(args.parts), args.side, args.quality)
    print(json.dumps(written, indent=1))
    print(f"{sum(w['bytes'] for w in written.values()) / 2**20:.1f} MiB in {args.out}")


if __name__ == "__main__":
    sys.exit(exit_status(lambda: main(get_args_parser().parse_args())))
