"""Train a brain_tumor model: `python -m training.fit --model resnet50 --data DIR --out DIR`.

Read top to bottom: get_args_parser, build_model, build_optimizer, build_scheduler, train_one_epoch,
then main, which reads as the steps of a run. Several GPUs or nodes: the same command under
`torchrun --nproc-per-node N -m training.fit ...`. A model with an attention gate (resnet50_gated) learns
where tumours are from boxes with --boxes; --freeze-through keeps the stages up to one as --init has them,
computed once and cached, so a CPU trains the rest in minutes. Every flag is documented by --help.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from brain_tumor.classes import CLASSES
from brain_tumor.config import ModelConfig
from brain_tumor.errors import UsageError, UserError, WeightsError, exit_status
from brain_tumor.models import ARCHITECTURES, create_model, get_architecture, model_config
from brain_tumor.weights import load_model, save_weights
from training import outside, twins
from training.attention import POINTING, gate_loss, load_box_data, masks_for, pseudo_boxes, trained_thumbnails
from training.augment import STACKED_TRANSFORMS, AugmentConfig
from training.data import DEFAULT_CACHE, RunData, SplitRecipe, cache_folder, load_run_data
from training.frozen import TrainItems, as_tuple, forward_from, frozen_outputs
from training.report import (Validation, batch_norm_buffers, box_validation_record, final_report, recompute_batch_norm,
                             validate)
from training.runtime import CHECKPOINT, RunLog, TrainState, all_reduce_min, all_reduce_sum, barrier, load_checkpoint, memory_format, pick_device, seed_everything, setup_distributed, teardown, unwrap

FIELDS = ["epoch", "train_loss", "train_acc", "train_box_loss", "val_loss", "val_acc", "val_macro_f1", "val_pointing", "val_energy",
          "val_pointing_new", "val_energy_new", "lr", "img_per_s", "epoch_time_s"]
RESUMABLE = {"resume", "epochs", "device", "workers", "cache_dir", "patience", "max_minutes"}  # flags a resumed run may change


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Train a brain-tumour MRI classifier.", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", choices=sorted(ARCHITECTURES), default="resnet50", help="architecture")
    p.add_argument("--data", default="../shared/data/brain-tumor-mri", help="dataset folder (Kaggle, Roboflow or class folders), or 'kaggle' to download")
    p.add_argument("--out", default=None, help="run folder (logs, checkpoint, weights/); default runs/<model>-<time>")
    p.add_argument("--epochs", type=int, default=None, help="epochs (recipe: 10)")
    p.add_argument("--batch-size", type=int, default=None, help="batch size per process (recipe: resnet50 32, baseline 128)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (recipe: resnet50 0.01, baseline 1e-4)")
    p.add_argument("--trunk-lr-scale", type=float, default=1.0,
                   help="the trunk's (everything but the head's) learning rate as a share of --lr: below 1, a whole-network "
                        "run moves the features it starts from less than the head")
    p.add_argument("--optimizer", choices=["sgd", "adamw"], default=None, help="recipe: resnet50 sgd, baseline adamw")
    p.add_argument("--momentum", type=float, default=None, help="SGD momentum (recipe: 0.9)")
    p.add_argument("--weight-decay", type=float, default=None, help="recipe: 1e-4")
    p.add_argument("--init", default=None, help="'imagenet', 'scratch' or a weights folder (recipe: resnet50 imagenet, baseline scratch)")
    p.add_argument("--finetune", choices=["head", "all", "two-phase"], default="all", help="which parameters train; two-phase trains the head for --head-epochs first")
    p.add_argument("--head-epochs", type=int, default=2, help="head-only epochs of --finetune two-phase")
    p.add_argument("--head", choices=["linear", "mlp"], default="linear", help="classifier head; mlp is the 512→128 head with BN and dropout")
    p.add_argument("--image-size", type=int, default=None, help="input side in pixels (default: the architecture's)")
    p.add_argument("--val-fraction", type=float, default=0.1, help="share of Training held out for validation (twin groups kept whole)")
    p.add_argument("--val-data", default=None, help="a separate validation folder of class folders, instead of --val-fraction")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    p.add_argument("--seed", type=int, default=0, help="seeds the validation split, and the training unless --train-seed is given")
    p.add_argument("--train-seed", type=int, default=None,
                   help="seeds initialisation, batch order and augmentation only (default: --seed): several runs on one split")
    p.add_argument("--max-per-class", type=int, default=None, help="cap images per class in every split (quick runs)")
    p.add_argument("--workers", type=int, default=0, help="processes decoding images (0: one per core, up to 16)")
    p.add_argument("--resume", default=None, help="a run folder to continue from its checkpoint.pt")
    p.add_argument("--clahe", action="store_true", help="CLAHE contrast equalisation (recorded in the config, so prediction applies it too)")
    p.add_argument("--schedule", choices=["cosine", "plateau", "none"], default="cosine", help="LR schedule")
    p.add_argument("--warmup-epochs", type=float, default=0.0, help="linear warm-up before the cosine schedule")
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--augment", choices=["standard", "stacked", "none"], default="standard",
                   help="standard: flip, ±15° rotation, random resized crop, colour jitter; stacked: BigAug-like, standard's wider "
                        "plus elastic, blur or sharpening, noise, thick slices, gamma, intensity curves, elliptic brain masks")
    p.add_argument("--augment-without", nargs="+", choices=STACKED_TRANSFORMS, default=[], metavar="TRANSFORM",
                   help=f"with --augment stacked, leave these out, to measure what each gives ({', '.join(STACKED_TRANSFORMS)})")
    p.add_argument("--augment-lesion", type=float, default=0.0, metavar="P",
                   help="probability that a training slice's tumour (TCGA-LGG's masks, or the --boxes) is made darker or "
                        "brighter inside its mask (×0.3–1.7), so that a tumour is not learnt by one collection's contrast")
    p.add_argument("--outside", default=None,
                   help="the outside collections' folder (../shared/data/outside): their train part (training/splits/outside.json) "
                        "joins training and their validation part joins validation")
    p.add_argument("--balance", choices=["none", "collections"], default=None,
                   help="collections: each epoch draws with replacement so every class, and every collection within a class, "
                        "has the same share (default with --outside)")
    p.add_argument("--epoch-size", type=int, default=None, help="images drawn per epoch with --balance collections (default: all)")
    p.add_argument("--distil", default=None,
                   help="a weights folder (same architecture) whose answers on the Kaggle training images the model keeps: a "
                        "distillation term (learning without forgetting) beside cross-entropy, while it learns the other collections")
    p.add_argument("--distil-weight", type=float, default=1.0, help="weight of the --distil term")
    p.add_argument("--distil-temperature", type=float, default=2.0, help="softmax temperature of the --distil term")
    p.add_argument("--crop-scale", type=float, default=0.7, help="smallest area fraction of the random resized crop")
    p.add_argument("--max-minutes", type=float, default=0, help="stop after the epoch that passes this training time and export the best so far (0: no limit); "
                   "each --resume sets its own, so a long run can go on sitting by sitting")
    p.add_argument("--reset-bn", type=int, default=0, metavar="N",
                   help="before each validation, estimate the batch-norm statistics again on N unaugmented training images "
                        "drawn balanced over classes (and collections); the kept epoch keeps them, training goes on with its own "
                        "(0: never)")
    p.add_argument("--patience", type=int, default=0, help="stop after this many epochs without a better validation metric (0: never)")
    p.add_argument("--select-metric", choices=["macro_f1", "accuracy", "loss", "last", *POINTING], default="macro_f1",
                   help="validation metric that picks the best checkpoint; pointing: the box validation's pointing game, among "
                        "epochs whose validation accuracy is within --accuracy-slack of the starting model's; pointing_new: the same "
                        "on the box-validation slices with no twin among the Training images (new patients' slices only); "
                        "last: the last epoch (a recipe fixed beforehand, as for --box-refit)")
    p.add_argument("--accuracy-slack", type=float, default=0.005, help="with a pointing --select-metric: validation accuracy an epoch may lose")
    p.add_argument("--boxes", default=None, help="figshare slices with boxes.csv: train the attention gate on their train part (a box loss)")
    p.add_argument("--box-weight", type=float, default=1.0, help="weight of the box loss beside cross-entropy")
    p.add_argument("--box-mass-weight", type=float, default=0.0,
                   help="within the box loss, weight of a soft pointing game: −log of the gate's spatial softmax inside the box")
    p.add_argument("--box-refit", action="store_true",
                   help="the whole train part of the boxes teaches the gate (the box validation too): to measure what more boxes "
                        "give once a recipe was chosen; no box validation, so no pointing --select-metric")
    p.add_argument("--box-mirrors", action="store_true",
                   help="train on each boxed slice mirrored left to right too (with --freeze-through the only augmentation)")
    p.add_argument("--pseudo-boxes", default=None,
                   help="a gated model's weights folder: boxes from its gate on the tumour images that have none, where it is sure "
                        "(--pseudo-min-prob, --pseudo-min-gate)")
    p.add_argument("--pseudo-min-prob", type=float, default=0.9, help="with --pseudo-boxes: the teacher's least probability of the true class")
    p.add_argument("--pseudo-min-gate", type=float, default=0.5, help="with --pseudo-boxes: the least peak of the teacher's gate")
    p.add_argument("--freeze-through", default=None,
                   help="keep the stages up to this one (e.g. layer4) as --init has them, computed once per image and cached: "
                        "a CPU trains the rest in minutes (no image augmentation then)")
    p.add_argument("--amp", choices=["auto", "bf16", "none"], default="auto", help="bf16 autocast (auto: on CUDA; bf16 also serves a CPU with bf16 instructions: 2.7 times float32's speed on an AVX-512 BF16 one)")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--twin-threshold", type=float, default=twins.DEFAULT_THRESHOLD, help="Pearson r of 32×32 thumbnails that makes two images twins")
    p.add_argument("--weights-dtype", choices=["float32", "float16"], default="float32", help="dtype of the exported safetensors")
    p.add_argument("--cache-dir", default=str(DEFAULT_CACHE), help="where decoded images are cached ('' to disable)")
    p.add_argument("--eval-batch-size", type=int, default=256)
    p.add_argument("--no-test", action="store_true", help="skip the final Testing-split report")
    return p


def resolve_args(args: argparse.Namespace) -> argparse.Namespace:
    """Fill what the command line left open: a resumed run's own flags, then the recipe's, then the registry's."""
    if args.resume:
        path = Path(args.resume) / CHECKPOINT
        if not path.is_file():
            raise UserError(f"{args.resume} has no {CHECKPOINT} to resume from; pass the --out folder of an earlier run.")
        for key, value in load_checkpoint(path)["args"].items():
            if key not in RESUMABLE or getattr(args, key) is None:
                setattr(args, key, value)
        args.out = str(Path(args.resume))
    for key, value in get_architecture(args.model).recipe.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if args.image_size is None:
        args.image_size = get_architecture(args.model).image_size
    if args.train_seed is None:
        args.train_seed = args.seed
    args.out = args.out or f"runs/{args.model}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
    return args


def check_flags(args: argparse.Namespace) -> None:
    """Refuse, before any data is read, flags that cannot go together."""
    if args.augment_without and args.augment != "stacked":
        raise UsageError(f"--augment-without takes transforms out of --augment stacked, and this run's is {args.augment}.")
    if not 0 <= args.augment_lesion <= 1:
        raise UsageError(f"--augment-lesion is a probability between 0 and 1 (got {args.augment_lesion}).")
    if args.augment_lesion and not (args.outside or args.boxes):
        raise UsageError("--augment-lesion changes tumours inside their masks; pass --outside (TCGA-LGG's masks) or --boxes.")
    if args.augment_lesion and args.freeze_through:
        raise UsageError("--augment-lesion changes the images, and --freeze-through trains on their cached features; choose one.")
    if not args.trunk_lr_scale > 0:
        raise UsageError(f"--trunk-lr-scale must be above 0 (got {args.trunk_lr_scale}); to train the head alone use --finetune head.")
    if args.reset_bn < 0 or (args.reset_bn and (args.freeze_through or args.finetune == "head")):
        raise UsageError("--reset-bn is a number of training images, 0 or more, for a run whose trunk trains "
                         "(a frozen trunk keeps the statistics its head learnt on).")


def build_model(args: argparse.Namespace, log: RunLog) -> tuple[nn.Module, ModelConfig]:
    config = model_config(args.model, image_size=args.image_size, head=args.head, clahe=args.clahe)
    if args.init in ("imagenet", "scratch"):
        return create_model(args.model, len(CLASSES), init=args.init, head=args.head, image_size=args.image_size), config
    model, source = load_model(Path(args.init))
    arch = get_architecture(args.model)
    if source.architecture != args.model and source.architecture not in arch.starts_from:
        can = " or ".join((args.model, *arch.starts_from))
        raise WeightsError(f"--init {args.init} holds {source.architecture} weights, and {args.model} starts from {can} weights.")
    if source.architecture != args.model:  # everything but the parts the source lacks (a new gate)
        target = create_model(args.model, len(CLASSES), init="scratch", head=source.head, image_size=source.image_size)
        missing = target.load_state_dict(model.state_dict(), strict=False).missing_keys
        log.line(f"init: {source.architecture} weights from {args.init}; new: {', '.join(sorted({k.split('.')[0] for k in missing}))}")
        model = target
    else:
        log.line(f"init: weights from {args.init}")
    config.head, config.image_size = source.head, source.image_size
    return model, config


def set_trainable(model: nn.Module, architecture: str, head_only: bool) -> None:
    for p in model.parameters():
        p.requires_grad = not head_only
    for p in get_architecture(architecture).head(model).parameters():
        p.requires_grad = True


def build_optimizer(args: argparse.Namespace, model: nn.Module) -> torch.optim.Optimizer:
    """No weight decay on norms and biases. With --trunk-lr-scale, the head at --lr and the trunk at --lr × the scale
    (the schedule scales every group alike); the head's groups come first, so param_groups[0]["lr"] is --lr's."""
    parts = [(list(model.parameters()), args.lr)]
    if args.trunk_lr_scale != 1:  # otherwise one part, as runs (and their checkpoints) always had
        head = {id(p) for p in get_architecture(args.model).head(model).parameters()}
        parts = [([p for p in model.parameters() if id(p) in head], args.lr),
                 ([p for p in model.parameters() if id(p) not in head], args.lr * args.trunk_lr_scale)]
    groups = []
    for params, lr in parts:
        groups += [{"params": [p for p in params if p.ndim > 1], "weight_decay": args.weight_decay, "lr": lr},
                   {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0, "lr": lr}]
    if args.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=args.lr, momentum=args.momentum, nesterov=args.momentum > 0)
    return torch.optim.AdamW(groups, lr=args.lr)


def build_scheduler(args: argparse.Namespace, optimizer: torch.optim.Optimizer, steps_per_epoch: int):
    """Per-step LambdaLR for cosine/none (with warm-up); ReduceLROnPlateau steps per epoch."""
    if args.schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.1, patience=2)
    total, warmup = max(1, args.epochs * steps_per_epoch), int(args.warmup_epochs * steps_per_epoch)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        if args.schedule == "none":
            return 1.0
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def epoch_batches(n: int, args, epoch: int, rank: int, world: int, device, weights: torch.Tensor | None = None) -> list[torch.Tensor]:
    """This process's shuffled batches (drawn by `weights` with replacement when given); every process takes the same
    number of steps (DDP would wait forever)."""
    generator = torch.Generator().manual_seed(args.train_seed * 1000 + epoch)
    if weights is None:
        order = torch.randperm(n, generator=generator)[rank::world]
    else:
        order = torch.multinomial(weights, args.epoch_size or n, replacement=True, generator=generator)[rank::world]
    batches = [order[i:i + args.batch_size] for i in range(0, len(order), args.batch_size)]
    if len(batches) > 1 and len(batches[-1]) < 2:
        batches = batches[:-1]  # BatchNorm cannot train on one image
    return batches[: all_reduce_min(len(batches), device, world)]


def distil_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher ‖ student) of the softened answers, scaled by T² so its gradients keep their size (Hinton et al., 2015)."""
    t = temperature
    return F.kl_div(F.log_softmax(student.float() / t, 1), F.log_softmax(teacher.float() / t, 1), log_target=True,
                    reduction="batchmean") * t * t


def train_one_epoch(model, optimizer, scheduler, items: TrainItems, config: ModelConfig, args, epoch: int, device, rank: int,
                    world: int, use_amp: bool, aug: AugmentConfig, teacher: nn.Module | None = None,
                    taught: torch.Tensor | None = None) -> dict:
    """One epoch; with `teacher`, the items where `taught` is true also learn the teacher's answers (--distil)."""
    model.train()
    core = unwrap(model)
    for module in core.modules():  # frozen layers (--freeze-through, --finetune head) keep their batch-norm statistics
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and not any(p.requires_grad for p in module.parameters()):
            module.eval()
    gate_input = get_architecture(args.model).gate_input if args.boxes else None
    generator = torch.Generator(device=device).manual_seed(args.train_seed * 7919 + epoch * 104729 + rank)
    totals = torch.zeros(4, device=device)  # loss sum, correct, count, box loss sum
    start = time.perf_counter()
    bar = tqdm(epoch_batches(len(items), args, epoch, rank, world, device, items.weights), desc=f"epoch {epoch + 1}/{args.epochs}",
               disable=rank != 0, leave=False, dynamic_ncols=True)
    for step, idx in enumerate(bar):
        labels = torch.from_numpy(items.labels[idx.numpy()]).to(device, non_blocking=True)
        x, masks = items.batch(idx, config, aug, generator, device, use_amp)
        box = torch.zeros((), device=device)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
            if items.start is None and gate_input is None:
                logits = model(x)  # through DDP when there are several processes
            elif gate_input is None:
                logits, _ = forward_from(core, args.model, x, items.start)
            else:  # up to the gate's input, then the class and the gate from it
                _, kept = forward_from(core, args.model, x, items.start, gate_input, stop=gate_input)
                logits, gate = core.logits_and_gate(kept)
                has = items.has_mask[idx].to(device)
                if has.any():
                    box = gate_loss(gate[has], masks[has], args.box_mass_weight)
            loss = F.cross_entropy(logits.float(), labels, label_smoothing=args.label_smoothing) + args.box_weight * box
            keep = taught[idx].to(device) if teacher is not None else None
            if keep is not None and keep.any():
                with torch.no_grad():
                    answers = teacher(x[keep])
                loss = loss + args.distil_weight * distil_loss(logits[keep], answers, args.distil_temperature) * keep.float().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if not isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step()
        totals += torch.stack([loss.detach() * len(labels), (logits.argmax(1) == labels).sum().float(),
                               torch.tensor(float(len(labels)), device=device), box.detach() * len(labels)])
        if rank == 0 and step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}", box=f"{box.item():.3f}", lr=f"{optimizer.param_groups[0]['lr']:.2e}")
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    totals = all_reduce_sum(totals, world)
    count = max(1.0, float(totals[2]))
    return {"train_loss": float(totals[0]) / count, "train_acc": float(totals[1]) / count, "train_box_loss": float(totals[3]) / count,
            "img_per_s": count / elapsed, "train_time_s": elapsed}


def provenance(args, data: RunData, device: torch.device, wall_time: float, throughput: float, world: int) -> dict:
    hardware = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.processor() or platform.machine()})"
    recipe = {k: v for k, v in sorted(vars(args).items()) if k not in ("out", "resume", "workers", "cache_dir", "device")}
    return {
        "data": f"{args.data}: Training split, {len(data.train)} train / {len(data.val) if data.val else 0} validation (twin groups kept whole)",
        "init": args.init, "recipe": recipe, "hardware": f"{world} × {hardware}" if world > 1 else hardware,
        "wall_time_s": round(wall_time, 1), "train_img_per_s": round(throughput, 1), "torch": torch.__version__,
        "date": datetime.date.today().isoformat(), "split_notes": data.notes,
    }


def main(args: argparse.Namespace) -> int:
    rank, world, local_rank = setup_distributed()
    args = resolve_args(args)
    check_flags(args)
    out = Path(args.out)
    log = RunLog(out, rank, FIELDS, append=bool(args.resume))
    device = pick_device(args.device, local_rank)
    use_amp = args.amp == "bf16" or (args.amp == "auto" and device.type == "cuda")
    seed_everything(args.train_seed + rank)
    log.line(f"run {out} on {device} (world {world}); recipe: " + json.dumps({k: v for k, v in vars(args).items() if k != 'resume'}))

    # 1. Data: decoded once, with the one validation split (training.data.load_run_data).
    recipe = SplitRecipe.from_mapping(vars(args))
    data = load_run_data(recipe, cache_folder(args.cache_dir), args.workers, not args.no_test, rank, lambda: barrier(world))
    log.line(f"data: train {len(data.train)} {data.train.counts()} | val {len(data.val) if data.val else 0} | "
             f"test {len(data.test) if data.test else 0} | twin pairs within Training {data.notes['twin_pairs_within_training']}")
    arch = get_architecture(args.model)
    added, kaggle_train = None, len(data.train)
    if args.outside:
        added = outside.add_to_run(data, args.outside, args.image_size, args.clahe, cache_folder(args.cache_dir))
        data.notes["outside"] = added.notes
        log.line(f"outside: train {sum(added.notes['train'].values())} {json.dumps(added.notes['train'])} | "
                 f"val {sum(added.notes['val'].values())}")
    balance = args.balance or ("collections" if args.outside else "none")
    if args.epoch_size and balance != "collections":
        raise UsageError("--epoch-size sets how many images balanced sampling draws; pass --balance collections (or --outside) too.")
    train_cells = added.cells if added else outside.kaggle_cells(data.train.labels)  # one per image of data.train_images
    cells = train_cells if balance == "collections" else None
    boxes = None
    if args.box_refit and not args.boxes:
        raise UsageError("--box-refit teaches the gate with every box of the train part; pass --boxes too.")
    if args.boxes:
        if arch.gate_input is None:
            gated = ", ".join(name for name, entry in ARCHITECTURES.items() if entry.gate_input)
            raise UsageError(f"--boxes trains an attention gate, and {args.model} has none; choose {gated}.")
        if world > 1:
            raise UsageError("--boxes trains in one process; run training.fit without torchrun.")
        boxes = load_box_data(args.boxes, data, args.image_size, args.clahe, args.twin_threshold, cache_folder(args.cache_dir),
                              mirrored=args.box_mirrors, refit=args.box_refit)
        log.line("boxes: " + json.dumps(boxes.notes))
    if boxes is not None and added is not None:  # TCGA-LGG's tumour masks teach the gate too
        boxes.train_masks[kaggle_train:][added.has_mask] = added.masks[added.has_mask]
        boxes.train_has_mask[kaggle_train:] |= added.has_mask
        boxes.notes["outside_tumour_masks"] = int((added.masks.flatten(1).amax(1) > 0).sum())
    if cells is not None and boxes is not None:
        cells = cells + [f"figshare-boxes/{CLASSES[c]}" for c in boxes.extra_labels]
    weights = outside.balanced_weights(cells) if cells is not None else None
    train_images = data.train_images if boxes is None else torch.cat([data.train_images, boxes.extra_images])
    train_labels = data.train.labels if boxes is None else np.concatenate([data.train.labels, boxes.extra_labels])

    # 2. Model, optimiser, schedule; with --freeze-through, the frozen stages' outputs computed once.
    model, config = build_model(args, log)
    config.weights_dtype = args.weights_dtype
    layout = memory_format(device, use_amp)
    model = model.to(device, memory_format=layout)
    head_only = args.finetune == "head" or (args.finetune == "two-phase" and args.head_epochs > 0)
    set_trainable(model, args.model, head_only)
    start = args.freeze_through
    has_val = data.val is not None and len(data.val) > 0
    if start:
        if start not in arch.freezable:
            raise UsageError(f"{args.model} can be frozen through {' or '.join(arch.freezable) or 'none of its stages'}, not {start!r}.")
        if world > 1:
            raise UsageError("--freeze-through trains in one process; run training.fit without torchrun.")
        stages = arch.stages(model)
        for _, stage in stages[:[name for name, _ in stages].index(start) + 1]:
            stage.requires_grad_(False)
        cache = cache_folder(args.cache_dir)
        frozen = lambda images, name: frozen_outputs(model, config, start, images, cache, name, device)  # noqa: E731
        parts = [frozen(data.train_images, "train")] + ([frozen(boxes.extra_images, "boxes-fit")] if boxes else [])
        inputs = tuple(torch.cat(p) for p in zip(*map(as_tuple, parts)))
        inputs = inputs if len(inputs) > 1 else inputs[0]
        val = Validation(frozen(data.val_images, "val") if has_val else None, data.val.labels if has_val else None, start)
        if boxes and boxes.val_images is not None:
            val.use_boxes(boxes, frozen(boxes.val_images, "boxes-val"))
    else:
        if device.type == "cuda":  # the whole decoded set on the GPU: no per-step host work
            train_images = train_images.to(device)
        inputs = train_images
        val = Validation(data.val_images if has_val else None, data.val.labels if has_val else None)
        if boxes and boxes.val_images is not None:
            val.use_boxes(boxes)
    masks = has_mask = None
    if boxes:
        masks = torch.cat([boxes.train_masks, boxes.extra_masks])
        has_mask = torch.cat([boxes.train_has_mask, torch.ones(len(boxes.extra_labels), dtype=torch.bool)])
    elif args.augment_lesion:  # the masks only change the tumours' contrast (--augment-lesion); no box loss
        masks = torch.zeros((len(train_images), *added.masks.shape[1:]), dtype=torch.uint8)
        masks[kaggle_train:] = added.masks
        has_mask = torch.cat([torch.zeros(kaggle_train, dtype=torch.bool), added.has_mask])  # whose mask is known, as with boxes
    if args.pseudo_boxes:
        if not boxes:
            raise UsageError("--pseudo-boxes adds boxes to a box-supervised run; pass --boxes too.")
        teacher, teacher_config = load_model(Path(args.pseudo_boxes))
        if teacher_config.architecture != args.model:
            raise WeightsError(f"--pseudo-boxes {args.pseudo_boxes} holds {teacher_config.architecture} weights; it needs {args.model} weights.")
        teacher.to(device)
        teacher_inputs = frozen_outputs(teacher, teacher_config, start, data.train_images, cache, "train", device) if start else data.train_images
        found = pseudo_boxes(teacher, teacher_config, teacher_inputs, data.train.labels, has_mask[:len(data.train)], start,
                             args.pseudo_min_prob, args.pseudo_min_gate)
        pseudo_masks, pseudo_has = masks_for(found, len(data.train), args.image_size)
        masks[:len(data.train)][pseudo_has] = pseudo_masks[pseudo_has]  # the Training images come first in masks
        has_mask[:len(data.train)] |= pseudo_has
        boxes.notes["pseudo_boxes"] = len(found)
        log.line(f"pseudo-boxes: {len(found)} tumour images of Training boxed by {args.pseudo_boxes}'s gate")
        del teacher, teacher_inputs
    items = TrainItems(inputs, train_labels, start, masks, has_mask, weights)
    teacher = taught = None
    if args.distil:
        if start or boxes:
            raise UsageError("--distil teaches the whole network from images; run it without --freeze-through and --boxes.")
        teacher, teacher_config = load_model(Path(args.distil))
        if (teacher_config.architecture, teacher_config.image_size) != (args.model, config.image_size):
            raise WeightsError(f"--distil {args.distil} holds {teacher_config.architecture} weights at {teacher_config.image_size} px; "
                               f"it needs {args.model} weights at {config.image_size} px.")
        teacher = teacher.to(device, memory_format=layout).eval().requires_grad_(False)
        taught = torch.zeros(len(items), dtype=torch.bool)
        taught[:kaggle_train] = True  # the Kaggle training images come first
        log.line(f"distil: {int(taught.sum())} Kaggle training images keep {args.distil}'s answers "
                 f"(weight {args.distil_weight}, temperature {args.distil_temperature})")
    optimizer = build_optimizer(args, model)
    per_rank = math.ceil((args.epoch_size if weights is not None and args.epoch_size else len(items)) / world)
    scheduler = build_scheduler(args, optimizer, max(1, per_rank // args.batch_size + (1 if per_rank % args.batch_size >= 2 else 0)))
    train_model: nn.Module = model
    if world > 1:
        train_model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                                          find_unused_parameters=head_only)
    if args.compile:
        train_model = torch.compile(train_model)
    state = TrainState()
    if args.resume:
        state = TrainState.restore(load_checkpoint(out / CHECKPOINT), model, optimizer, scheduler)
        log.line(f"resumed at epoch {state.epoch + 2} from {args.resume}")
    if args.select_metric in POINTING:
        if val.box_inputs is None or val.inputs is None:
            raise UsageError(f"--select-metric {args.select_metric} needs --boxes (without --box-refit) and a validation split.")
        if args.select_metric == "pointing_new" and not val.box_new.any():
            raise UsageError("--select-metric pointing_new needs box-validation slices with no twin among the Training images, "
                             "and every one here has one; choose --select-metric pointing.")
        if getattr(args, "start_val_acc", None) is None:  # the starting model's, recorded with the run's flags
            first = validate(model, args.model, val, config, device, args.eval_batch_size, use_amp)
            args.start_val_acc = first["val_acc"]
            log.line(f"start: val_acc {first['val_acc']:.4f} val_f1 {first['val_macro_f1']:.4f} "
                     f"val pointing {first['val_pointing']:.3f} energy {first['val_energy']:.2f} new {first['val_pointing_new']:.3f}")

    # 3. Epochs: train, validate, keep the best by validation, checkpoint.
    aug = {"standard": AugmentConfig(crop_scale=(args.crop_scale, 1.0)), "stacked": AugmentConfig.stacked(args.crop_scale),
           "none": AugmentConfig.none()}[args.augment].without(args.augment_without)
    aug = dataclasses.replace(aug, lesion=args.augment_lesion)
    bn_draws = outside.balanced_weights(train_cells) if args.reset_bn else None
    metric_key = {"macro_f1": "val_macro_f1", "accuracy": "val_acc", "loss": "val_loss", "last": "epoch", **POINTING}[args.select_metric]
    run_start, wall_before, throughputs = time.perf_counter(), state.wall_time_s, []
    for epoch in range(state.epoch + 1, args.epochs):
        if args.finetune == "two-phase" and epoch == args.head_epochs:
            set_trainable(model, args.model, head_only=False)
            log.line("two-phase: now training all layers")
        epoch_start, lr = time.perf_counter(), optimizer.param_groups[0]["lr"]
        row = train_one_epoch(train_model, optimizer, scheduler, items, config, args, epoch, device, rank, world, use_amp, aug,
                              teacher, taught)
        throughputs.append(row["img_per_s"])
        trained_statistics = None
        if args.reset_bn:
            trained_statistics = batch_norm_buffers(model)
            recompute_batch_norm(model, data.train_images, bn_draws, args.reset_bn, config, args.eval_batch_size, device)
        row.update(validate(model, args.model, val, config, device, args.eval_batch_size, use_amp))
        if val.inputs is None:
            row.update(val_loss=row["train_loss"], val_acc=row["train_acc"], val_macro_f1=float("nan"))
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(row["val_loss"])
        row.update(epoch=epoch + 1, lr=lr, epoch_time_s=time.perf_counter() - epoch_start)
        state.history.append(row)
        value = row[metric_key] if not math.isnan(row[metric_key]) else row["val_acc"]
        if args.select_metric in POINTING and row["val_acc"] < args.start_val_acc - args.accuracy_slack:
            value = -math.inf  # lost too much accuracy to be kept
        state.improve(value, epoch, args.select_metric, model)
        if trained_statistics is not None:  # the kept epoch has the clean images' statistics; training goes on with its own
            model.load_state_dict(trained_statistics, strict=False)
        state.epoch, state.wall_time_s = epoch, wall_before + time.perf_counter() - run_start
        pointing = ((f"box {row['train_box_loss']:.4f} " if boxes else "") +
                    (f"val pointing {row['val_pointing']:.3f} energy {row['val_energy']:.2f} new {row['val_pointing_new']:.3f} "
                     if val.box_inputs is not None else ""))
        log.line(f"epoch {epoch + 1:3d}/{args.epochs} loss {row['train_loss']:.4f} train_acc {row['train_acc']:.4f} "
                 f"val_loss {row['val_loss']:.4f} val_acc {row['val_acc']:.4f} val_f1 {row['val_macro_f1']:.4f} {pointing}"
                 f"lr {lr:.2e} {row['img_per_s']:.0f} img/s {row['epoch_time_s']:.1f}s")
        log.epoch(row)
        if rank == 0:
            state.save(out / CHECKPOINT, vars(args), model, optimizer, scheduler)
        if args.max_minutes and time.perf_counter() - run_start > 60 * args.max_minutes:
            log.line(f"time limit: stopping after {args.max_minutes} minutes of training")
            break
        if args.patience and state.stale >= args.patience:
            log.line(f"early stop: no better validation {args.select_metric} for {args.patience} epochs")
            break
    log.close()

    # 4. The best weights, calibrated and measured, exported with their config and model card.
    if rank == 0:
        final = unwrap(model)
        if state.best_state is not None:
            final.load_state_dict(state.best_state)
        if device.type == "cuda" and data.val_images is not None:
            data.val_images = data.val_images.to(device)
        config.metrics = final_report(final, config, data, device, args.eval_batch_size, use_amp, trained_thumbnails(data, boxes),
                                      args.twin_threshold, log.line)
        if val.box_inputs is not None and state.best_epoch is not None:  # the kept epoch's own box-validation figures
            kept = next(row for row in state.history if row["epoch"] == state.best_epoch)
            config.metrics["localisation_validation"] = box_validation_record(kept, val, "training.fit")
        config.metrics["best_epoch"] = state.best_epoch
        config.provenance = provenance(args, data, device, state.wall_time_s, float(np.median(throughputs)) if throughputs else 0.0, world)
        if boxes:
            config.provenance["boxes"] = {"folder": args.boxes, **boxes.notes}
        weights_dir = save_weights(final.state_dict(), config, out / "weights")
        (out / "summary.json").write_text(json.dumps({"wall_time_s": state.wall_time_s, "metrics": config.metrics, "notes": data.notes}, indent=2))
        (out / "validation_files.txt").write_text("".join(f"{p}\n" for p in (data.val.paths if data.val else [])))
        log.line(f"done in {state.wall_time_s:.1f}s ({config.provenance['train_img_per_s']:.0f} img/s); weights in {weights_dir}")
    teardown(world)
    return 0


def cli(argv: list[str] | None = None) -> int:
    return exit_status(lambda: main(get_args_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(cli())
