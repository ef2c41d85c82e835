"""How sure a weights folder is, collection by collection, on the validation it was chosen on:
`python -m training.reliability --weights weights/resnet50_outside --out runs/reliability`.

For each collection of its validation (Kaggle's share and, for weights that learnt the outside collections, the
TCGA-LGG, OASIS and NiChart validation parts): accuracy, mean confidence and their gap (above 0: surer than right),
the expected calibration error and the share answered wrongly at 90% or more, at temperature 1 and at the folder's,
and the temperature that collection alone would want. Then each calibration map of training.calibration, fitted on
validation (every image alike, or every collection alike) and measured by two-fold cross-fitting over subjects (a map
is never judged on the subjects it was fitted on), with how sure it makes the answers on TCGA-LGG gliomas called "no
tumour", the failure the outside work began with. Kaggle Testing is measured beside, never fitted on. Writes
reliability.json and reliability.png (a reliability diagram per collection, at the folder's temperature); changes
nothing in the weights folder.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from brain_tumor.classes import CLASSES
from brain_tumor.classifier import Classifier
from brain_tumor.errors import UsageError, exit_status
from training import outside, twins
from training.calibration import CALIBRATION_MAPS, fit_map
from training.data import DEFAULT_CACHE, cache_folder, split_recipe_of
from training.metrics import expected_calibration_error
from training.plots import reliability_grid
from training.report import predict_logits

SURE = 0.9  # "sure and wrong": a wrong answer at this confidence or more
COLLECTIONS = ("kaggle", "tcga-lgg", "oasis", "nichart")


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True, help="a weights folder (its config.json records the run's split)")
    p.add_argument("--out", type=Path, required=True, help="folder for reliability.json and reliability.png")
    p.add_argument("--data", default=None, help="the dataset the weights were trained on, if it now lies elsewhere")
    p.add_argument("--outside", default=None, help="the outside collections, if they now lie elsewhere")
    p.add_argument("--cache-dir", default=str(DEFAULT_CACHE), help="decoded-image cache ('' to disable)")
    p.add_argument("--no-test", action="store_true", help="skip Kaggle Testing")
    return p


def figures(probs: np.ndarray, labels: np.ndarray) -> dict:
    confidence, right = probs.max(1), probs.argmax(1) == labels
    return {"n": len(labels), "accuracy": float(right.mean()), "confidence": float(confidence.mean()),
            "gap": float(confidence.mean() - right.mean()), "ece": expected_calibration_error(probs, labels),
            "sure_and_wrong": float(((confidence >= SURE) & ~right).mean())}


def softmax(logits: torch.Tensor) -> np.ndarray:
    return torch.softmax(logits.float(), 1).numpy()


def collection_weights(groups: np.ndarray) -> torch.Tensor:
    """Weights that give each collection the same total."""
    counts = {g: (groups == g).sum() for g in set(groups)}
    return torch.tensor([1.0 / counts[g] for g in groups])


def cross_fitted(kind: str, logits: torch.Tensor, labels: torch.Tensor, groups: np.ndarray, folds: np.ndarray,
                 balanced: bool) -> np.ndarray:
    """Each fold's probabilities under the map fitted on the other fold."""
    probs = np.zeros(tuple(logits.shape), dtype=np.float32)
    for fold in (0, 1):
        fit, held = torch.from_numpy(folds != fold), folds == fold
        weights = collection_weights(groups[fit.numpy()]) if balanced else None
        apply, _ = fit_map(kind, logits[fit], labels[fit], weights)
        probs[held] = softmax(apply(logits[torch.from_numpy(held)]))
    return probs


def measure(args: argparse.Namespace) -> dict:
    classifier = Classifier.from_pretrained(Path(args.weights), backend="torch")
    model, config = classifier.model, classifier.config
    learnt = config.outside_collections
    root = (args.outside or learnt) if learnt else None
    data, _ = outside.load_judged_data(split_recipe_of(config, args.data), root, config.image_size, config.clahe,
                                       cache_folder(args.cache_dir), with_test=not args.no_test)
    if data.val is None or not len(data.val):
        raise UsageError(f"{args.weights} was trained without a validation split, so there is nothing to measure its "
                         "calibration on; train with --val-fraction above 0 or --val-data.")
    groups, folds = outside.validation_groups(data, root)
    labels = torch.from_numpy(data.val.labels).long()
    logits = predict_logits(model, data.val_images, config, progress=True)
    present = [g for g in COLLECTIONS if (groups == g).any()]
    t = config.temperature

    def by_collection(probs: np.ndarray) -> dict:
        y = labels.numpy()
        return {"all": figures(probs, y), **{g: figures(probs[groups == g], y[groups == g]) for g in present}}

    at_t = softmax(logits / t)
    result: dict = {"weights": str(args.weights), "temperature": t, "sure": SURE,
                    "validation": {"temperature 1": by_collection(softmax(logits)),
                                   "the folder's temperature": by_collection(at_t)},
                    "temperature wanted": {g: fit_map("temperature", logits[torch.from_numpy(groups == g)],
                                                      labels[torch.from_numpy(groups == g)])[1]["temperature"][0]
                                           for g in present}}
    missed = torch.from_numpy(groups == "tcga-lgg") & (labels == CLASSES.index("glioma"))
    maps = {}
    for kind in CALIBRATION_MAPS:
        for balanced in (False, True):
            probs = cross_fitted(kind, logits, labels, groups, folds, balanced)
            says_none = missed.numpy() & (probs.argmax(1) == CLASSES.index("notumor"))
            _, fitted = fit_map(kind, logits, labels, collection_weights(groups) if balanced else None)
            maps[f"{kind}, {'each collection alike' if balanced else 'each image alike'}"] = {
                **by_collection(probs), "fitted on all of validation": fitted,
                "tcga-lgg gliomas called no tumour": {"n": int(says_none.sum()),
                                                      "confidence": float(probs[says_none].max(1).mean()) if says_none.any() else None,
                                                      "sure": float((probs[says_none].max(1) >= SURE).mean()) if says_none.any() else None}}
    result["maps, cross-fitted over subjects"] = maps
    panels = [(f"validation: {g} (n={int((groups == g).sum())})", at_t[groups == g], labels.numpy()[groups == g])
              for g in present]
    if data.test is not None:
        test_probs = softmax(predict_logits(model, data.test_images, config, progress=True) / t)
        clean = twins.clean_mask(twins.thumbnails(data.test_images), data.pool_thumbs)
        result["kaggle testing (measured, never fitted on)"] = {"all": figures(test_probs, data.test.labels),
                                                                "clean": figures(test_probs[clean], data.test.labels[clean])}
        panels.append((f"Kaggle Testing (n={len(data.test)})", test_probs, data.test.labels))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "reliability.json").write_text(json.dumps(result, indent=2))
    reliability_grid(panels, args.out / "reliability.png", f"{args.weights}: confidence against accuracy (T={t:.3f})")
    return result


def table(result: dict) -> str:
    """The figures as text tables: one row per collection and temperature, then one per map."""
    row = lambda name, f: (f"{name:58s} {f['n']:5d} {100 * f['accuracy']:6.2f}% {100 * f['confidence']:6.2f}% "  # noqa: E731
                           f"{100 * f['gap']:+6.2f} {f['ece']:6.3f} {100 * f['sure_and_wrong']:6.2f}%")
    lines = [f"{'':58s} {'n':>5s} {'acc.':>7s} {'conf.':>7s} {'gap':>6s} {'ECE':>6s} {'sure+wrong':>7s}"]
    for when, cells in result["validation"].items():
        lines += [row(f"validation, {when}: {g}", f) for g, f in cells.items()]
    lines.append("temperature each collection alone would want: " +
                 ", ".join(f"{g} {v:.3f}" for g, v in result["temperature wanted"].items()))
    for name, cells in result["maps, cross-fitted over subjects"].items():
        lines += [row(f"{name}: {g}", cells[g]) for g in ["all", *COLLECTIONS] if g in cells]
        missed = cells["tcga-lgg gliomas called no tumour"]
        if missed["n"]:
            lines.append(f"{name}: {missed['n']} TCGA-LGG gliomas called no tumour, mean confidence "
                         f"{missed['confidence']:.3f}, {100 * missed['sure']:.1f}% at {SURE:.0%} or more")
    for g, f in result.get("kaggle testing (measured, never fitted on)", {}).items():
        lines.append(row(f"Kaggle Testing, the folder's temperature: {g}", f))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = get_args_parser().parse_args(argv)
    return exit_status(lambda: print(table(measure(args))))


if __name__ == "__main__":
    sys.exit(main())
