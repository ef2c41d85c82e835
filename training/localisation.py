"""Does a heatmap point at the tumour? The pointing game, energy in the box, a blind prior, and
whether deleting the hottest pixels hurts the score more than deleting random ones."""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import torch

from training.boxes import box_mask

BOOTSTRAP_SAMPLES = 2000


def pointing_hit(heatmap: np.ndarray, mask: np.ndarray) -> bool:
    """Whether the heatmap's maximum lies inside the box (the pointing game, Zhang et al. 2018)."""
    return bool(mask.flat[int(np.argmax(heatmap))])


def energy_ratio(heatmap: np.ndarray, mask: np.ndarray) -> float:
    """Share of the heatmap's mass inside the box, divided by the box's share of the image (1: no better than flat)."""
    total = float(heatmap.sum())
    if total <= 0 or not mask.any():
        return 0.0
    return float(heatmap[mask].sum()) / total / float(mask.mean())


def head_mask(image: np.ndarray) -> np.ndarray:
    """H×W bool mask of the head in an H×W×3 uint8 slice: the largest bright connected region (Otsu threshold),
    holes filled. All True when no region is found."""
    grey = cv2.GaussianBlur(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), (5, 5), 0)
    _, binary = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary)
    if count < 2:
        return np.ones(grey.shape, dtype=bool)
    biggest = (labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))).astype(np.uint8)
    contours, _ = cv2.findContours(biggest, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    filled = np.zeros_like(biggest)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    return filled.astype(bool)


def head_prior(image: np.ndarray) -> np.ndarray:
    """A blind guess: a Gaussian at the centroid of the head, σ half the head's equivalent radius.

    image: H×W×3 uint8.
    """
    mask = head_mask(image)
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    cx, cy, area = xs.mean() + 0.5, ys.mean() + 0.5, float(mask.sum())
    sigma = 0.5 * np.sqrt(area / np.pi)
    yy, xx = np.mgrid[:h, :w] + 0.5
    return np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2)).astype(np.float32)


def bootstrap_ci(values: Sequence[float], samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> list[float]:
    """95% percentile bootstrap interval of the mean."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return [float("nan"), float("nan")]
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (samples, len(values)))].mean(axis=1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def summarise(values: Sequence[float]) -> dict:
    return {"mean": float(np.mean(values)) if len(values) else float("nan"), "ci95": bootstrap_ci(values)}


def score_maps(maps: np.ndarray, boxes: Sequence[tuple[float, float, float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Per map: pointing-game hit (0/1) and energy ratio, for boxes in the maps' pixels."""
    side = maps.shape[-1]
    hits, ratios = [], []
    for heatmap, box in zip(np.nan_to_num(maps, nan=0.0), boxes):  # a method that fails on an image scores nothing there
        mask = box_mask(box, side)
        hits.append(float(pointing_hit(heatmap, mask)))
        ratios.append(energy_ratio(heatmap, mask))
    return np.asarray(hits), np.asarray(ratios)


def random_maps(shape: tuple[int, ...], grid: int, seed: int) -> np.ndarray:
    """Random heatmaps as coarse as the explained layer (grid×grid cells, upsampled), for a fair baseline."""
    rng = np.random.default_rng(seed)
    n, h, w = shape
    return np.stack([cv2.resize(rng.random((grid, grid), dtype=np.float32), (w, h), interpolation=cv2.INTER_LINEAR) for _ in range(n)])


class BlurImputer:
    """Replaces removed pixels with a strongly blurred copy of the image: deletes detail, not brightness."""

    def __init__(self, sigma: float):
        self.sigma = sigma

    def __call__(self, image: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        array = image.numpy().transpose(1, 2, 0)
        blurred = torch.from_numpy(cv2.GaussianBlur(array, (0, 0), self.sigma).transpose(2, 0, 1).copy())
        keep = keep.to(image.dtype)
        return image * keep + blurred * (1 - keep)


def deletion_drops(model: torch.nn.Module, batch: torch.Tensor, maps: np.ndarray, targets: Sequence[int],
                   fractions: Sequence[float], sigma: float) -> np.ndarray:
    """Fall in the target's probability when the `fraction` hottest pixels of each map are blurred away.

    pytorch-grad-cam's perturbation metric with a blur imputer: returns len(fractions)×N.
    """
    from pytorch_grad_cam.metrics.perturbation_confidence import PerturbationConfidenceMetric, RemoveMostRelevantFirst
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    objectives = [ClassifierOutputSoftmaxTarget(int(t)) for t in targets]
    with torch.no_grad():
        outputs = model(batch)
    before = np.float32([objective(output).cpu().numpy() for objective, output in zip(objectives, outputs)])
    drops = []
    for fraction in fractions:
        metric = PerturbationConfidenceMetric(RemoveMostRelevantFirst(100 * (1 - fraction), BlurImputer(sigma)))
        drops.append(before - metric(batch, maps, objectives, model, return_diff=False).reshape(-1))
    return np.asarray(drops)
