"""Teach the last stage of a trained ResNet-50 to look at the tumour, within reach of a CPU:
`python -m training.finetune_boxes --init weights/resnet50 --out runs/boxes-a [--dilate] [--box-weight 3]`.

The stem to layer3 (or, with --train-from layer3, to layer2) stay as they are: their output is computed
once per image and cached (float16). The rest and the linear head train on that cache with cross-entropy plus a penalty on the share of the
class activation map lying outside the tumour box, for the training images that carry a box: the
Kaggle Training images that are near-identical twins of boxed figshare slices of the *train* part
(training.boxes). --dilate keeps layer4's map at 14×14 instead of 7×7.

Validation is the validation split of the run that made --init (rebuilt from its recipe), for
accuracy, and, for where the map points, the train-part slices with no twin in Training (never
trained on). The kept epoch: the best validation pointing game among the epochs whose validation
accuracy is within --accuracy-slack of the starting model's. The evaluation part of the boxes and
Kaggle Testing are only measured, at the end.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import datetime
import hashlib
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from brain_tumor.classifier import Classifier
from brain_tumor.errors import UsageError, UserError, exit_status
from brain_tumor.explain import run_stages
from brain_tumor.models import create_model
from brain_tumor.preprocess import normalize
from brain_tumor.weights import save_weights
from training import twins
from training.attention import carry_boxes, class_activation, masks_for, outside_share_loss
from training.boxes import read_boxes
from training.calibration import fit_temperature, ood_section
from training.data import DEFAULT_CACHE, cache_folder, decode_images, load_run_data, split_recipe_of
from training.localisation import score_maps
from training.metrics import classification_metrics
from training.report import measure
from training.runtime import RunLog, seed_everything

FIELDS = ["epoch", "train_loss", "train_ce", "train_box", "val_acc", "val_macro_f1", "val_pointing", "val_energy", "lr", "epoch_time_s"]


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--init", default="weights/resnet50", help="a ResNet-50 weights folder to start from")
    p.add_argument("--data", default=None, help="the Kaggle dataset (default: the one the --init recipe names)")
    p.add_argument("--boxes", default="../shared/data/figshare-tumour-boxes", help="figshare slices with boxes.csv")
    p.add_argument("--out", required=True, help="run folder (log, metrics.csv, weights/)")
    p.add_argument("--train-from", choices=TRAINABLE, default="layer4", help="the first stage that trains (layer3 trains layer3 and layer4)")
    p.add_argument("--dilate", action="store_true", help="dilate layer4: a 14×14 map instead of 7×7 (about 3× the compute)")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--lr", type=float, default=0.01, help="peak SGD learning rate (cosine decay)")
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--box-weight", type=float, default=3.0, help="weight of the outside-the-box loss (0: cross-entropy only)")
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--others-per-epoch", type=int, default=1000, help="training images without a box drawn each epoch (0: all)")
    p.add_argument("--box-repeat", type=int, default=1, help="times each boxed image appears per epoch")
    p.add_argument("--train-bn", action="store_true", help="let layer4's batch-norm statistics move (default: frozen, as the frozen trunk feeds them)")
    p.add_argument("--accuracy-slack", type=float, default=0.005, help="validation accuracy an epoch may lose against --init and still be kept")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", default=str(DEFAULT_CACHE), help="where decoded images and frozen features are cached ('' to disable)")
    return p


# ---------------------------------------------------------------- frozen features

TRAINABLE = ("layer3", "layer4")  # where the trainable part may begin; everything below it stays frozen
FROZEN_OUTPUT = {"layer3": "layer2", "layer4": "layer3"}


def frozen_features(classifier: Classifier, images: torch.Tensor, cache: Path | None, name: str, stage: str, batch_size: int = 32) -> torch.Tensor:
    """float16 outputs of the frozen stem..`stage` for uint8 images, cached on disk unless `cache` is None."""
    config = classifier.config
    key = hashlib.sha256(classifier.version.encode() + images[:, :, ::16, ::16].numpy().tobytes()).hexdigest()[:16]
    path = cache / f"{stage}-{name}-{len(images)}-{key}.npy" if cache is not None else None
    if path is not None and path.is_file():
        return torch.from_numpy(np.load(path))
    out = []
    for start in tqdm(range(0, len(images), batch_size), desc=f"{stage} features: {name}", leave=False):
        x = normalize(images[start:start + batch_size], config.mean, config.std)
        out.append(run_stages(classifier.model, config.architecture, x, None, stage).half())
    features = torch.cat(out) if out else torch.empty(0, dtype=torch.float16)
    if path is None:
        return features
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path.with_suffix(".tmp.npy"), features.numpy())
    path.with_suffix(".tmp.npy").replace(path)
    return features


class Top(nn.Module):
    """The part that trains: layer3 (if asked) and layer4, pooling and the head. Returns (logits, layer4 features)."""

    def __init__(self, model: nn.Module, first: str = "layer4"):
        super().__init__()
        self.blocks = nn.Sequential(*([model.layer3] if first == "layer3" else []), model.layer4)
        self.fc = model.fc

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.blocks(x)
        return self.fc(features.mean((2, 3))), features


def shift_and_flip(x: torch.Tensor, masks: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Feature-space augmentation: a horizontal flip and a shift of up to one cell, applied to the masks alike."""
    cell = masks.shape[-1] // x.shape[-1]
    if torch.rand(1, generator=generator).item() < 0.5:
        x, masks = x.flip(-1), masks.flip(-1)
    dy, dx = (int(v) for v in torch.randint(-1, 2, (2,), generator=generator))
    x = torch.roll(x, (dy, dx), dims=(-2, -1))
    masks = torch.roll(masks, (dy * cell, dx * cell), dims=(-2, -1))
    if dy:  # what rolled round the edge is background, not the other side of the head
        x[..., 0 if dy > 0 else -1, :] = 0
    if dx:
        x[..., :, 0 if dx > 0 else -1] = 0
    return x, masks


@torch.no_grad()
def top_outputs(top: Top, features: torch.Tensor, batch_size: int = 64) -> tuple[torch.Tensor, list[torch.Tensor]]:
    top.eval()
    logits, maps = [], []
    for start in range(0, len(features), batch_size):
        out, feats = top(features[start:start + batch_size].float())
        logits.append(out)
        maps.append(feats)
    return torch.cat(logits), maps


@torch.no_grad()
def localisation(top: Top, features: torch.Tensor, labels: np.ndarray, boxes: list, side: int) -> tuple[float, float]:
    """Pointing game and energy ratio of the true class's map (Grad-CAM at layer4 = CAM here), at side×side;
    zero for both when there are no slices to judge."""
    if not len(features):
        return 0.0, 0.0
    _, chunks = top_outputs(top, features)
    cams = class_activation(torch.cat(chunks), top.fc.weight, torch.from_numpy(labels))
    low, high = cams.flatten(1).min(1).values, cams.flatten(1).max(1).values
    cams = (cams - low[:, None, None]) / (high - low + 1e-7)[:, None, None]
    cams = F.interpolate(cams[:, None], size=(side, side), mode="bilinear", align_corners=False)[:, 0].numpy()
    hits, ratios = score_maps(cams, boxes)
    return float(hits.mean()), float(ratios.mean())


def main(args: argparse.Namespace) -> dict:
    seed_everything(args.seed)
    out = Path(args.out)
    log = RunLog(out, 0, FIELDS)
    cache = cache_folder(args.cache_dir)
    start_time = time.perf_counter()
    classifier = Classifier.from_pretrained(args.init, backend="torch")
    config = classifier.config
    if config.architecture not in ("resnet50", "resnet50_dilated"):
        raise UsageError(f"--init must be a ResNet-50 weights folder; {args.init} holds {config.architecture}.")
    split = split_recipe_of(config, args.data)
    log.line(f"run {out}: " + json.dumps(vars(args)))

    # 1. The data of the run behind --init: its train / validation split, Testing, and the boxes.
    data = load_run_data(split, cache)
    side = config.image_size
    train_slices, eval_slices = read_boxes(args.boxes, "train"), read_boxes(args.boxes, "eval")
    slice_images = decode_images([s.path for s in train_slices], side, config.clahe, cache_dir=cache, desc="boxes-train")
    train_labels = data.train.labels
    train_boxes = carry_boxes(train_slices, slice_images, train_labels, twins.thumbnails(data.train_images), split.twin_threshold)
    val_boxes = carry_boxes(train_slices, slice_images, data.val.labels, twins.thumbnails(data.val_images), split.twin_threshold)
    untwinned = twins.clean_mask(twins.thumbnails(slice_images), data.pool_thumbs, split.twin_threshold)
    boxval = [s for s, keep in zip(train_slices, untwinned) if keep]
    boxval_images = slice_images[torch.from_numpy(np.flatnonzero(untwinned))]
    boxval_labels = np.array([s.label for s in boxval])
    log.line(f"boxes carried to training images: {len(train_boxes)} (validation images: {len(val_boxes)}, not used); "
             f"box validation: {len(boxval)} train-part slices with no twin in Training; evaluation part kept aside: {len(eval_slices)}")

    # 2. Frozen features, once.
    frozen = FROZEN_OUTPUT[args.train_from]
    feats = {name: frozen_features(classifier, images, cache, name, frozen) for name, images in
             (("train", data.train_images), ("val", data.val_images), ("test", data.test_images), ("boxval", boxval_images))}
    masks, has_box = masks_for(train_boxes, len(data.train), side)

    # 3. The part that trains.
    model = create_model("resnet50_dilated" if args.dilate else "resnet50", len(config.classes))
    model.load_state_dict(classifier.model.state_dict())
    top = Top(model, args.train_from)
    optimizer = torch.optim.SGD(top.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=args.weight_decay)
    boxed = np.flatnonzero(has_box.numpy())
    others = np.flatnonzero(~has_box.numpy())
    per_epoch = len(boxed) * args.box_repeat + (min(args.others_per_epoch, len(others)) if args.others_per_epoch else len(others))
    steps = args.epochs * max(1, per_epoch // args.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, total_steps=steps, pct_start=0.1)
    generator = torch.Generator().manual_seed(args.seed)
    boxval_rects = [s.box_at(side) for s in boxval]

    def validate(epoch: int) -> dict:
        logits, _ = top_outputs(top, feats["val"])
        metrics = classification_metrics(torch.softmax(logits, 1).numpy(), data.val.labels)
        pointing, energy = localisation(top, feats["boxval"], boxval_labels, boxval_rects, side)
        return {"epoch": epoch, "val_acc": metrics["accuracy"], "val_macro_f1": metrics["macro_f1"], "val_pointing": pointing, "val_energy": energy}

    start_row = validate(0)
    log.line(f"before: val_acc {start_row['val_acc']:.4f} val_f1 {start_row['val_macro_f1']:.4f} "
             f"val pointing {start_row['val_pointing']:.3f} energy {start_row['val_energy']:.2f}")
    best, best_state, history = None, None, [start_row]
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        top.train()
        if not args.train_bn:  # keep the running statistics the model was trained with
            for module in top.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.eval()
        chosen = np.concatenate([np.repeat(boxed, args.box_repeat),
                                 others if not args.others_per_epoch else np.random.default_rng(args.seed + epoch).choice(others, min(args.others_per_epoch, len(others)), replace=False)])
        order = torch.from_numpy(chosen)[torch.randperm(len(chosen), generator=generator)]
        sums = np.zeros(3)
        bar = tqdm([order[i:i + args.batch_size] for i in range(0, len(order) - 1, args.batch_size)], desc=f"epoch {epoch}/{args.epochs}", leave=False)
        for idx in bar:
            x, m = shift_and_flip(feats["train"][idx].float(), masks[idx], generator)
            labels = torch.from_numpy(train_labels[idx.numpy()])
            logits, features = top(x)
            ce = F.cross_entropy(logits, labels, label_smoothing=args.label_smoothing)
            boxes_here = has_box[idx]
            box = (outside_share_loss(class_activation(features[boxes_here], top.fc.weight, labels[boxes_here]), m[boxes_here])
                   if boxes_here.any() else torch.zeros(()))
            loss = ce + args.box_weight * box
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler.last_epoch < steps:
                scheduler.step()
            sums += [loss.item(), ce.item(), box.item()]
            bar.set_postfix(ce=f"{ce.item():.3f}", box=f"{box.item():.3f}")
        row = {**validate(epoch), "train_loss": sums[0] / len(bar), "train_ce": sums[1] / len(bar), "train_box": sums[2] / len(bar),
               "lr": optimizer.param_groups[0]["lr"], "epoch_time_s": time.perf_counter() - t0}
        history.append(row)
        log.epoch(row)
        log.line(f"epoch {epoch:2d} ce {row['train_ce']:.4f} box {row['train_box']:.4f} | val_acc {row['val_acc']:.4f} "
                 f"val_f1 {row['val_macro_f1']:.4f} val pointing {row['val_pointing']:.3f} energy {row['val_energy']:.2f} | {row['epoch_time_s']:.0f}s")
        eligible = row["val_acc"] >= start_row["val_acc"] - args.accuracy_slack
        if eligible and (best is None or (row["val_pointing"], row["val_macro_f1"]) > (best["val_pointing"], best["val_macro_f1"])):
            best, best_state = row, copy.deepcopy(top.state_dict())
    log.close()
    if best is None:
        raise UserError(f"No epoch kept validation accuracy within {args.accuracy_slack} of the starting model's; nothing was exported.")
    top.load_state_dict(best_state)
    log.line(f"kept epoch {best['epoch']}: val_acc {best['val_acc']:.4f} val pointing {best['val_pointing']:.3f} energy {best['val_energy']:.2f}")

    # 4. Calibrate on validation, measure Testing, export with provenance.
    new_config = copy.deepcopy(config)
    new_config.architecture = "resnet50_dilated" if args.dilate else "resnet50"
    new_config.explanation = {"method": "gradcam", "layer": "layer4", "chosen_by": "the layer and method the box loss trains (CAM = Grad-CAM at layer4)"}
    val_logits, _ = top_outputs(top, feats["val"])
    new_config.temperature = fit_temperature(val_logits, torch.from_numpy(data.val.labels))
    model.eval()
    new_config.ood = ood_section(model, new_config, data.val_images)
    test_logits, _ = top_outputs(top, feats["test"])
    found = measure(torch.softmax(test_logits / new_config.temperature, 1).numpy(), data.test, data.test_images, data.pool_thumbs, split.twin_threshold)
    validation = classification_metrics(torch.softmax(val_logits / new_config.temperature, 1).numpy(), data.val.labels)
    new_config.metrics = {"validation": validation, "test": found["all"], "test_clean": found["clean"], "leaked": found["leaked"],
                          "localisation_validation": {"pointing_game": best["val_pointing"], "energy_ratio": best["val_energy"], "n": len(boxval),
                                                      "measured_by": "training.finetune_boxes (train-part slices with no Training twin)"},
                          "best_epoch": best["epoch"]}
    wall = time.perf_counter() - start_time
    new_config.provenance = {
        "data": f"{split.data}: the Training split of {args.init}'s run, {len(data.train)} train / {len(data.val)} validation; "
                f"{len(train_boxes)} training images carry a tumour box from a twin among the train part of {args.boxes}",
        "init": f"{args.init} (weights {classifier.version}); stem to {frozen} frozen",
        "recipe": {**{k: v for k, v in vars(args).items() if k not in ("out", "cache_dir")}, **dataclasses.asdict(split)},
        "hardware": f"CPU ({platform.processor() or platform.machine()})", "wall_time_s": round(wall, 1), "torch": torch.__version__,
        "date": datetime.date.today().isoformat(), "split_notes": data.notes,
    }
    new_config.weights_sha256 = {}
    weights = save_weights(model.state_dict(), new_config, out / "weights")
    summary = {"wall_time_s": wall, "kept": best, "start": start_row, "test_all": found["all"]["accuracy"],
               "test_clean": found["clean"]["accuracy"], "test_clean_macro_f1": found["clean"]["macro_f1"], "history": history}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    log.line(f"Testing (from cached features): all {found['all']['accuracy']:.4f}, clean {found['clean']['accuracy']:.4f} "
             f"(macro-F1 {found['clean']['macro_f1']:.4f}); {wall / 60:.1f} min; weights in {weights}")
    return summary


def cli(argv: list[str] | None = None) -> int:
    return exit_status(lambda: main(get_args_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(cli())
