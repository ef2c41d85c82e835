"""Train a brain_tumor model: `python -m training.fit --model resnet50 --data DIR --out DIR`.

Read top to bottom: get_args_parser, load_data, build_*, train_one_epoch, evaluate, main.
Multi-GPU / multi-node: the same script under `torchrun --nproc-per-node N -m training.fit ...`.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import json
import math
import os
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from brain_tumor.classes import CLASSES
from brain_tumor.config import ModelConfig
from brain_tumor.models import ARCHITECTURES, PretrainedWeightsError, create_model, get_architecture
from brain_tumor.preprocess import normalize
from brain_tumor.weights import WeightsError, load_weights, save_weights
from training import twins
from training.augment import AugmentConfig, augment
from training.datasets import DatasetError, Split, decode_images, discover
from training.metrics import classification_metrics, fit_temperature

# The reference recipes; any flag given on the command line overrides these.
RECIPES = {
    "resnet50": dict(init="imagenet", optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=1e-4, batch_size=32, epochs=10, image_size=224),
    "baseline": dict(init="scratch", optimizer="adamw", lr=1e-4, momentum=0.9, weight_decay=1e-4, batch_size=128, epochs=10, image_size=224),
}


class UsageError(RuntimeError):
    """A flag combination that cannot work here; one sentence for the user."""


DEFAULT_CACHE = Path(os.environ.get("BRAIN_TUMOR_CACHE", Path.home() / ".cache" / "brain_tumor"))


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Train a brain-tumour MRI classifier.", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", choices=sorted(ARCHITECTURES), default="resnet50", help="architecture")
    p.add_argument("--data", default="../shared/data/brain-tumor-mri", help="dataset folder (Kaggle, Roboflow or class folders), or 'kaggle' to download")
    p.add_argument("--out", default=None, help="run folder (logs, checkpoint, weights/); default runs/<model>-<time>")
    p.add_argument("--epochs", type=int, default=None, help="epochs (recipe: 10)")
    p.add_argument("--batch-size", type=int, default=None, help="batch size per process (recipe: resnet50 32, baseline 128)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (recipe: resnet50 0.01, baseline 1e-4)")
    p.add_argument("--optimizer", choices=["sgd", "adamw"], default=None, help="recipe: resnet50 sgd, baseline adamw")
    p.add_argument("--momentum", type=float, default=None, help="SGD momentum (recipe: 0.9)")
    p.add_argument("--weight-decay", type=float, default=None, help="recipe: 1e-4")
    p.add_argument("--init", default=None, help="'imagenet', 'scratch' or a weights folder (recipe: resnet50 imagenet, baseline scratch)")
    p.add_argument("--finetune", choices=["head", "all", "two-phase"], default="all", help="which parameters train; two-phase trains the head for --head-epochs first")
    p.add_argument("--head-epochs", type=int, default=2, help="head-only epochs of --finetune two-phase")
    p.add_argument("--head", choices=["linear", "mlp"], default="linear", help="classifier head; mlp is the 512→128 head with BN and dropout")
    p.add_argument("--image-size", type=int, default=None, help="input side in pixels (recipe: 224)")
    p.add_argument("--val-fraction", type=float, default=0.1, help="share of Training held out for validation (twin groups kept whole)")
    p.add_argument("--val-data", default=None, help="a separate validation folder of class folders, instead of --val-fraction")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-per-class", type=int, default=None, help="cap images per class in every split (quick runs)")
    p.add_argument("--workers", type=int, default=0, help="processes decoding images (0: one per core, up to 16)")
    p.add_argument("--resume", default=None, help="a run folder to continue from its checkpoint.pt")
    p.add_argument("--clahe", action="store_true", help="CLAHE contrast equalisation (recorded in the config, so prediction applies it too)")
    p.add_argument("--schedule", choices=["cosine", "plateau", "none"], default="cosine", help="LR schedule")
    p.add_argument("--warmup-epochs", type=float, default=0.0, help="linear warm-up before the cosine schedule")
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--augment", choices=["standard", "none"], default="standard", help="flip, ±15° rotation, random resized crop, colour jitter")
    p.add_argument("--crop-scale", type=float, default=0.7, help="smallest area fraction of the random resized crop")
    p.add_argument("--max-minutes", type=float, default=0, help="stop after the epoch that passes this training time and export the best so far (0: no limit)")
    p.add_argument("--patience", type=int, default=0, help="stop after this many epochs without a better validation metric (0: never)")
    p.add_argument("--select-metric", choices=["macro_f1", "accuracy", "loss"], default="macro_f1", help="validation metric that picks the best checkpoint")
    p.add_argument("--amp", choices=["auto", "bf16", "none"], default="auto", help="bf16 autocast (auto: on CUDA)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--twin-threshold", type=float, default=twins.DEFAULT_THRESHOLD, help="Pearson r of 32×32 thumbnails that makes two images twins")
    p.add_argument("--weights-dtype", choices=["float32", "float16"], default="float32", help="dtype of the exported safetensors")
    p.add_argument("--cache-dir", default=str(DEFAULT_CACHE), help="where decoded images are cached ('' to disable)")
    p.add_argument("--eval-batch-size", type=int, default=256)
    p.add_argument("--no-test", action="store_true", help="skip the final Testing-split report")
    return p


def resolve_recipe(args: argparse.Namespace) -> argparse.Namespace:
    for key, value in RECIPES[args.model].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    return args


# ---------------------------------------------------------------- distributed helpers

def setup_distributed() -> tuple[int, int, int]:
    """(rank, world_size, local_rank); initialises the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, 0
    backend = "nccl" if torch.cuda.is_available() and os.environ.get("BRAIN_TUMOR_DDP_BACKEND", "") != "gloo" else "gloo"
    dist.init_process_group(backend)
    return dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0"))


def barrier(world: int) -> None:
    if world > 1:
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor, world: int) -> torch.Tensor:
    if world > 1:
        dist.all_reduce(tensor)
    return tensor


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ---------------------------------------------------------------- data

@dataclasses.dataclass
class Data:
    train: Split
    val: Split | None
    test: Split | None
    pool: Split  # everything the model may learn from (train + val drawn from Training), for twin checks
    train_images: torch.Tensor
    val_images: torch.Tensor | None
    test_images: torch.Tensor | None
    pool_thumbs: torch.Tensor
    notes: dict


def _cap(split: Split, per_class: int | None, seed: int) -> Split:
    if not per_class:
        return split
    rng = np.random.default_rng(seed)
    keep = []
    for c in range(len(CLASSES)):
        idx = np.flatnonzero(split.labels == c)
        keep.extend(sorted(rng.choice(idx, size=min(per_class, len(idx)), replace=False).tolist()))
    return split.subset(sorted(keep))


def load_data(args: argparse.Namespace, rank: int, world: int, log) -> Data:
    splits = discover(args.data)
    pool = _cap(splits["train"], args.max_per_class, args.seed)
    test = _cap(splits["test"], args.max_per_class, args.seed) if "test" in splits and not args.no_test else None
    explicit_val = discover(args.val_data)["train"] if args.val_data else splits.get("val")
    explicit_val = _cap(explicit_val, args.max_per_class, args.seed) if explicit_val is not None else None

    cache = Path(args.cache_dir) if args.cache_dir else None

    def decode(split: Split, name: str) -> torch.Tensor:
        return decode_images(split.paths, args.image_size, args.clahe, args.workers, cache, desc=name)

    # Rank 0 decodes and fills the cache; the other ranks then read it.
    if rank != 0:
        barrier(world)
    pool_images = decode(pool, "train")
    val_images = decode(explicit_val, "val") if explicit_val is not None else None
    test_images = decode(test, "test") if test is not None else None
    if rank == 0:
        barrier(world)

    pool_thumbs = twins.thumbnails(pool_images)
    train_idx, val_idx, within = twins.twin_aware_split(pool.labels, pool_thumbs, args.val_fraction, args.seed, args.twin_threshold)
    notes = {"twin_pairs_within_training": len(within)}
    if explicit_val is not None:
        train, val, train_images = pool, explicit_val, pool_images
    elif args.val_fraction > 0:
        train, val = pool.subset(train_idx), pool.subset(val_idx)
        train_images, val_images = pool_images[train_idx], pool_images[val_idx]
        # Proof that no twin straddles the split: the best train match of each val image.
        clean = twins.clean_mask(twins.thumbnails(val_images), twins.thumbnails(train_images), args.twin_threshold)
        notes["val_twins_in_train"] = int((~clean).sum())
    else:
        train, val, train_images = pool, None, pool_images
    log(f"data: train {len(train)} {train.counts()} | val {len(val) if val else 0} | test {len(test) if test else 0} | "
        f"twin pairs within Training {len(within)}")
    return Data(train, val, test, pool, train_images, val_images, test_images, pool_thumbs, notes)


# ---------------------------------------------------------------- model, optimiser, schedule

def build_model(args: argparse.Namespace, log) -> tuple[nn.Module, ModelConfig]:
    arch = get_architecture(args.model)
    config = ModelConfig(architecture=args.model, image_size=args.image_size, mean=arch.mean, std=arch.std, head=args.head, clahe=args.clahe)
    if args.init in ("imagenet", "scratch"):
        model = create_model(args.model, len(CLASSES), init=args.init, head=args.head, image_size=args.image_size)
    else:
        state, source = load_weights(Path(args.init))
        if source.architecture != args.model:
            raise WeightsError(f"--init {args.init} holds {source.architecture} weights, not {args.model}.")
        model = create_model(args.model, len(CLASSES), init="scratch", head=source.head, image_size=source.image_size)
        model.load_state_dict(state)
        config.head, config.image_size = source.head, source.image_size
        log(f"init: weights from {args.init}")
    return model, config


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    head = model.fc if hasattr(model, "fc") else model.classifier
    return list(head.parameters())


def set_trainable(model: nn.Module, head_only: bool) -> None:
    for p in model.parameters():
        p.requires_grad = not head_only
    for p in head_parameters(model):
        p.requires_grad = True


def build_optimizer(args: argparse.Namespace, model: nn.Module) -> torch.optim.Optimizer:
    # No weight decay on norms and biases.
    decay, no_decay = [], []
    for p in model.parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if args.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=args.lr, momentum=args.momentum, nesterov=args.momentum > 0)
    return torch.optim.AdamW(groups, lr=args.lr)


def build_scheduler(args: argparse.Namespace, optimizer: torch.optim.Optimizer, steps_per_epoch: int):
    """Per-step LambdaLR for cosine/none (with warm-up); ReduceLROnPlateau steps per epoch."""
    if args.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.1, patience=2)
    total = max(1, args.epochs * steps_per_epoch)
    warmup = int(args.warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if args.schedule == "none":
            return 1.0
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# ---------------------------------------------------------------- loops

def autocast(device: torch.device, enabled: bool):
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=enabled)


def train_one_epoch(model, optimizer, scheduler, data: Data, config: ModelConfig, args, epoch: int, device, rank: int, world: int, use_amp: bool, aug: AugmentConfig) -> dict:
    model.train()
    n = len(data.train)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(args.seed * 1000 + epoch))
    local = order[rank::world]
    batches = [local[i:i + args.batch_size] for i in range(0, len(local), args.batch_size)]
    if len(batches) > 1 and len(batches[-1]) < 2:
        batches = batches[:-1]  # BatchNorm cannot train on one image
    # Every rank must take the same number of steps, or DDP's all-reduce waits forever.
    steps = torch.tensor(len(batches), device=device)
    if world > 1:
        dist.all_reduce(steps, op=dist.ReduceOp.MIN)
    batches = batches[: int(steps)]
    generator = torch.Generator(device=device).manual_seed(args.seed * 7919 + epoch * 104729 + rank)
    totals = torch.zeros(3, device=device)  # loss sum, correct, count
    start = time.perf_counter()
    bar = tqdm(batches, desc=f"epoch {epoch + 1}/{args.epochs}", disable=rank != 0, leave=False, dynamic_ncols=True)
    for step, idx in enumerate(bar):
        images = data.train_images[idx.to(data.train_images.device)].to(device, non_blocking=True)
        labels = torch.from_numpy(data.train.labels[idx.numpy()]).to(device, non_blocking=True)
        x = normalize(augment(images, aug, generator), config.mean, config.std)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, use_amp):
            logits = model(x)
            loss = F.cross_entropy(logits.float(), labels, label_smoothing=args.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if not isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step()
        totals += torch.stack([loss.detach() * len(labels), (logits.argmax(1) == labels).sum().float(), torch.tensor(float(len(labels)), device=device)])
        if rank == 0 and step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    totals = all_reduce_sum(totals, world)
    count = max(1.0, float(totals[2]))
    return {"train_loss": float(totals[0]) / count, "train_acc": float(totals[1]) / count, "img_per_s": count / elapsed, "train_time_s": elapsed}


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, config: ModelConfig, device: torch.device, batch_size: int, use_amp: bool) -> torch.Tensor:
    """Logits (float32, on the CPU) for uint8 images, with no augmentation."""
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = normalize(images[start:start + batch_size].to(device, non_blocking=True), config.mean, config.std)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(device, use_amp):
            out.append(model(x).float().cpu())
    return torch.cat(out) if out else torch.empty(0, len(config.classes))


def validation_scores(logits: torch.Tensor, labels: np.ndarray) -> dict:
    target = torch.from_numpy(labels)
    loss = float(F.cross_entropy(logits, target)) if len(labels) else float("nan")
    metrics = classification_metrics(torch.softmax(logits, 1).numpy(), labels)
    return {"val_loss": loss, "val_acc": metrics["accuracy"], "val_macro_f1": metrics["macro_f1"]}


def is_better(value: float, best: float | None, metric: str) -> bool:
    if best is None:
        return True
    return value < best if metric == "loss" else value > best


# ---------------------------------------------------------------- checkpoints

CHECKPOINT = "checkpoint.pt"


def save_checkpoint(path: Path, **state) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def load_checkpoint(path: Path) -> dict:
    # weights_only: a checkpoint is tensors, numbers and strings; nothing is unpickled as code.
    return torch.load(path, map_location="cpu", weights_only=True)


def unwrap(model: nn.Module) -> nn.Module:
    model = getattr(model, "module", model)  # DDP
    return getattr(model, "_orig_mod", model)  # torch.compile


# ---------------------------------------------------------------- final report

def final_report(model: nn.Module, config: ModelConfig, data: Data, args, device, use_amp: bool, log) -> dict:
    """Fit the temperature on validation, then measure validation and Testing (all and clean)."""
    metrics: dict = {}
    if data.val is not None and len(data.val):
        val_logits = evaluate(model, data.val_images, config, device, args.eval_batch_size, use_amp)
        config.temperature = fit_temperature(val_logits, torch.from_numpy(data.val.labels))
        before = classification_metrics(torch.softmax(val_logits, 1).numpy(), data.val.labels)
        metrics["validation"] = classification_metrics(torch.softmax(val_logits / config.temperature, 1).numpy(), data.val.labels)
        metrics["validation"]["ece_before_temperature"] = before["ece"]
        log(f"temperature {config.temperature:.3f}: validation ECE {before['ece']:.4f} -> {metrics['validation']['ece']:.4f}")
    if data.test is not None:
        logits = evaluate(model, data.test_images, config, device, args.eval_batch_size, use_amp)
        probs = torch.softmax(logits / config.temperature, 1).numpy()
        metrics["test"] = classification_metrics(probs, data.test.labels)
        clean = twins.clean_mask(twins.thumbnails(data.test_images), data.pool_thumbs, args.twin_threshold)
        metrics["test_clean"] = classification_metrics(probs[clean], data.test.labels[clean])
        metrics["leaked"] = int((~clean).sum())
        log(f"Testing: all {metrics['test']['accuracy']:.4f} (n={metrics['test']['n']}), "
            f"clean {metrics['test_clean']['accuracy']:.4f} (n={metrics['test_clean']['n']}, macro-F1 {metrics['test_clean']['macro_f1']:.4f}), "
            f"leaked {metrics['leaked']}")
    return metrics


def provenance(args, data: Data, device: torch.device, wall_time: float, throughput: float, world: int) -> dict:
    hardware = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.processor() or platform.machine()})"
    recipe = {k: v for k, v in sorted(vars(args).items()) if k not in ("out", "resume", "workers", "cache_dir", "device", "data")}
    return {
        "data": f"{args.data}: Training split, {len(data.train)} train / {len(data.val) if data.val else 0} validation (twin groups kept whole)",
        "init": args.init,
        "recipe": recipe,
        "hardware": f"{world} × {hardware}" if world > 1 else hardware,
        "wall_time_s": round(wall_time, 1),
        "train_img_per_s": round(throughput, 1),
        "torch": torch.__version__,
        "date": datetime.date.today().isoformat(),
        "split_notes": data.notes,
    }


# ---------------------------------------------------------------- main

def main(args: argparse.Namespace) -> int:
    rank, world, local_rank = setup_distributed()

    def log(message: str) -> None:
        if rank == 0:
            tqdm.write(message)
            if log_file is not None:
                with open(log_file, "a") as handle:
                    handle.write(message + "\n")

    log_file = None
    checkpoint = None
    if args.resume:
        resume_dir = Path(args.resume)
        if not (resume_dir / CHECKPOINT).is_file():
            raise FileNotFoundError(f"{resume_dir} has no {CHECKPOINT} to resume from; pass the --out folder of an earlier run.")
        checkpoint = load_checkpoint(resume_dir / CHECKPOINT)
        saved = checkpoint["args"]
        keep = {"resume", "epochs", "device", "workers", "cache_dir", "patience"}
        for key, value in saved.items():
            if key not in keep or getattr(args, key) is None:
                setattr(args, key, value)
        args.out = str(resume_dir)
    args = resolve_recipe(args)
    out = Path(args.out or f"runs/{args.model}-{datetime.datetime.now():%Y%m%d-%H%M%S}")
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    log_file = out / "train_log.txt"

    if args.device == "auto":
        device = torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    else:
        if args.device == "cuda" and not torch.cuda.is_available():
            raise UsageError("--device cuda was asked for, but PyTorch sees no CUDA GPU; use --device cpu or auto.")
        device = torch.device(args.device, local_rank) if args.device == "cuda" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    use_amp = args.amp == "bf16" or (args.amp == "auto" and device.type == "cuda")
    seed_everything(args.seed + rank)
    log(f"run {out} on {device} (world {world}); recipe: " + json.dumps({k: v for k, v in vars(args).items() if k != 'resume'}))

    data = load_data(args, rank, world, log)
    if device.type == "cuda":  # keep the whole decoded set on the GPU: no per-step host work
        data.train_images = data.train_images.to(device)
    model, config = build_model(args, log)
    config.weights_dtype = args.weights_dtype
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    head_only = args.finetune == "head" or (args.finetune == "two-phase" and args.head_epochs > 0)
    set_trainable(model, head_only)
    optimizer = build_optimizer(args, model)
    per_rank = math.ceil(len(data.train) / world)
    steps_per_epoch = max(1, per_rank // args.batch_size + (1 if per_rank % args.batch_size >= 2 else 0))
    scheduler = build_scheduler(args, optimizer, steps_per_epoch)
    train_model: nn.Module = model
    if world > 1:
        train_model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=head_only)
    if args.compile:
        train_model = torch.compile(train_model)

    start_epoch, best_value, best_state, best_epoch, history, stale, wall_before = 0, None, None, None, [], 0, 0.0
    if checkpoint is not None:
        unwrap(model).load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        start_epoch, best_value, best_state = checkpoint["epoch"] + 1, checkpoint["best_value"], checkpoint["best_state"]
        best_epoch = checkpoint["best_epoch"]
        history, stale, wall_before = checkpoint["history"], checkpoint["stale"], checkpoint["wall_time_s"]
        log(f"resumed at epoch {start_epoch + 1} from {args.resume}")

    writer = None
    if rank == 0:
        try:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(out / "tensorboard"))
        except ImportError:
            log("tensorboard is not installed; writing metrics.csv only")
    aug = AugmentConfig(crop_scale=(args.crop_scale, 1.0)) if args.augment == "standard" else AugmentConfig.none()
    fields = ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "val_macro_f1", "lr", "img_per_s", "epoch_time_s"]
    csv_path = out / "metrics.csv"
    if rank == 0 and (checkpoint is None or not csv_path.exists()):
        with open(csv_path, "w", newline="") as handle:
            csv.writer(handle).writerow(fields)

    run_start = time.perf_counter()
    throughputs = []
    for epoch in range(start_epoch, args.epochs):
        if args.finetune == "two-phase" and epoch == args.head_epochs:
            set_trainable(model, head_only=False)
            log("two-phase: now training all layers")
        epoch_start = time.perf_counter()
        lr = optimizer.param_groups[0]["lr"]
        row = train_one_epoch(train_model, optimizer, scheduler, data, config, args, epoch, device, rank, world, use_amp, aug)
        throughputs.append(row["img_per_s"])
        if data.val is not None:
            row.update(validation_scores(evaluate(model, data.val_images, config, device, args.eval_batch_size, use_amp), data.val.labels))
        else:
            row.update({"val_loss": row["train_loss"], "val_acc": row["train_acc"], "val_macro_f1": float("nan")})
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(row["val_loss"])
        row.update(epoch=epoch + 1, lr=lr, epoch_time_s=time.perf_counter() - epoch_start)
        history.append(row)
        metric_key = {"macro_f1": "val_macro_f1", "accuracy": "val_acc", "loss": "val_loss"}[args.select_metric]
        value = row[metric_key] if not math.isnan(row[metric_key]) else row["val_acc"]
        if is_better(value, best_value, args.select_metric):
            best_value, best_epoch, stale = value, epoch + 1, 0
            best_state = {k: v.detach().cpu().clone() for k, v in unwrap(model).state_dict().items()}
        else:
            stale += 1
        if rank == 0:
            log(f"epoch {epoch + 1:3d}/{args.epochs} loss {row['train_loss']:.4f} train_acc {row['train_acc']:.4f} "
                f"val_loss {row['val_loss']:.4f} val_acc {row['val_acc']:.4f} val_f1 {row['val_macro_f1']:.4f} "
                f"lr {lr:.2e} {row['img_per_s']:.0f} img/s {row['epoch_time_s']:.1f}s")
            with open(csv_path, "a", newline="") as handle:
                csv.writer(handle).writerow([row[f] for f in fields])
            if writer is not None:
                for key in fields[1:]:
                    writer.add_scalar(key, row[key], epoch + 1)
            save_checkpoint(
                out / CHECKPOINT, args=vars(args), model=unwrap(model).state_dict(), optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(), epoch=epoch, best_value=best_value, best_state=best_state, best_epoch=best_epoch,
                history=history, stale=stale, wall_time_s=wall_before + time.perf_counter() - run_start,
            )
        if args.max_minutes and time.perf_counter() - run_start > 60 * args.max_minutes:
            log(f"time limit: stopping after {args.max_minutes} minutes of training")
            break
        if args.patience and stale >= args.patience:
            log(f"early stop: no better validation {args.select_metric} for {args.patience} epochs")
            break
    wall_time = wall_before + time.perf_counter() - run_start
    if writer is not None:
        writer.close()

    if rank == 0:
        if best_state is not None:
            unwrap(model).load_state_dict(best_state)
        final = unwrap(model)
        if device.type == "cuda":
            data.val_images = data.val_images.to(device) if data.val_images is not None else None
        config.metrics = final_report(final, config, data, args, device, use_amp, log)
        if data.val is not None and len(data.val):
            from brain_tumor.classifier import Classifier
            from training.calibrate_ood import ood_section

            config.ood = ood_section(Classifier(final, config, device=device), data.val_images.to(device))
        config.metrics["best_epoch"] = best_epoch
        config.provenance = provenance(args, data, device, wall_time, float(np.median(throughputs)) if throughputs else 0.0, world)
        weights_dir = save_weights(final.state_dict(), config, out / "weights")
        (out / "summary.json").write_text(json.dumps({"wall_time_s": wall_time, "median_img_per_s": config.provenance["train_img_per_s"], "metrics": config.metrics, "notes": data.notes}, indent=2))
        log(f"done in {wall_time:.1f}s ({config.provenance['train_img_per_s']:.0f} img/s); weights in {weights_dir}")
    barrier(world)
    if world > 1:
        dist.destroy_process_group()
    return 0


def cli(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    try:
        return main(args)
    except (DatasetError, WeightsError, PretrainedWeightsError, FileNotFoundError, UsageError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(cli())
