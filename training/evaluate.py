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

import torch
from tqdm import tqdm

from brain_tumor.classifier import Classifier
from brain_tumor.errors import exit_status
from brain_tumor.preprocess import normalize
from training import plots, twins
from training.data import DEFAULT_CACHE, SPLIT_NAMES, DatasetError, Split, cache_folder, decode_images, discover, read_split
from training.records import record_test_metrics
from training.report import measure, predict_logits


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", default=None, help="weights folder or Hub id (default: the shipped weights)")
    p.add_argument("--data", required=True, help="dataset root (with Training/ and Testing/) or one folder of class folders")
    p.add_argument("--split", default="Testing", help="sub-folder of --data to evaluate; ignored when --data is itself a folder of class folders")
    p.add_argument("--train-data", nargs="+", default=None,
                   help="everything the model was trained on (folders of class folders, or dataset roots), to find leaked twins; "
                        "for a model trained with --boxes, name the box folder too")
    p.add_argument("--out", default="eval-report", help="where metrics.json, the PNGs and summary.md go")
    p.add_argument("--device", default="cpu")
    p.add_argument("--backend", choices=["torch", "onnx", "onnx-int8"], default="torch", help="what computes the logits")
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


def evaluate(args: argparse.Namespace) -> dict:
    classifier = Classifier.from_pretrained(args.weights, device=args.device, backend=args.backend)
    config, classes = classifier.config, classifier.classes
    cache = cache_folder(args.cache_dir)
    split = load_split(args.data, args.split)
    images = decode_images(split.paths, config.image_size, config.clahe, cache_dir=cache, desc="test")
    if args.backend == "torch":
        logits = predict_logits(classifier.model, images, config, args.device, args.batch_size, progress=True)
    else:
        logits = torch.cat([classifier.logits(normalize(images[i:i + args.batch_size], config.mean, config.std))
                            for i in tqdm(range(0, len(images), args.batch_size), desc=f"predict ({args.backend})", leave=False)])
    probs = torch.softmax(logits / config.temperature, dim=1).numpy()
    reference = None
    if args.train_data:
        reference = torch.cat([twins.thumbnails(decode_images(load_split(folder, "Training").paths, config.image_size, config.clahe,
                                                               cache_dir=cache, desc="train")) for folder in args.train_data])
    found = measure(probs, split, images, reference, args.twin_threshold, classes)
    metrics = {**found.pop("all"), **found}
    metrics.update(weights=str(classifier.source), data=str(args.data), split=args.split, temperature=config.temperature, backend=args.backend)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    title = f"{config.architecture}, {args.split}"
    plots.confusion_matrix_plot(metrics["confusion_matrix"], classes, out / "confusion_matrix.png", f"{title} (n={metrics['n']})")
    plots.reliability_plot(probs, split.labels, out / "reliability.png", f"{title}: ECE {metrics['ece']:.3f}")
    plots.roc_plot(probs, split.labels, classes, out / "roc.png", title)
    plots.prediction_grid(images.numpy(), split.labels, probs, classes, out / "predictions.png")
    counts = {"all": split.counts(), **({"clean": metrics["clean_per_class"]} if "clean" in metrics else {})}
    plots.class_distribution_plot(counts, out / "class_distribution.png")
    if "clean" in metrics:
        plots.confusion_matrix_plot(metrics["clean"]["confusion_matrix"], classes, out / "confusion_matrix_clean.png",
                                    f"{title}, clean (n={metrics['clean']['n']})")
    (out / "summary.md").write_text(summary_markdown(metrics, classes, metrics["weights"], str(args.data)))
    if args.write_config:
        record_test_metrics(Path(classifier.source), metrics, args.device)
    line = f"{config.architecture}: accuracy {_pct(metrics['accuracy'])} macro-F1 {metrics['macro_f1']:.4f} ECE {metrics['ece']:.4f} (n={metrics['n']})"
    if "clean" in metrics:
        c = metrics["clean"]
        line += f" | clean: accuracy {_pct(c['accuracy'])} macro-F1 {c['macro_f1']:.4f} ECE {c['ece']:.4f} (n={c['n']}, {metrics['leaked']} leaked left out)"
    print(line)
    print(f"report: {out / 'summary.md'}")
    return metrics


def main(argv: list[str] | None = None) -> int:
    return exit_status(lambda: evaluate(get_args_parser().parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
