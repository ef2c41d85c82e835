"""Does this input look like a brain MRI slice at all? Cheap image statistics plus the model's energy.

Each feature has a bound fitted on the validation split (`python -m training.calibrate_ood`) and
stored in the model's config; an input past any bound is flagged out of distribution. A flagged
prediction is still returned, with the reasons, so callers can warn rather than refuse.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np
import torch

# Which side of each feature's validation range means "unlike an MRI slice".
SIDES = {
    "saturation": "high",  # MRI is greyscale; photos are not
    "contrast": "low",  # blank images have none; a high bound only flagged skull-stripped healthy slices (docs/outside.md)
    "border": "high",  # MRI has a black background; screenshots and documents are bright at the edges
    "noise": "high",  # pixel noise and fine texture
    "energy": "high",  # -logsumexp(logits): high when no class fits (Liu et al., 2020)
}
REASONS = {
    "saturation": "it is in colour, and MRI slices are greyscale",
    "contrast": "it has almost no contrast (blank)",
    "border": "its edges are bright, and MRI slices have a dark background",
    "noise": "it looks like noise or fine texture",
    "energy": "the model finds it unlike any training image",
}
BORDER = 0.08  # share of the side that counts as the image's edge


def image_features(batch: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> list[dict[str, float]]:
    """Features of normalised N×3×H×W model inputs (undone back to 0..255 pixels)."""
    shape = (1, 3, 1, 1)
    pixels = (batch.detach().float().cpu() * torch.tensor(std).view(shape) + torch.tensor(mean).view(shape)) * 255
    out = []
    for image in pixels.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy():
        hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
        h, w = grey.shape
        b = max(1, int(round(BORDER * min(h, w))))
        frame = np.concatenate([grey[:b].ravel(), grey[-b:].ravel(), grey[:, :b].ravel(), grey[:, -b:].ravel()])
        laplacian = np.abs(cv2.Laplacian(grey, cv2.CV_32F))
        out.append({
            "saturation": float(hsv[..., 1].mean() / 255),
            "contrast": float(grey.std() / 255),
            "border": float(frame.mean() / 255),
            "noise": float(laplacian.mean() / (grey.std() + 1.0)),
        })
    return out


def energy(logits: torch.Tensor) -> torch.Tensor:
    return -torch.logsumexp(logits.float(), dim=-1)


def input_scores(batch: torch.Tensor, logits: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> list[dict[str, float]]:
    """Every feature in SIDES for each input of a batch: image statistics plus the logits' energy."""
    return [{**f, "energy": e} for f, e in zip(image_features(batch, mean, std), energy(logits).tolist())]


def fit_bounds(features: list[dict[str, float]], quantile: float) -> dict[str, list[float | None]]:
    """[low, high] per feature at the given tail quantile of in-distribution data (None: unbounded side)."""
    bounds = {}
    for name, side in SIDES.items():
        values = np.array([f[name] for f in features])
        low = float(np.quantile(values, quantile)) if side in ("low", "both") else None
        high = float(np.quantile(values, 1 - quantile)) if side in ("high", "both") else None
        bounds[name] = [low, high]
    return bounds


def reasons(features: dict[str, float], bounds: dict[str, list[float | None]]) -> tuple[str, ...]:
    """The features of one input that fall outside the bounds, in SIDES order. A bound on a side that SIDES no longer
    checks (a config fitted before it changed) is ignored."""
    found = []
    for name, side in SIDES.items():
        if name not in bounds or name not in features:
            continue
        low, high = bounds[name]
        value = features[name]
        if (low is not None and side != "high" and value < low) or (high is not None and side != "low" and value > high):
            found.append(name)
    return tuple(found)


def describe(names: Sequence[str]) -> str:
    """One sentence for people: why the input does not look like a brain MRI slice."""
    return "This does not look like a brain MRI slice: " + "; ".join(REASONS[n] for n in names) + ". The confidences are not meaningful for it."
