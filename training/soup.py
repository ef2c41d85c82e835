"""Average the weights of runs that share an architecture and a validation split (a model soup), and end it as every
training.fit run ends: `python -m training.soup RUN_OR_WEIGHTS... --out DIR [--mix 0.3,0.7 0.5,0.5 ...]`.

Runs fine-tuned from one starting point tend to lie in one basin of the loss, where the average of their weights can
be better than each of them (Wortsman et al., 2022, "Model soups"). By default the soup is the plain mean; `--mix`
declares weighted means instead (one share per member), and the one with the best validation is kept: with a model
and its fine-tuned descendant as members, that is weight-space ensembling (WiSE-FT: Wortsman et al., CVPR 2022,
"Robust fine-tuning of zero-shot models"), which can keep what the first knew while gaining what the second learnt.
Where a member learnt the outside collections (training.fit --outside), the soup is judged on the validation that member
was judged on: Kaggle's validation share plus the outside validation part. The soup is judged as a run's kept epoch is:
validation accuracy and, for runs trained with --boxes, the box validation (training.report.validate); then the
temperature, the out-of-distribution bounds and Testing (training.report.final_report), exported with its config and
model card to DIR/weights. `training.choose` reads a soup folder as it reads a run, so a soup competes with its members
under the same rule. Nothing here reads the evaluation part of the boxes; Testing is measured only for the record.

A mean of weights is not a network whose batch-norm statistics are the mean of its members' (nor are a run's, trained on
heavily augmented images, those of the clean images it will see). `--reset-bn N` estimates them again, for each mix, from
N of the training images drawn as training.fit drew them (balanced over classes and collections) but not augmented,
before the mix is judged (as stochastic weight averaging does: Izmailov et al., 2018); only labels-free training images
are read, so the choice stays on validation.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

import torch

from brain_tumor.errors import UsageError, exit_status
from brain_tumor.weights import load_model, save_weights
from training import outside
from training.attention import load_box_data, trained_thumbnails
from training.data import DEFAULT_CACHE, cache_folder, split_recipe_of
from training.records import weights_folder
from training.report import Validation, box_validation_record, final_report, recompute_batch_norm, validate
from training.runtime import TrainState


def average(states: list[dict[str, torch.Tensor]], shares: tuple[float, ...] | None = None) -> dict[str, torch.Tensor]:
    """The mean of each floating-point tensor (batch-norm statistics too), weighted by `shares` (summing to 1; equal by
    default); counters are taken from the first."""
    weights = torch.tensor(shares or [1 / len(states)] * len(states), dtype=torch.float64)
    return {key: ((torch.stack([s[key].double() for s in states]) * weights.view(-1, *[1] * value.dim())).sum(0).to(value.dtype)
                  if value.is_floating_point() else value)
            for key, value in states[0].items()}


def shares(text: str) -> tuple[float, ...]:
    """One --mix value: comma-separated non-negative shares, one per member, scaled to sum to 1."""
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of numbers such as 0.3,0.7.") from None
    if any(v < 0 or v != v for v in values) or sum(values) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: each share is a number of 0 or more, and at least one is above 0.")
    return tuple(v / sum(values) for v in values)


def label(mix: tuple[float, ...]) -> str:
    return ",".join(f"{v:.3g}" for v in mix)


def outside_folder(configs, override: str | None) -> str | None:
    """The outside collections a member learnt from (training.fit --outside), if any; every such member must agree."""
    folders = {c.outside_collections for c in configs} - {None}
    if override:
        return override
    if len(folders) > 1:
        raise UsageError("The members learnt outside collections from different folders; "
                         "name the one to validate on with --outside.")
    return next(iter(folders), None)


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("members", nargs="+", type=Path, help="training.fit run folders or weights folders, at least two")
    p.add_argument("--out", type=Path, required=True, help="folder for the soup (weights/, summary.json)")
    p.add_argument("--data", default=None, help="the dataset the members were trained on, if it now lies elsewhere")
    p.add_argument("--boxes", default=None, help="the boxed slices the members were trained with, if they now lie elsewhere")
    p.add_argument("--outside", default=None, help="the outside collections a member learnt from, if they now lie elsewhere")
    p.add_argument("--mix", nargs="+", type=shares, default=None, metavar="SHARES",
                   help="weighted means to try, each as comma-separated shares in the members' order (0.3,0.7); the one with "
                        "the best validation macro-F1 is kept (default: the plain mean)")
    p.add_argument("--reset-bn", type=int, default=0, metavar="N",
                   help="estimate the batch-norm statistics of each mix again on N unaugmented training images, drawn "
                        "balanced over classes and collections, before judging it (default: 0, keep the mean of the members')")
    p.add_argument("--weights-dtype", choices=["float32", "float16"], default="float32", help="dtype of the exported safetensors")
    p.add_argument("--cache-dir", default=str(DEFAULT_CACHE), help="where decoded images are cached ('' to disable)")
    p.add_argument("--eval-batch-size", type=int, default=64)
    p.add_argument("--no-test", action="store_true", help="skip the Testing report")
    return p


def main(args: argparse.Namespace) -> int:
    if len(args.members) < 2:
        raise UsageError("A soup averages two or more runs; name at least two.")
    folders = [weights_folder(path) for path in args.members]
    loaded = [load_model(folder) for folder in folders]
    model, config = loaded[0]
    config.mirror_average = False  # new weights, judged on one view like a run's; training.choose_mirror decides again
    recipe = split_recipe_of(config, args.data)
    for folder, (_, other) in zip(folders[1:], loaded[1:]):
        if other.architecture != config.architecture:
            raise UsageError(f"{folder} holds {other.architecture} weights and {folders[0]} {config.architecture}; "
                             "a soup averages one architecture.")
        if split_recipe_of(other, args.data) != recipe:
            raise UsageError(f"{folder} was validated on another split than {folders[0]}; a soup's members share one split.")
    mixes = args.mix or [None]
    if any(len(mix) != len(folders) for mix in mixes if mix):
        raise UsageError(f"Each --mix value gives one share per member ({len(folders)} here), such as "
                         f"{','.join(['0.5'] * len(folders))}.")
    if args.reset_bn < 0:
        raise UsageError(f"--reset-bn is a number of training images, 0 or more (not {args.reset_bn}).")
    started = time.perf_counter()

    cache = cache_folder(args.cache_dir)
    outside_root = outside_folder([other for _, other in loaded], args.outside)
    data, cells = outside.load_judged_data(recipe, outside_root, config.image_size, config.clahe, cache, with_test=not args.no_test)
    if data.val is None or not len(data.val):
        raise UsageError("The members were trained without a validation split, so a soup of them cannot be judged.")
    box_folder = args.boxes or config.provenance.get("boxes", {}).get("folder")
    refit = any(other.provenance.get("boxes", {}).get("refit") for _, other in loaded)  # a member learnt the box validation
    boxes = (load_box_data(box_folder, data, config.image_size, config.clahe, recipe.twin_threshold, cache, refit=refit)
             if box_folder else None)
    val = Validation(data.val_images, data.val.labels)
    if boxes and boxes.val_images is not None:
        val.use_boxes(boxes)
    states = [m.state_dict() for m, _ in loaded]
    bn_draws = outside.balanced_weights(cells) if args.reset_bn else None
    tried, kept = [], TrainState()
    for mix in mixes:
        model.load_state_dict(average(states, mix))
        if args.reset_bn:
            recompute_batch_norm(model, data.train_images, bn_draws, args.reset_bn, config, args.eval_batch_size)
        model.eval()
        row = validate(model, config.architecture, val, config, "cpu", args.eval_batch_size, False)
        tried.append({"shares": mix and [round(v, 4) for v in mix], **row})
        print(f"soup of {', '.join(map(str, folders))}" + (f" at {label(mix)}" if mix else "") + ": " +
              json.dumps({k: round(v, 4) for k, v in row.items()}), flush=True)
        kept.improve(row["val_macro_f1"], len(tried) - 1, "macro_f1", model)
    model.load_state_dict(kept.best_state)
    row, chosen = tried[kept.best_epoch - 1], mixes[kept.best_epoch - 1]
    if len(mixes) > 1:
        print(f"kept the mix {label(chosen)} (validation macro-F1 {row['val_macro_f1']:.4f})")

    config.metrics = final_report(model, config, data, "cpu", args.eval_batch_size, False, trained_thumbnails(data, boxes),
                                  recipe.twin_threshold)
    if val.box_inputs is not None:
        config.metrics["localisation_validation"] = box_validation_record(row, val, "training.soup")
    config.metrics["best_epoch"] = None
    members = [{"folder": str(folder), "init": other.provenance.get("init"), "weights_sha256": other.weights_sha256,
                "share": round(share, 4)}
               for folder, (_, other), share in zip(folders, loaded, chosen or [1 / len(folders)] * len(folders))]
    first = config.provenance
    config.provenance = {
        "data": first.get("data"),
        "init": (f"a weighted soup (training.soup, shares {label(chosen)}) of " if chosen else "a uniform soup (training.soup) of ")
                + ", ".join(map(str, folders)),
        "recipe": {**dataclasses.asdict(recipe), **({"outside": outside_root} if outside_root else {})},
        "hardware": f"CPU ({platform.processor() or platform.machine()})",
        "wall_time_s": round(time.perf_counter() - started, 1), "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
        "split_notes": data.notes, **({"batch_norm": f"estimated again on {args.reset_bn} unaugmented training images, "
                                                      "balanced over classes and collections"} if args.reset_bn else {}),
        **({"boxes": first["boxes"]} if "boxes" in first else {}), "soup": members}
    config.weights_dtype = args.weights_dtype
    weights_dir = save_weights(model.state_dict(), config, args.out / "weights")
    (args.out / "summary.json").write_text(json.dumps({"metrics": config.metrics, "soup": members, "reset_bn": args.reset_bn,
                                                       "tried": tried}, indent=2))
    print(f"weights in {weights_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(exit_status(lambda: main(get_args_parser().parse_args())))
