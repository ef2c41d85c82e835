"""CPU latency of a weights folder: `python -m benchmarks.latency [--weights DIR] [--rounds N] [--method M] [--layer L]`.

Times `predict` and `explain` on 512×512 slices, from a decoded PIL image to the result, at batch 1
(the two calls interleaved, so a busy machine slows both alike) and batch 16, and prints p50/p95,
throughput and what explain costs relative to predict.
"""
from __future__ import annotations

import argparse
import statistics
import sys

import numpy as np
import torch
from PIL import Image

from benchmarks.timing import summary, time_rounds
from brain_tumor.classifier import Classifier
from brain_tumor.errors import exit_status
from brain_tumor.explain import OFFERED

RESNET50_GFLOPS = 8.2  # 4.1 G multiply-adds per 224×224 image (torchvision's count) = 8.2 GFLOP


def matmul_gflops(size: int = 1024, rounds: int = 10) -> float:
    """This machine's float32 matrix-multiply rate through PyTorch: the ceiling for convolutions."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    return 2 * size**3 / statistics.median(time_rounds({"matmul": lambda: a @ b}, rounds)["matmul"]) / 1e9


def synthetic_slices(n: int, size: int = 512, seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    disc = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (0.42 * size) ** 2) * 90.0
    return [Image.fromarray(np.clip(disc + rng.normal(0, 25, disc.shape), 0, 255).astype(np.uint8)).convert("RGB") for _ in range(n)]


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default=None, help="weights folder or Hub id (default: the shipped weights)")
    p.add_argument("--rounds", type=int, default=30, help="timed rounds at batch 1 (batch 16 gets a quarter)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: PyTorch's default)")
    p.add_argument("--method", choices=OFFERED, default=None, help="explanation method (default: the weights' own)")
    p.add_argument("--layer", default=None, help="explained layer(s) (default: the weights' own)")
    p.add_argument("--backend", choices=["auto", "torch", "onnx", "onnx-int8"], default="auto",
                   help="what runs the network: auto (onnxruntime when installed), torch, onnx, onnx-int8")
    return p


def main(argv: list[str] | None = None) -> list[dict]:
    args = get_args_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    classifier = Classifier.from_pretrained(args.weights, backend=args.backend)
    config = classifier.config
    images = synthetic_slices(16)
    probe = classifier.explain(images[0], method=args.method, layer=args.layer)
    print(f"{config.architecture} at {config.image_size} px on CPU, {torch.get_num_threads()} threads, 512×512 inputs; "
          f"backend {classifier.backend}; explain = {probe.method} at {probe.layer}")
    if config.architecture.startswith("resnet50") and config.image_size == 224:
        rate = matmul_gflops()
        print(f"float32 matmul rate {rate:.0f} GFLOP/s: a ResNet-50 forward pass ({RESNET50_GFLOPS} GFLOP) cannot beat "
              f"{1000 * RESNET50_GFLOPS / rate:.0f} ms")
    single = time_rounds({
        "predict": lambda: classifier.predict(images[0]),
        "explain": lambda: classifier.explain(images[0], method=args.method, layer=args.layer),
    }, args.rounds)
    batched = time_rounds({
        "predict": lambda: classifier.predict_batch(images),
        "explain": lambda: [classifier.explain(image, method=args.method, layer=args.layer) for image in images],
    }, max(3, args.rounds // 4), warmup=1)
    print(f"{'call':8} {'batch':>5} {'p50 ms':>9} {'p95 ms':>9} {'img/s':>8}")
    rows = []
    for batch, times in ((1, single), (16, batched)):
        for name, values in times.items():
            row = {"call": name, "batch": batch, **summary(values, batch)}
            rows.append(row)
            print(f"{name:8} {batch:>5} {row['p50_ms']:>9.1f} {row['p95_ms']:>9.1f} {row['per_s']:>8.1f}")
    ratio = statistics.median(e / p for e, p in zip(single["explain"], single["predict"]))
    print(f"explain / predict at batch 1: {ratio:.2f}× (median of {args.rounds} paired rounds)")
    return rows


if __name__ == "__main__":
    sys.exit(exit_status(main))
