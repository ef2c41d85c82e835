"""CPU latency of the shipped model: `python -m brain_tumor.bench [--weights DIR] [--repeats N]`.

Times `predict` and `explain` (Grad-CAM) on 512×512 images at batch 1 and 16, from decoded
PIL image to result, and prints p50/p95 latency and throughput.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from PIL import Image

from brain_tumor.classifier import Classifier


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def _time(fn, repeats: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


RESNET50_GFLOPS = 8.2  # 4.1 G multiply-adds per 224×224 image (torchvision's count) = 8.2 GFLOP


def matmul_gflops(size: int = 1024, repeats: int = 10) -> float:
    """This machine's float32 matrix-multiply rate through PyTorch: the ceiling for convolutions."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    times = _time(lambda: a @ b, repeats)
    return 2 * size**3 / statistics.median(times) / 1e9


def synthetic_slices(n: int, size: int = 512, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    disc = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (0.42 * size) ** 2) * 90.0
    return [Image.fromarray(np.clip(disc + rng.normal(0, 25, disc.shape), 0, 255).astype(np.uint8)).convert("RGB") for _ in range(n)]


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=None, help="weights folder or Hub id (default: the shipped weights)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: PyTorch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    classifier = Classifier.from_pretrained(args.weights)
    images = synthetic_slices(16)
    cases = [
        ("predict", 1, lambda: classifier.predict(images[0])),
        ("predict", 16, lambda: classifier.predict_batch(images)),
        ("explain", 1, lambda: classifier.explain(images[0])),
        ("explain", 16, lambda: [classifier.explain(image) for image in images]),
    ]
    print(f"{classifier.config.architecture} at {classifier.config.image_size} px on CPU, {torch.get_num_threads()} threads, 512×512 inputs")
    if classifier.config.architecture == "resnet50" and classifier.config.image_size == 224:
        rate = matmul_gflops()
        print(f"float32 matmul rate {rate:.0f} GFLOP/s: a ResNet-50 forward pass ({RESNET50_GFLOPS} GFLOP) cannot beat "
              f"{1000 * RESNET50_GFLOPS / rate:.0f} ms; Grad-CAM adds a backward pass (about twice the forward's work)")
    print(f"{'call':8} {'batch':>5} {'p50 ms':>9} {'p95 ms':>9} {'img/s':>8}")
    rows = []
    for name, batch, fn in cases:
        repeats = args.repeats if batch == 1 else max(3, args.repeats // 4)
        times = _time(fn, repeats)
        row = {"call": name, "batch": batch, "p50_ms": 1000 * statistics.median(times), "p95_ms": 1000 * _percentile(times, 95),
               "img_per_s": batch / statistics.median(times), "repeats": repeats}
        rows.append(row)
        print(f"{name:8} {batch:>5} {row['p50_ms']:>9.1f} {row['p95_ms']:>9.1f} {row['img_per_s']:>8.1f}")
    return rows


if __name__ == "__main__":
    main()
