"""The evaluation figures: confusion matrix, reliability diagrams, ROC curves, example grid, class counts."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from brain_tumor.classes import CLASSES, DISPLAY_NAMES  # noqa: E402
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


def _reliability_bars(ax, probs, labels, counts: bool = False) -> None:
    """Accuracy per confidence bin against the diagonal of perfect calibration; with each bin's count if asked."""
    rel = reliability(probs, labels)
    edges = np.linspace(0, 1, len(rel["bin_count"]) + 1)
    centres = (edges[:-1] + edges[1:]) / 2
    acc = np.nan_to_num(np.asarray(rel["bin_accuracy"], dtype=float))
    ax.bar(centres, acc, width=edges[1] - edges[0], edgecolor="black", alpha=0.8, label="accuracy")
    ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    if counts:
        for x, a, n in zip(centres, acc, rel["bin_count"]):
            if n:
                ax.text(x, min(a, 0.93) + 0.02, str(n), ha="center", fontsize=6, rotation=90)
    ax.set_xlabel("confidence")


def reliability_plot(probs, labels, path: Path, title: str) -> Path:
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    _reliability_bars(ax, probs, labels)
    ax.set_ylabel("accuracy")
    ax.set_title(title)
    ax.legend(loc="upper left")
    return _save(fig, path)


def reliability_grid(panels, path: Path, title: str) -> Path:
    """A reliability diagram for each (title, probs, labels) panel, side by side, with each bin's count."""
    fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 3.6), squeeze=False)
    for ax, (name, probs, labels) in zip(axes[0], panels):
        _reliability_bars(ax, probs, labels, counts=True)
        ax.set_title(name, fontsize=8)
    axes[0][0].set_ylabel("accuracy (bars; bin counts above)")
    fig.suptitle(title, fontsize=9)
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


def box_grid(images: np.ndarray, maps: np.ndarray, boxes, labels, hits, path: Path, title: str) -> Path:
    """A row per class: slices with the heatmap over them, the tumour box, and the heatmap's maximum
    (a cross: green inside the box, red outside). images: N×H×W×3 uint8; maps: N×H×W in [0, 1]."""
    classes = list(np.unique(labels))
    per_row = max(int((labels == c).sum()) for c in classes)
    fig, axes = plt.subplots(len(classes), per_row, figsize=(per_row * 2.1, len(classes) * 2.3), squeeze=False)
    for row, c in enumerate(classes):
        members = np.flatnonzero(labels == c)
        for col in range(per_row):
            ax = axes[row][col]
            ax.axis("off")
            if col >= len(members):
                continue
            k = members[col]
            ax.imshow(images[k])
            ax.imshow(maps[k], cmap="jet", alpha=0.4, vmin=0, vmax=1)
            x0, y0, x1, y1 = boxes[k]
            ax.add_patch(plt.Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="white", linewidth=1.4))
            y, x = np.unravel_index(int(np.argmax(maps[k])), maps[k].shape)
            ax.plot([x], [y], marker="x", markersize=9, markeredgewidth=2.5, color="lime" if hits[k] else "red")
            ax.set_title(f"{DISPLAY_NAMES.get(CLASSES[c], CLASSES[c])}: {'inside' if hits[k] else 'outside'}", fontsize=8)
    fig.suptitle(title + "  (white: tumour box; ×: heatmap maximum)", fontsize=9)
    return _save(fig, path, dpi=90)


def compare_plot(rows: list[dict], prior: dict, path: Path, title: str) -> Path:
    """Pointing game (with 95% intervals) of every method × layer, against the blind prior."""
    labels = [f"{r['method']} @ {r['layer']}" for r in rows]
    values = np.array([r["pointing_game"] for r in rows])
    low = values - np.array([r["pointing_game_ci95"][0] for r in rows])
    high = np.array([r["pointing_game_ci95"][1] for r in rows]) - values
    fig, ax = plt.subplots(figsize=(6.4, 0.28 * len(rows) + 1.2))
    y = np.arange(len(rows))[::-1]
    ax.barh(y, values, xerr=[low, high], color="tab:blue", alpha=0.8, ecolor="black", capsize=2)
    ax.axvline(prior["pointing_game"], color="tab:red", linestyle="--", label=f"blind prior ({prior['pointing_game']:.2f})")
    ax.set_yticks(y, labels, fontsize=7)
    ax.set_xlim(0, 1)
    ax.set_xlabel("pointing game (heatmap maximum inside the tumour box)")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, path)


def trade_off_plot(rows: list[dict], targets: dict, path: Path) -> Path:
    """Outside against Kaggle (the lowest TCGA-LGG sequence's share found against Kaggle clean accuracy) and healthy volumes
    passed against tumour stacks found, one labelled point per row of training.compare_outside, targets dashed."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.6))
    for r in rows:
        lowest = min(r["found"].values())
        if r["kaggle"] is not None:
            left.scatter(100 * r["kaggle"]["clean"], 100 * lowest, color="tab:blue")
            left.annotate(r["name"], (100 * r["kaggle"]["clean"], 100 * lowest), fontsize=7, xytext=(3, 3), textcoords="offset points")
        stacks, healthy = r["stacks"]["share"], r["healthy"]["share"]
        right.scatter(100 * stacks, 100 * healthy, color="tab:green")
        right.annotate(r["name"], (100 * stacks, 100 * healthy), fontsize=7, xytext=(3, 3), textcoords="offset points")
    left.axvline(100 * targets["kaggle_clean"], color="tab:red", linestyle="--", linewidth=1)
    left.axhline(100 * targets["found"], color="tab:red", linestyle="--", linewidth=1)
    left.set_xlabel("Kaggle Testing, clean subset: accuracy (%)")
    left.set_ylabel("TCGA-LGG tumour slices found, lowest sequence (%)")
    left.set_title("Other collections against Kaggle (targets dashed: up and right)", fontsize=9)
    right.axvline(100 * targets["stacks"], color="tab:red", linestyle="--", linewidth=1)
    right.axhline(100, color="tab:red", linestyle="--", linewidth=1)
    right.set_xlabel("TCGA-LGG glioma stacks summarised as a tumour (%)")
    right.set_ylabel("NiChart healthy volumes summarised as no tumour (%)")
    right.set_title("Whole scans: tumours found against healthy brains passed", fontsize=9)
    for ax in (left, right):
        ax.grid(alpha=0.3)
    return _save(fig, path)
