"""The evaluation figures: confusion matrix, reliability diagram, ROC curves, example grid, class counts."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from brain_tumor.classes import DISPLAY_NAMES  # noqa: E402
from training.metrics import reliability  # noqa: E402


def _save(fig, path: Path, dpi: int = 110) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def confusion_matrix_plot(matrix, classes, path: Path, title: str) -> Path:
    matrix = np.asarray(matrix)
    fig, ax = plt.subplots(figsize=(5.2, 4.6))
    ax.imshow(matrix, cmap="Blues")
    names = [DISPLAY_NAMES.get(c, c) for c in classes]
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", color="white" if matrix[i, j] > matrix.max() / 2 else "black")
    return _save(fig, path)


def reliability_plot(probs, labels, path: Path, title: str) -> Path:
    rel = reliability(probs, labels)
    edges = np.linspace(0, 1, len(rel["bin_count"]) + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    acc = np.nan_to_num(np.asarray(rel["bin_accuracy"], dtype=float))
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    ax.bar(centres, acc, width=edges[1] - edges[0], edgecolor="black", alpha=0.8, label="accuracy")
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend(loc="upper left")
    return _save(fig, path)


def roc_plot(probs, labels, classes, path: Path, title: str) -> Path:
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    for i, name in enumerate(classes):
        positives = labels == i
        if 0 < positives.sum() < len(labels):
            fpr, tpr, _ = roc_curve(positives, probs[:, i])
            ax.plot(fpr, tpr, label=f"{DISPLAY_NAMES.get(name, name)} (AUC {roc_auc_score(positives, probs[:, i]):.3f})")
    ax.plot([0, 1], [0, 1], "--", color="grey")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def prediction_grid(images: np.ndarray, labels, probs, classes, path: Path, per_row: int = 6) -> Path:
    """Top row(s): correct predictions; bottom: mistakes (the most confident first)."""
    preds = probs.argmax(1)
    conf = probs.max(1)
    right = np.flatnonzero(preds == labels)
    wrong = np.flatnonzero(preds != labels)
    right = right[np.argsort(-conf[right])][:per_row]
    wrong = wrong[np.argsort(-conf[wrong])][: per_row * 2]
    rows = [("correct", right)] + [("wrong", wrong[i:i + per_row]) for i in range(0, max(len(wrong), 1), per_row)][:2]
    fig, axes = plt.subplots(len(rows), per_row, figsize=(per_row * 1.9, len(rows) * 2.2), squeeze=False)
    for r, (kind, idx) in enumerate(rows):
        for c in range(per_row):
            ax = axes[r][c]
            ax.axis("off")
            if c < len(idx):
                k = idx[c]
                ax.imshow(images[k].transpose(1, 2, 0))
                ax.set_title(f"true {classes[labels[k]]}\npred {classes[preds[k]]} {conf[k]:.2f}", fontsize=7, color="green" if kind == "correct" else "red")
    if not len(wrong):
        axes[-1][0].set_title("no mistakes", fontsize=8)
    return _save(fig, path, dpi=75)


def class_distribution_plot(counts: dict[str, dict[str, int]], path: Path) -> Path:
    """counts: {series name: {class: count}}, e.g. all vs clean test images."""
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    series = list(counts)
    classes = list(next(iter(counts.values())))
    width = 0.8 / len(series)
    for s, name in enumerate(series):
        ax.bar(np.arange(len(classes)) + s * width, [counts[name][c] for c in classes], width, label=name)
    ax.set_xticks(np.arange(len(classes)) + width * (len(series) - 1) / 2, [DISPLAY_NAMES.get(c, c) for c in classes])
    ax.set_ylabel("images")
    ax.legend()
    return _save(fig, path)
