"""The Ray Data engine against the plain command line on the same slices:
`python -m benchmarks.ray_throughput [--data DIR] [--count 2000] [--actors N] [--weights DIR]`.

Links the first --count images under --data (default: the Kaggle set's Training split) into a temporary folder,
then times `brain-tumor-predict FOLDER --csv` (one process, batches of 16) and `brain-tumor-predict --engine ray
FOLDER --out` (a local Ray started for the run: tasks decode, --actors Classifier actors score), each from the
command to its last row written. Prints slices per second for both, Ray's start-up share (a run over 8 slices),
and the per-actor rate a cluster can be sized from.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.serve import ROOT

SUFFIXES = {".jpg", ".jpeg", ".png"}


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode not in (0, 1):  # 1: some file could not be read, which is an answer too
        raise SystemExit(f"error: {' '.join(command[2:5])}… failed:\n{result.stderr[-2000:]}")
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "brain-tumor-mri" / "Training")
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--actors", type=int, default=None, help="Classifier actors (default: the engine's, one per CPU less one)")
    parser.add_argument("--weights", default=None)
    args = parser.parse_args(argv)
    files = sorted(p for p in args.data.rglob("*") if p.suffix.lower() in SUFFIXES)[:args.count]
    if len(files) < args.count:
        raise SystemExit(f"error: {args.data} holds {len(files)} images, fewer than --count {args.count}.")
    weights = ["--weights", args.weights] if args.weights else []
    actors = ["--actors", str(args.actors)] if args.actors else []
    cpus = os.cpu_count() or 1
    print(f"{len(files)} slices from {args.data}; {cpus} CPUs")
    with tempfile.TemporaryDirectory() as scratch:
        folder, small = Path(scratch) / "slices", Path(scratch) / "few"
        folder.mkdir()
        small.mkdir()
        for i, path in enumerate(files):
            (folder / f"{i:06d}{path.suffix}").symlink_to(path.resolve())
            if i < 8:
                (small / f"{i:06d}{path.suffix}").symlink_to(path.resolve())
        cli = [sys.executable, "-m", "brain_tumor.predict", *weights]
        plain = timed(cli + [str(folder), "--csv", str(Path(scratch) / "plain.csv")])
        start_up = timed(cli + ["--engine", "ray", *actors, str(small), "--out", str(Path(scratch) / "few-out")])
        on_ray = timed(cli + ["--engine", "ray", *actors, str(folder), "--out", str(Path(scratch) / "out")])
    used = args.actors or max(1, cpus - 1)
    steady = len(files) / max(1e-9, on_ray - start_up)
    print(f"plain command line        {plain:7.1f} s   {len(files) / plain:6.1f} slices/s")
    print(f"--engine ray ({used} actor{'s' if used > 1 else ''})    {on_ray:7.1f} s   {len(files) / on_ray:6.1f} slices/s")
    print(f"  of which Ray's start-up and one model load per actor (a run over 8 slices): {start_up:.1f} s")
    print(f"  after start-up: {steady:.1f} slices/s, {steady / used:.1f} slices/s per actor")
    return 0


if __name__ == "__main__":
    sys.exit(main())
