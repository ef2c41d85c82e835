"""Honest evaluation of a weights folder:
`python -m training.evaluate --weights DIR --data DIR --out DIR [--split Testing] [--train-data DIR]`.

With --train-data, the same metrics are also given on the clean subset: test images with no
near-identical twin in the training data (the public split leaks; see ../shared/DATA.md).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from brain_tumor.card import model_card
from brain_tumor.classifier import Classifier
from brain_tumor.config import ModelConfig
from brain_tumor.images import InvalidImageError
from brain_tumor.preprocess import normalize
from brain_tumor.weights import CARD_NAME, CONFIG_NAME, WeightsError
from training import plots, twins
from training.datasets import SPLIT_NAMES, DatasetError, Split, read_split, decode_images, discover
from training.fit import DEFAULT_CACHE
from training.metrics import classification_metrics

KEYS = ("n", "accuracy", "macro_f1", "per_class", "confusion_matrix", "roc_auc", "ece")


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--weights", default=None, help="weights folder or Hub id (default: the shipped weights)")
    p.add_argument("--data", required=True, help="dataset root (with Training/ and Testing/) or one folder of class folders")
    p.add_argument("--split", default="Testing", help="sub-folder of --data to evaluate; ignored when --data is itself a folder of class folders")
    p.add_argument("--train-data", default=None, help="the training images (a folder of class folders, or a dataset root) to find leaked twins")
    p.add_argument("--out", default="eval-report", help="where metrics.json, the PNGs and summary.md go")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--twin-threshold", type=float, default=twins.DEFAULT_THRESHOLD)
    p.add_argument("--cache-dir", default=str(DEFAULT_CACHE), help="decoded-image cache ('' to disable)")
    p.add_argument("--write-config", action="store_true",
                   help="store these figures as the test metrics in the (local) weights folder's config.json and model card")
    return p


def load_split(data: str, split: str) -> Split:
    root = Path(data)
    if (root / split).is_dir():
        return read_split(root / split)
    found = discover(data)
    for key, names in SPLIT_NAMES.items():
        if split.lower() in names and key in found:
            return found[key]
    if len(found) == 1:
        return found["train"]  # a plain folder of class folders
    raise DatasetError(f"{data} has no split named {split}; pass --split with one of its sub-folders.")


def predict_probs(classifier: Classifier, images: torch.Tensor, batch_size: int) -> np.ndarray:
    config = classifier.config
    logits = []
    for start in tqdm(range(0, len(images), batch_size), desc="predict", leave=False):
        batch = normalize(images[start:start + batch_size], config.mean, config.std)
        logits.append(classifier.logits(batch).float().cpu())
    return torch.softmax(torch.cat(logits) / config.temperature, dim=1).numpy()


def _pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def summary_markdown(metrics: dict, classes, weights: str, data: str) -> str:
    lines = [f"# Evaluation of `{weights}`", "", f"Data: `{data}`", "",
             "| subset | n | accuracy | macro F1 | ECE | ROC AUC (macro) |", "| --- | --- | --- | --- | --- | --- |"]
    rows = [("all", metrics)] + ([("clean (no training twin)", metrics["clean"])] if "clean" in metrics else [])
    for name, m in rows:
        lines.append(f"| {name} | {m['n']} | {_pct(m['accuracy'])} | {m['macro_f1']:.4f} | {m['ece']:.4f} | {m['roc_auc']['macro']:.4f} |")
    if "leaked" in metrics:
        lines += ["", f"{metrics['leaked']} test images have a near-identical twin in the training data "
                  f"(Pearson r ≥ {metrics['twin_threshold']} on 32×32 grey thumbnails): {metrics['leaked_per_class']}. "
                  f"On those alone the accuracy is {_pct(metrics['leaked_accuracy'])}. A model can memorise them, so the "
                  "'all' row rewards leakage; the clean row is the one to compare."]
    lines += ["", "| class | precision | recall | F1 | support |", "| --- | --- | --- | --- | --- |"]
    for name in classes:
        c = metrics["per_class"][name]
        lines.append(f"| {name} | {c['precision']:.4f} | {c['recall']:.4f} | {c['f1']:.4f} | {c['support']} |")
    lines += ["", "![confusion matrix](confusion_matrix.png) ![reliability](reliability.png) ![ROC](roc.png)",
              "", "![examples](predictions.png)", "", "![class distribution](class_distribution.png)", ""]
    return "\n".join(lines)


def record_in_config(folder: Path, metrics: dict, device: str) -> None:
    """Make these measured figures the ones the weights folder reports (config.json and card)."""
    config = ModelConfig.load(folder / CONFIG_NAME)
    source = f"training.evaluate, float32 on {device}"
    config.metrics["test"] = {**{k: metrics[k] for k in KEYS}, "measured_by": source}
    if "clean" in metrics:
        config.metrics["test_clean"] = {**{k: metrics["clean"][k] for k in KEYS}, "measured_by": source}
        config.metrics["leaked"] = metrics["leaked"]
    config.save(folder / CONFIG_NAME)
    (folder / CARD_NAME).write_text(model_card(config))


def evaluate(args: argparse.Namespace) -> dict:
    classifier = Classifier.from_pretrained(args.weights, device=args.device)
    config, classes = classifier.config, classifier.classes
    cache = Path(args.cache_dir) if args.cache_dir else None
    split = load_split(args.data, args.split)
    images = decode_images(split.paths, config.image_size, config.clahe, cache_dir=cache, desc="test")
    probs = predict_probs(classifier, images, args.batch_size)
    metrics = classification_metrics(probs, split.labels, classes)
    metrics.update(weights=str(classifier.source), data=str(args.data), split=args.split, temperature=config.temperature)
    counts = {"all": split.counts()}
    clean = None
    if args.train_data:
        train = load_split(args.train_data, "Training")
        train_images = decode_images(train.paths, config.image_size, config.clahe, cache_dir=cache, desc="train")
        clean = twins.clean_mask(twins.thumbnails(images), twins.thumbnails(train_images), args.twin_threshold)
        metrics["clean"] = classification_metrics(probs[clean], split.labels[clean], classes)
        metrics["leaked"] = int((~clean).sum())
        metrics["leaked_accuracy"] = float((probs[~clean].argmax(1) == split.labels[~clean]).mean()) if (~clean).any() else None
        metrics["leaked_per_class"] = split.subset(np.flatnonzero(~clean)).counts()
        metrics["twin_threshold"] = args.twin_threshold
        counts["clean"] = split.subset(np.flatnonzero(clean)).counts()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    title = f"{config.architecture}, {args.split}"
    plots.confusion_matrix_plot(metrics["confusion_matrix"], classes, out / "confusion_matrix.png", f"{title} (n={metrics['n']})")
    plots.reliability_plot(probs, split.labels, out / "reliability.png", f"{title}: ECE {metrics['ece']:.3f}")
    plots.roc_plot(probs, split.labels, classes, out / "roc.png", title)
    plots.prediction_grid(images.numpy(), split.labels, probs, classes, out / "predictions.png")
    plots.class_distribution_plot(counts, out / "class_distribution.png")
    if clean is not None:
        plots.confusion_matrix_plot(metrics["clean"]["confusion_matrix"], classes, out / "confusion_matrix_clean.png", f"{title}, clean (n={metrics['clean']['n']})")
    (out / "summary.md").write_text(summary_markdown(metrics, classes, metrics["weights"], str(args.data)))
    if args.write_config:
        record_in_config(Path(classifier.source), metrics, args.device)
    line = f"{config.architecture}: accuracy {_pct(metrics['accuracy'])} macro-F1 {metrics['macro_f1']:.4f} ECE {metrics['ece']:.4f} (n={metrics['n']})"
    if clean is not None:
        c = metrics["clean"]
        line += f" | clean: accuracy {_pct(c['accuracy'])} macro-F1 {c['macro_f1']:.4f} ECE {c['ece']:.4f} (n={c['n']}, {metrics['leaked']} leaked left out)"
    print(line)
    print(f"report: {out / 'summary.md'}")
    return metrics


def main(argv: list[str] | None = None) -> int:
    try:
        evaluate(get_args_parser().parse_args(argv))
    except (DatasetError, WeightsError, InvalidImageError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
