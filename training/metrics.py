"""Classification metrics and calibration error."""
from __future__ import annotations

import numpy as np

from brain_tumor.classes import CLASSES

ECE_BINS = 15


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> dict[str, list[float]]:
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    out = {"bin_confidence": [], "bin_accuracy": [], "bin_count": []}
    for lo, hi in zip(edges[:-1], edges[1:]):
        in_bin = (confidence > lo) & (confidence <= hi)
        out["bin_count"].append(int(in_bin.sum()))
        out["bin_confidence"].append(float(confidence[in_bin].mean()) if in_bin.any() else float("nan"))
        out["bin_accuracy"].append(float(correct[in_bin].mean()) if in_bin.any() else float("nan"))
    return out


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Bin-weighted mean gap between confidence and accuracy over the reliability bins."""
    rel = reliability(probs, labels, bins)
    total = max(1, len(labels))
    return float(sum(n / total * abs(acc - conf)
                     for n, acc, conf in zip(rel["bin_count"], rel["bin_accuracy"], rel["bin_confidence"]) if n))


def classification_metrics(probs: np.ndarray, labels: np.ndarray, classes=CLASSES) -> dict:
    """n, accuracy, macro_f1, per_class, confusion_matrix, roc_auc (one-vs-rest) and ece."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support, roc_auc_score

    k = len(classes)
    preds = probs.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(labels, preds, labels=list(range(k)), zero_division=0)
    roc = {}
    for i, name in enumerate(classes):
        positives = labels == i
        roc[name] = float(roc_auc_score(positives, probs[:, i])) if 0 < positives.sum() < len(labels) else None
    valid = [v for v in roc.values() if v is not None]
    present = support > 0
    return {
        "n": int(len(labels)),
        "accuracy": float((preds == labels).mean()) if len(labels) else float("nan"),
        "macro_f1": float(f1[present].mean()) if present.any() else float("nan"),
        "per_class": {
            name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]), "support": int(support[i])}
            for i, name in enumerate(classes)
        },
        "confusion_matrix": confusion_matrix(labels, preds, labels=list(range(k))).tolist(),
        "roc_auc": {"per_class": roc, "macro": float(np.mean(valid)) if valid else None},
        "ece": expected_calibration_error(probs, labels),
    }
