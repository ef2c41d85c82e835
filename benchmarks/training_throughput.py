"""Training throughput: `python -m benchmarks.training_throughput --model resnet50 --device cuda --batch-size 256`.

Synthetic uint8 batches already on the device go through the same augment → normalise →
forward → backward → step path as training.fit, so the figure is the model's, not the disk's.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from brain_tumor.classes import CLASSES
from brain_tumor.models import ARCHITECTURES, create_model, get_architecture
from brain_tumor.preprocess import normalize
from training.augment import AugmentConfig, augment


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", choices=sorted(ARCHITECTURES), default="resnet50")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--image-size", type=int, default=None, help="input side (default: the architecture's)")
    p.add_argument("--steps", type=int, default=30, help="timed steps")
    p.add_argument("--warmup", type=int, default=10, help="untimed steps first (cuDNN autotuning, compilation)")
    p.add_argument("--amp", choices=["bf16", "none"], default="bf16")
    p.add_argument("--compile", action="store_true")
    return p


def main(args: argparse.Namespace) -> dict:
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else ("cpu" if args.device == "auto" else args.device))
    torch.backends.cudnn.benchmark = True
    arch = get_architecture(args.model)
    args.image_size = args.image_size or arch.image_size
    model = create_model(args.model, len(CLASSES), init="scratch", image_size=args.image_size).to(device)
    channels_last = device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    step_model = torch.compile(model) if args.compile else model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    images = torch.randint(0, 256, (args.batch_size, 3, args.image_size, args.image_size), dtype=torch.uint8, device=device)
    labels = torch.randint(0, len(CLASSES), (args.batch_size,), device=device)
    aug = AugmentConfig()

    def step() -> None:
        x = normalize(augment(images, aug), arch.mean, arch.std)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp == "bf16"):
            loss = F.cross_entropy(step_model(x).float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    model.train()
    for _ in range(args.warmup):
        step()
    sync()
    times = []
    for _ in range(args.steps):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    median = statistics.median(times)
    result = {
        "model": args.model, "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "batch_size": args.batch_size, "amp": args.amp, "compile": args.compile,
        "step_ms_median": 1000 * median, "img_per_s": args.batch_size / median,
        "img_per_s_mean": args.batch_size * len(times) / sum(times),
    }
    print(f"{result['model']} on {result['device']}: batch {args.batch_size}, {args.amp}, compile={args.compile}: "
          f"step {result['step_ms_median']:.1f} ms (median of {args.steps}), {result['img_per_s']:.0f} img/s")
    return result


if __name__ == "__main__":
    main(get_args_parser().parse_args())
