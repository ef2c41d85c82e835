"""Choose on validation whether a weights folder averages each image's logits with its mirror image's:
`python -m training.choose_mirror --weights weights/resnet50_outside [--write]`.

Brains are nearly symmetric left to right and every recipe here trains with random left-right flips, so a slice's
mirror image is as fair a view of it as the slice itself; averaging the two views' logits (test-time augmentation)
costs a second forward pass. The weights are measured on the validation they were chosen on (Kaggle's share and, for
weights that learnt the outside collections, the outside validation part), with one view and with both, by the
validation macro-F1 that training.fit keeps epochs by; both views are kept only if they score higher. With --write,
the choice goes into config.json (`mirror_average`), with the temperature, the validation figures and the
out-of-distribution bounds fitted again on validation for it. Nothing here looks at Testing or an evaluation part.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
import torch

from brain_tumor.classifier import Classifier
from brain_tumor.errors import UsageError, exit_status
from training import outside
from training.calibration import OOD_QUANTILE, ood_section
from training.data import DEFAULT_CACHE, cache_folder, split_recipe_of
from training.metrics import classification_metrics
from training.records import record_mirror, weights_folder
from training.report import calibrated_validation, predict_logits


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True, help="a weights folder or a training run folder")
    p.add_argument("--write", action="store_true", help="store the choice, and what was fitted for it, in config.json")
    p.add_argument("--data", default=None, help="the dataset the weights were trained on, if it now lies elsewhere")
    p.add_argument("--outside", default=None, help="the outside collections, if they now lie elsewhere")
    p.add_argument("--cache-dir", default=str(DEFAULT_CACHE), help="decoded-image cache ('' to disable)")
    return p


def choose(args: argparse.Namespace) -> None:
    folder = weights_folder(Path(args.weights))
    classifier = Classifier.from_pretrained(folder, backend="torch")
    model, config = classifier.model, dataclasses.replace(classifier.config, mirror_average=False)
    learnt = config.outside_collections
    root = (args.outside or learnt) if learnt else None
    data, _ = outside.load_judged_data(split_recipe_of(config, args.data), root, config.image_size, config.clahe,
                                       cache_folder(args.cache_dir), with_test=False)
    if data.val is None or not len(data.val):
        raise UsageError(f"{folder} was trained without a validation split, so there is nothing to choose on; train "
                         "with --val-fraction above 0 or --val-data.")
    labels = data.val.labels
    one = predict_logits(model, data.val_images, config, progress=True)
    both = (one + predict_logits(model, data.val_images.flip(-1), config, progress=True)) / 2
    groups, _ = outside.validation_groups(data, root)
    compared = {}
    print(f"{'validation':<12} {'n':>5} {'one view':>9} {'both':>9}")
    for name in ["all"] + sorted(set(groups), key=list(groups).index):
        at = np.ones(len(labels), bool) if name == "all" else groups == name
        right = [float((logits.argmax(1).numpy()[at] == labels[at]).mean()) for logits in (one, both)]
        print(f"{name:<12} {int(at.sum()):>5} {right[0]:>9.2%} {right[1]:>9.2%}")
        compared[name] = {"n": int(at.sum()), "accuracy_one_view": right[0], "accuracy_mirror_average": right[1]}
    f1 = [classification_metrics(torch.softmax(logits, 1).numpy(), labels)["macro_f1"] for logits in (one, both)]
    on = f1[1] > f1[0]
    compared.update(macro_f1_one_view=f1[0], macro_f1_mirror_average=f1[1], chosen_by="training.choose_mirror")
    print(f"macro-F1: one view {f1[0]:.4f}, both {f1[1]:.4f}: {'average the mirror image in' if on else 'one view'}")
    if args.write:
        chosen, config.mirror_average = (both if on else one), on
        temperature, validation = calibrated_validation(chosen, labels)
        ood = (ood_section(model, config, data.val_images, quantile=config.ood.get("quantile", OOD_QUANTILE), logits=chosen)
               if config.ood else {})
        record_mirror(folder, on, temperature, validation, ood, compared)
        print(f"wrote {folder}: mirror_average {on}, temperature {temperature:.3f}, validation ECE {validation['ece']:.4f}"
              + (", out-of-distribution bounds fitted again" if ood else ""))


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    return exit_status(lambda: choose(args))


if __name__ == "__main__":
    sys.exit(main())
